// Synchronized BatchNorm: K ranks, emulated by K threads that each run the
// layer on their slice of one batch and meet in an in-process reducer (the
// layers have no MPI; the real-mpirun proof is tests/integration). The split
// layer must compute what one layer computes on the whole batch, forward and
// backward (including a rank whose slice is empty), and its gradients must
// match finite differences of the loss summed over all slices.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <thread>
#include <vector>

#include "in_process_reducer.h"
#include "layer_testing.h"
#include "layers/layer.h"

namespace dpcnn {
namespace {

using testing::InProcessReducer;
using testing::plain_md;
using testing::random_vec;

LayerSpec batchnorm(bool sync = true) {
  LayerSpec s;
  s.type = "batchnorm";
  s.sync = sync;
  s.momentum = 0.9f;  // running statistics move visibly in one step
  return s;
}

struct Out {
  std::vector<float> y, dx, dparams;  // dparams summed over ranks, as the gradient allreduce does
  std::vector<std::vector<float>> state;  // each rank's running mean and variance
};

// One BatchNorm per rank, on slice sizes `slices` (summing to whole[0]) in
// layout `layout`, sharing one parameter buffer. With `reduce`, the ranks
// meet in an InProcessReducer; the single-rank, no-reducer case is plain
// oneDNN batch normalisation of the whole batch: the reference.
class SplitBatchNorm {
 public:
  SplitBatchNorm(const LayerSpec& spec, const memory::dims& whole, tag layout,
                 const std::vector<int>& slices, bool reduce)
      : whole_(whole), reducer_(static_cast<int>(slices.size())) {
    per_ = 1;
    for (size_t i = 1; i < whole.size(); ++i) per_ *= whole[i];
    const int64_t c = whole[1];
    params_.resize(2 * c);
    for (int64_t k = 0; k < c; ++k) {  // gamma, beta away from 1, 0
      params_[k] = 0.5f + 0.25f * static_cast<float>(k % 5);
      params_[c + k] = 0.1f * static_cast<float>(k % 3) - 0.1f;
    }
    int64_t begin = 0;
    for (size_t r = 0; r < slices.size(); ++r) {
      auto rk = std::make_unique<Rank>();
      rk->begin = begin;
      rk->n = slices[r];
      begin += slices[r];
      if (reduce) rk->ctx.stats_reducer = reducer_.rank(static_cast<int>(r));
      memory::dims d = whole;
      d[0] = std::max(1, rk->n);  // an empty slice's layer is built for one sample, never run
      const memory::desc md(d, dt::f32, layout);
      rk->layer = make_layer(spec, rk->ctx, md, true);
      rk->grads.assign(2 * c, 0.f);
      rk->state.resize(2 * c);
      Rng rng(1);
      std::vector<float> unused(2 * c);
      rk->layer->init_params(unused.data(), rk->state.data(), rng);
      rk->layer->bind(params_.data(), rk->grads.data(), rk->state.data());
      rk->plain = plain_md(d);
      rk->dst_plain = plain_md(rk->layer->dst_md().dims());
      rk->src = memory(md, rk->ctx.engine);
      rk->ddst = memory(rk->layer->dst_md(), rk->ctx.engine);
      rk->to_src = Converter(rk->ctx, rk->plain, md, "t");
      rk->from_dst = Converter(rk->ctx, rk->layer->dst_md(), rk->dst_plain, "t");
      rk->to_ddst = Converter(rk->ctx, rk->dst_plain, rk->layer->dst_md(), "t");
      rk->from_dsrc = Converter(rk->ctx, md, rk->plain, "t");
      ranks_.push_back(std::move(rk));
    }
  }

  std::vector<float>& params() { return params_; }
  const InProcessReducer& reducer() const { return reducer_; }

  // Forward on x and backward with diff_dst r (both plain, whole batch).
  Out run(std::vector<float> x, std::vector<float> r) {
    Out out;
    out.y.assign(x.size(), 0.f);
    out.dx.assign(x.size(), 0.f);
    std::vector<std::thread> threads;
    for (auto& rk : ranks_)
      threads.emplace_back([&, p = rk.get()] {
        // Running statistics start from (0, 1) every run, as at initialisation.
        const size_t c = p->state.size() / 2;
        std::fill(p->state.begin(), p->state.begin() + c, 0.f);
        std::fill(p->state.begin() + c, p->state.end(), 1.f);
        if (p->n == 0) {
          p->layer->forward_empty({});
          std::fill(p->grads.begin(), p->grads.end(), 0.f);
          p->layer->backward_empty(true);
          return;
        }
        const size_t off = static_cast<size_t>(p->begin * per_);
        Context& ctx = p->ctx;
        p->to_src.run_into(ctx, memory(p->plain, ctx.engine, x.data() + off), p->src);
        p->layer->forward(p->src, {});
        p->from_dst.run_into(ctx, p->layer->dst(),
                             memory(p->plain, ctx.engine, out.y.data() + off));
        p->to_ddst.run_into(ctx, memory(p->dst_plain, ctx.engine, r.data() + off), p->ddst);
        p->layer->backward(p->ddst, true);
        p->from_dsrc.run_into(ctx, p->layer->diff_src(),
                              memory(p->plain, ctx.engine, out.dx.data() + off));
        ctx.stream.wait();
      });
    for (auto& t : threads) t.join();
    out.dparams.assign(params_.size(), 0.f);
    for (auto& rk : ranks_) {
      for (size_t i = 0; i < params_.size(); ++i) out.dparams[i] += rk->grads[i];
      out.state.push_back(rk->state);
    }
    return out;
  }

  double loss(const std::vector<float>& x, const std::vector<float>& r) {
    const Out o = run(x, r);
    double l = 0;
    for (size_t i = 0; i < o.y.size(); ++i) l += double(o.y[i]) * r[i];
    return l;
  }

 private:
  struct Rank {
    Context ctx;
    std::unique_ptr<Layer> layer;
    int64_t begin = 0;
    int n = 0;
    std::vector<float> grads, state;
    memory::desc plain, dst_plain;
    memory src, ddst;
    Converter to_src, from_dst, to_ddst, from_dsrc;
  };
  memory::dims whole_;
  int64_t per_ = 1;
  InProcessReducer reducer_;
  std::vector<float> params_;
  std::vector<std::unique_ptr<Rank>> ranks_;
};

double rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0, m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    d = std::max(d, std::abs(double(a[i]) - b[i]));
    m = std::max(m, std::abs(double(a[i])));
  }
  return a.size() == b.size() && m > 0 ? d / m : INFINITY;
}

// Inputs with a channel mean far from 0 and unequal slices: slice statistics
// would differ from the batch's a lot.
std::vector<float> shifted_input(size_t n, uint64_t seed) {
  auto x = random_vec(n, seed, -1, 1);
  for (size_t i = 0; i < n; ++i) x[i] += static_cast<float>(i % 7) * 0.3f + (i < n / 3 ? 2.f : 0.f);
  return x;
}

void expect_split_matches_whole(const memory::dims& whole, tag layout,
                                const std::vector<int>& slices) {
  SCOPED_TRACE(::testing::Message() << "slices " << ::testing::PrintToString(slices));
  size_t size = 1;
  for (auto d : whole) size *= static_cast<size_t>(d);
  const auto x = shifted_input(size, 3);
  const auto r = random_vec(size, 4);
  SplitBatchNorm ref(batchnorm(), whole, layout, {static_cast<int>(whole[0])}, false);
  SplitBatchNorm split(batchnorm(), whole, layout, slices, true);
  const Out a = ref.run(x, r), b = split.run(x, r);
  EXPECT_LT(rel_diff(a.y, b.y), 2e-6);
  EXPECT_LT(rel_diff(a.dx, b.dx), 2e-5);
  EXPECT_LT(rel_diff(a.dparams, b.dparams), 2e-6);
  for (const auto& s : b.state) EXPECT_LT(rel_diff(a.state[0], s), 2e-6);  // every rank, alike
  // One reduction forward (count, sums: 1 + 2C) and one backward (2C), the
  // same on every rank, the empty one included.
  const size_t c = static_cast<size_t>(whole[1]);
  for (size_t k = 0; k < slices.size(); ++k)
    EXPECT_EQ(split.reducer().calls(static_cast<int>(k)), (std::vector<size_t>{1 + 2 * c, 2 * c}));
}

TEST(BatchNormSync, SplitBatchMatchesWholeBatchPlainLayout) {
  expect_split_matches_whole({5, 3, 4, 4}, tag::nchw, {2, 3});
  expect_split_matches_whole({5, 3, 4, 4}, tag::nchw, {3, 1, 1, 0});
}

// The layout after a convolution (oneDNN's blocked nChw16c) and the 2-D
// (N, C) input after a dense layer.
TEST(BatchNormSync, SplitBatchMatchesWholeBatchBlockedAnd2D) {
  expect_split_matches_whole({4, 16, 3, 3}, tag::nChw16c, {2, 1, 1});
  expect_split_matches_whole({7, 6}, tag::nc, {3, 2, 2, 0});
}

// Unsynchronized, each rank normalises with its own slice's statistics: the
// split result is not the whole batch's, and no reduction is made.
TEST(BatchNormSync, SyncFalseUsesSliceStatistics) {
  const memory::dims whole{6, 2, 3, 3};
  const auto x = shifted_input(6 * 18, 5);
  const auto r = random_vec(6 * 18, 6);
  SplitBatchNorm ref(batchnorm(false), whole, tag::nchw, {6}, false);
  SplitBatchNorm split(batchnorm(false), whole, tag::nchw, {3, 3}, true);
  const Out a = ref.run(x, r), b = split.run(x, r);
  EXPECT_GT(rel_diff(a.y, b.y), 1e-2);
  EXPECT_TRUE(split.reducer().calls(0).empty());
  // Each slice on its own is normalised: channel 0 of slice 0 has mean beta.
  double m = 0;
  for (int n = 0; n < 3; ++n)
    for (int k = 0; k < 9; ++k) m += b.y[n * 18 + k];
  EXPECT_NEAR(m / 27, split.params()[2], 1e-5);
}

// Finite differences of L = sum over all ranks' dst * R, through the
// synchronized path (3 ranks, one empty): every input element of both
// non-empty slices, gamma and beta.
TEST(BatchNormSync, GradientsMatchFiniteDifferences) {
  const memory::dims whole{5, 2, 3, 3};
  auto x = shifted_input(5 * 18, 7);
  const auto r = random_vec(5 * 18, 8);
  SplitBatchNorm split(batchnorm(), whole, tag::nchw, {3, 0, 2}, true);
  const Out o = split.run(x, r);
  const float eps = 1e-2f;
  int bad = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const float keep = x[i];
    x[i] = keep + eps;
    const double lp = split.loss(x, r);
    x[i] = keep - eps;
    const double lm = split.loss(x, r);
    x[i] = keep;
    const double fd = (lp - lm) / (2.0 * eps);
    if (std::abs(fd - o.dx[i]) > 5e-3 + 1e-2 * std::abs(fd) && ++bad < 5)
      ADD_FAILURE() << "dx[" << i << "]: analytic " << o.dx[i] << " vs finite difference " << fd;
  }
  std::vector<float>& p = split.params();
  for (size_t i = 0; i < p.size(); ++i) {
    const float keep = p[i];
    p[i] = keep + eps;
    const double lp = split.loss(x, r);
    p[i] = keep - eps;
    const double lm = split.loss(x, r);
    p[i] = keep;
    const double fd = (lp - lm) / (2.0 * eps);
    if (std::abs(fd - o.dparams[i]) > 5e-3 + 1e-2 * std::abs(fd) && ++bad < 5)
      ADD_FAILURE() << "dparams[" << i << "]: analytic " << o.dparams[i] << " vs " << fd;
  }
  EXPECT_EQ(bad, 0);
  // Not trivially zero: the input gradient is what the test checks.
  EXPECT_GT(rel_diff(std::vector<float>(o.dx.size(), 0.f), o.dx), 0.0);
}

}  // namespace
}  // namespace dpcnn
