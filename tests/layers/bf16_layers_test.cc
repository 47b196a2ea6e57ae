// bf16 mixed precision, layer by layer: each layer built for bf16 gives the
// same forward result and gradients as the same layer in f32, within bf16's
// precision (8 bits of mantissa: inputs and weights rounded to ~0.4%, sums in
// f32), on the same weights and inputs. The f32 layers themselves are checked
// against finite differences in layers_test.cc; here bf16 is checked against them.
// Skipped on a CPU without native bf16 (the product refuses bf16 there).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "layer_testing.h"
#include "layers/layers_impl.h"
#include "layers/precision.h"

namespace dpcnn {
namespace {

using testing::conv;
using testing::dense;
using testing::plain_md;
using testing::random_vec;
using testing::simple;

bool have_bf16() { return detect_cpu_bf16().isa_bf16; }

// One layer built for (src type, LayerTypes), fed the f32 plain input `x`
// (reordered into its src type) and dL/d(dst) = `r` (plain f32).
struct Run {
  std::vector<float> y, dx, grads;
  dt src_type = dt::f32, dst_type = dt::f32;
};

std::vector<float> to_plain_f32(Context& ctx, const memory& m) {
  const memory::desc plain(m.get_desc().dims(), dt::f32,
                           m.get_desc().dims().size() == 4 ? tag::nchw : tag::nc);
  memory out(plain, ctx.engine);
  Converter(ctx, m.get_desc(), plain, "t").run_into(ctx, m, out);
  ctx.stream.wait();
  const float* p = static_cast<const float*>(out.get_data_handle());
  return std::vector<float>(p, p + plain.get_size() / sizeof(float));
}

Run run_layer(const LayerSpec& spec, const memory::dims& in, dt src_type, LayerTypes types,
              std::vector<float> params, std::vector<float> x, std::vector<float> r) {
  Context ctx;
  const memory::desc f32_md = plain_md(in);
  const memory::desc src_md(in, src_type, in.size() == 4 ? tag::nchw : tag::nc);
  auto layer = make_layer(spec, ctx, src_md, true, types);
  std::vector<float> grads(layer->param_count(), 0.f), state(layer->state_count(), 0.f);
  if (params.empty()) params.resize(layer->param_count());
  layer->bind(params.data(), grads.data(), state.data());
  memory x32(f32_md, ctx.engine, x.data()), src(src_md, ctx.engine);
  Converter(ctx, f32_md, src_md, "t").run_into(ctx, x32, src);
  layer->forward(src, StepInfo{});
  Run out;
  out.src_type = src_type;
  out.dst_type = layer->dst_md().data_type();
  out.y = to_plain_f32(ctx, layer->dst());
  const memory::desc dplain(layer->dst_md().dims(), dt::f32,
                            layer->dst_md().dims().size() == 4 ? tag::nchw : tag::nc);
  memory rp(dplain, ctx.engine, r.data()), ddst(layer->dst_md(), ctx.engine);
  Converter(ctx, dplain, layer->dst_md(), "t").run_into(ctx, rp, ddst);
  layer->backward(ddst, true);
  ctx.stream.wait();
  out.dx = to_plain_f32(ctx, layer->diff_src());
  out.grads = grads;
  return out;
}

// max |a - b| <= tol * max |a|: bf16's error is relative to the tensor's scale
// (a sum of products of rounded values), not to each element.
void expect_close(const std::vector<float>& ref, const std::vector<float>& got, const char* what,
                  double tol = 1e-2) {
  ASSERT_EQ(ref.size(), got.size()) << what;
  double scale = 0, err = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    scale = std::max(scale, std::abs(double(ref[i])));
    err = std::max(err, std::abs(double(ref[i]) - got[i]));
  }
  EXPECT_GT(scale, 0) << what;
  EXPECT_LE(err, tol * scale) << what << ": max error " << err << " at scale " << scale;
}

// Not the same numbers: a bf16 layer that silently ran in f32 would pass
// expect_close too; bf16 rounding leaves a visible, bounded difference.
void expect_not_identical(const std::vector<float>& a, const std::vector<float>& b,
                          const char* what) {
  EXPECT_NE(a, b) << what << ": bf16 gave exactly the f32 result (did it run in bf16?)";
}

// bf16 value nearest to v (round to nearest even), as a float.
float round_bf16(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  u = (u + 0x7fff + ((u >> 16) & 1)) & 0xffff0000u;
  std::memcpy(&v, &u, 4);
  return v;
}

// `bf16_input`: the input holds bf16 values already (as a bf16 layer's input
// does), so both runs see the same numbers; max-pooling then picks the same
// elements (two f32 values that round to one bf16 value would otherwise tie
// in bf16 only and send the gradient to another element).
void compare(const LayerSpec& spec, const memory::dims& in, dt src_type, LayerTypes types,
             bool bf16_input = false) {
  if (!have_bf16()) GTEST_SKIP() << "no native bf16 on this CPU";
  // Size the parameters from an f32 layer, Glorot-initialised as in training.
  Context ctx;
  auto probe = make_layer(spec, ctx, plain_md(in), true);
  std::vector<float> params(probe->param_count()), state(probe->state_count());
  Rng rng(3);
  probe->init_params(params.data(), state.data(), rng);
  size_t nx = 1;
  for (auto d : in) nx *= static_cast<size_t>(d);
  auto x = random_vec(nx, 11);
  if (bf16_input)
    for (auto& v : x) v = round_bf16(v);
  const auto r = random_vec(probe->dst_md().get_size() / sizeof(float), 12);
  const Run a = run_layer(spec, in, dt::f32, {}, params, x, r);
  const Run b = run_layer(spec, in, src_type, types, params, x, r);
  EXPECT_EQ(b.src_type, src_type);
  expect_close(a.y, b.y, "forward dst");
  expect_close(a.dx, b.dx, "backward diff_src");
  if (!a.grads.empty()) {
    expect_close(a.grads, b.grads, "backward diff_weights (f32 master gradient)");
    expect_not_identical(a.grads, b.grads, "diff_weights");
  }
  // Pooling and ReLU of bf16 values are exact: their dst must be bf16 itself.
  if (bf16_input)
    EXPECT_EQ(b.dst_type, dt::bf16);
  else
    expect_not_identical(a.y, b.y, "dst");
}

// conv2 of the seed model: f32 input reordered to bf16, bf16 out. Without a
// fused ReLU: with one, the few pre-activations within bf16's rounding of 0
// switch sides and move a weight gradient by up to 3% (dense checks the fused
// ReLU, where this random input stays clear of the kink).
TEST(Bf16Layers, ConvFromF32ToBf16MatchesF32) {
  compare(conv(16, 3, "none"), {4, 8, 9, 9}, dt::f32, {dt::bf16, dt::bf16});
}

// bf16 in, f32 out (the last conv before batchnorm or the loss).
TEST(Bf16Layers, ConvFromBf16ToF32MatchesF32) {
  compare(conv(8, 3, "none"), {3, 16, 7, 7}, dt::bf16, {dt::bf16, dt::f32});
}

TEST(Bf16Layers, DenseBf16ToBf16MatchesF32) {
  compare(dense(24, "relu"), {8, 96}, dt::bf16, {dt::bf16, dt::bf16});
}

// The last layer: f32 logits for the loss.
TEST(Bf16Layers, DenseToF32LogitsMatchesF32) {
  compare(dense(10, "none"), {8, 64}, dt::f32, {dt::bf16, dt::f32});
}

// Max-pooling picks the same elements (rounding is monotone), so its dst is
// the f32 result rounded to bf16 and its diff_src routes the same gradients.
TEST(Bf16Layers, MaxPoolInBf16MatchesF32) {
  LayerSpec p = simple("maxpool2d");
  compare(p, {4, 16, 10, 10}, dt::bf16, {}, /*bf16_input=*/true);
}

TEST(Bf16Layers, ReluInBf16MatchesF32) {
  compare(simple("relu"), {4, 16, 5, 5}, dt::bf16, {}, /*bf16_input=*/true);
}

TEST(Bf16Layers, FlattenKeepsBf16) {
  if (!have_bf16()) GTEST_SKIP() << "no native bf16 on this CPU";
  Context ctx;
  auto l =
      make_layer(simple("flatten"), ctx, memory::desc({2, 16, 3, 3}, dt::bf16, tag::nChw16c), true);
  EXPECT_EQ(l->dst_md().data_type(), dt::bf16);
  EXPECT_EQ(l->dst_md().dims(), (memory::dims{2, 144}));
}

// Batchnorm and dropout work on f32 only; the model hands them f32 (the layer
// before converts), and a bf16 input is a clear error rather than garbage.
TEST(Bf16Layers, DropoutAndBatchnormRefuseBf16Input) {
  Context ctx;
  const memory::desc md({2, 4, 3, 3}, dt::bf16, tag::nchw);
  EXPECT_THROW(make_layer(simple("dropout"), ctx, md, true), Error);
  EXPECT_THROW(make_layer(simple("batchnorm"), ctx, md, true), Error);
}

}  // namespace
}  // namespace dpcnn
