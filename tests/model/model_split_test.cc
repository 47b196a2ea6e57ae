// The global-batch contract at model level, with K ranks emulated by K
// threads (each its own Model, the same initial weights, an in-process
// BatchStatsReducer): slices of one batch, an empty slice included, give
// gradients that sum to the whole batch's, through every layer type
// (synchronized BatchNorm, dropout by global sample index), and leave every
// rank's running statistics equal. The real-mpirun proof is in
// tests/integration/train_mpi_test.cc.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <thread>
#include <vector>

#include "config/config.h"
#include "core/rng.h"
#include "in_process_reducer.h"
#include "model/model.h"

namespace dpcnn {
namespace {

using testing::InProcessReducer;

const char* kEveryLayer = R"(
model:
  input: [1, 10, 10]
  classes: 10
  layers:
    - {type: conv2d, filters: 4, kernel: 3, padding: same}
    - {type: batchnorm, momentum: 0.9}
    - {type: relu}
    - {type: maxpool2d, pool: 2}
    - {type: conv2d, filters: 6, kernel: 3, activation: relu}
    - {type: flatten}
    - {type: dense, units: 12}
    - {type: batchnorm}
    - {type: dropout, rate: 0.3}
    - {type: dense, units: 10}
)";

std::vector<float> random_images(int n, int size, uint64_t seed) {
  Rng r(seed);
  std::vector<float> v(static_cast<size_t>(n) * size);
  for (auto& x : v) x = r.uniform01();
  return v;
}

double rel_diff(const float* a, const float* b, size_t n) {
  double d = 0, m = 0;
  for (size_t i = 0; i < n; ++i) {
    d = std::max(d, std::abs(double(a[i]) - b[i]));
    m = std::max(m, std::abs(double(a[i])));
  }
  return m > 0 ? d / m : INFINITY;
}

// An empty slice computes nothing, zeroes the gradients (a rank adds nothing
// to the sums) and announces every parameterised layer's gradients in the
// same order as a real backward, so the gradient buckets start alike.
TEST(ModelSplit, EmptySliceZeroesGradientsAndAnnouncesLikeBackward) {
  Model m(parse_config(kEveryLayer, "t").model);
  m.init(1);
  auto x = random_images(3, 100, 2);
  std::vector<int32_t> y = {1, 2, 3};
  std::vector<size_t> full, empty;
  m.train_step(x.data(), y.data(), 3, 1.0f / 3, {7, 0, 0}, [&](size_t o) { full.push_back(o); });
  ASSERT_NE(std::vector<float>(m.grads(), m.grads() + m.param_count()),
            std::vector<float>(m.param_count(), 0.0f));
  const std::vector<float> before(m.params(), m.params() + m.param_count());
  const LossResult r =
      m.train_step(nullptr, nullptr, 0, 1.0f / 3, {7, 0, 3}, [&](size_t o) { empty.push_back(o); });
  EXPECT_EQ(r.count, 0);
  EXPECT_EQ(r.loss_sum, 0.0);
  EXPECT_EQ(std::vector<float>(m.grads(), m.grads() + m.param_count()),
            std::vector<float>(m.param_count(), 0.0f));
  EXPECT_EQ(empty, full);
  EXPECT_EQ(full.size(), 6u);  // 2 conv, 2 dense, 2 batchnorm
  EXPECT_EQ(std::vector<float>(m.params(), m.params() + m.param_count()), before);
}

// Runs one training step of batch `b` split into `slices` on K threads, each
// with its own model; returns the summed gradients, and each rank's running
// statistics in `states`.
std::vector<float> split_step(const Config& cfg, const std::vector<float>& x,
                              const std::vector<int32_t>& y, const std::vector<int>& slices,
                              std::vector<std::vector<float>>* states,
                              std::vector<std::vector<size_t>>* calls = nullptr) {
  const int k = static_cast<int>(slices.size());
  const int b = static_cast<int>(y.size());
  InProcessReducer reducer(k);
  std::vector<std::unique_ptr<Model>> models;
  for (int r = 0; r < k; ++r) {
    models.push_back(std::make_unique<Model>(cfg.model));
    models.back()->init(11);
    if (k > 1) models.back()->set_batch_stats_reducer(reducer.rank(r));
  }
  std::vector<std::thread> threads;
  int64_t begin = 0;
  const int size = static_cast<int>(x.size()) / b;
  for (int r = 0; r < k; ++r) {
    threads.emplace_back([&, r, begin] {
      const StepInfo info{cfg.seed, 3, begin};  // dropout masks by global sample index
      models[r]->train_step(x.data() + begin * size, y.data() + begin, slices[r], 1.0f / b, info);
    });
    begin += slices[r];
  }
  for (auto& t : threads) t.join();
  std::vector<float> g(models[0]->param_count(), 0.0f);
  for (auto& m : models) {
    for (size_t i = 0; i < g.size(); ++i) g[i] += m->grads()[i];
    states->emplace_back(m->state(), m->state() + m->state_count());
  }
  if (calls)
    for (int r = 0; r < k; ++r) calls->push_back(reducer.calls(r));
  return g;
}

TEST(ModelSplit, SlicesWithSyncBatchNormAndDropoutSumToTheWholeBatch) {
  const Config cfg = parse_config(kEveryLayer, "t");
  ASSERT_TRUE(cfg.model.layers[1].sync);  // the default
  const int b = 5;
  const auto x = random_images(b, 100, 4);
  const std::vector<int32_t> y = {3, 1, 4, 1, 5};
  std::vector<std::vector<float>> whole_state;
  const auto whole = split_step(cfg, x, y, {5}, &whole_state);
  for (const std::vector<int>& slices : {std::vector<int>{3, 2}, {2, 1, 1, 1}, {2, 1, 1, 1, 0}}) {
    SCOPED_TRACE(::testing::PrintToString(slices));
    std::vector<std::vector<float>> states;
    std::vector<std::vector<size_t>> calls;
    const auto split = split_step(cfg, x, y, slices, &states, &calls);
    EXPECT_LT(rel_diff(whole.data(), split.data(), whole.size()), 1e-5);
    for (const auto& s : states)
      EXPECT_LT(rel_diff(whole_state[0].data(), s.data(), s.size()), 1e-6);
    // Two batchnorm layers: forward (1 + 2C) twice, then backward 2C in
    // reverse order; the same on every rank, the empty one too.
    const std::vector<size_t> expected = {1 + 2 * 4, 1 + 2 * 12, 2 * 12, 2 * 4};
    for (const auto& c : calls) EXPECT_EQ(c, expected);
  }
}

// BatchNorm as the first layer (input normalisation): no rank needs its
// diff_src, so its backward makes no reduction on any rank, and the split
// still equals the whole batch.
TEST(ModelSplit, FirstLayerBatchNormSkipsTheBackwardReductionEverywhere) {
  const Config cfg = parse_config(R"(
model:
  input: [1, 10, 10]
  classes: 10
  layers:
    - {type: batchnorm, momentum: 0.9}
    - {type: conv2d, filters: 4, kernel: 3}
    - {type: flatten}
    - {type: dense, units: 10}
)",
                                  "t");
  const auto x = random_images(5, 100, 6);
  const std::vector<int32_t> y = {0, 9, 2, 8, 4};
  std::vector<std::vector<float>> whole_state, states;
  std::vector<std::vector<size_t>> calls;
  const auto whole = split_step(cfg, x, y, {5}, &whole_state);
  const auto split = split_step(cfg, x, y, {3, 2, 0}, &states, &calls);
  EXPECT_LT(rel_diff(whole.data(), split.data(), whole.size()), 1e-5);
  for (const auto& s : states) EXPECT_LT(rel_diff(whole_state[0].data(), s.data(), s.size()), 1e-6);
  for (const auto& c : calls) EXPECT_EQ(c, (std::vector<size_t>{1 + 2 * 1}));
}

// Unsynchronized BatchNorm (sync: false) is the old per-slice behaviour: the
// split no longer equals the whole batch (what the README warns about).
TEST(ModelSplit, UnsyncedBatchNormBreaksTheEquivalence) {
  std::string text = kEveryLayer;
  for (size_t p = 0; (p = text.find("{type: batchnorm", p)) != std::string::npos; p += 10)
    text.insert(text.find('}', p), ", sync: false");
  const Config cfg = parse_config(text, "t");
  ASSERT_FALSE(cfg.model.layers[1].sync);
  const auto x = random_images(4, 100, 4);
  const std::vector<int32_t> y = {3, 1, 4, 1};
  std::vector<std::vector<float>> s1, s2;
  const auto whole = split_step(cfg, x, y, {4}, &s1);
  const auto split = split_step(cfg, x, y, {2, 2}, &s2);
  EXPECT_GT(rel_diff(whole.data(), split.data(), whole.size()), 1e-3);
}

}  // namespace
}  // namespace dpcnn
