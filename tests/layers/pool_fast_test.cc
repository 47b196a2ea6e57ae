// The max-pool kernel that replaces oneDNN's in training (layers/pool_fast.cc)
// against oneDNN's own (DPCNN_ONEDNN_MAXPOOL=1): forward dst and backward
// diff_src bit for bit, in the layouts oneDNN hands a pooling layer (nchw,
// nhwc, nChw16c), in f32 and bf16, on inputs full of ties (eight levels, and
// +0/-0) so that the choice of the winning element shows; plus the cases the
// kernel leaves to oneDNN.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "layer_testing.h"
#include "layers/layers_impl.h"
#include "layers/precision.h"

namespace dpcnn {
namespace {

using testing::plain_md;
using testing::random_vec;

struct Case {
  tag layout;
  dt type;
  memory::dims in;
  int pool[2], strides[2];
  const char* padding;
  bool fast;  // the kernel takes it
};

std::vector<float> with_ties(size_t n, uint64_t seed) {
  std::vector<float> v = random_vec(n, seed);
  for (size_t i = 0; i < n; ++i) {
    v[i] = static_cast<float>(static_cast<int>(v[i] * 4)) / 4;  // -0.75 .. 0.75
    if (v[i] == 0 && i % 2) v[i] = -0.0f;
  }
  return v;
}

std::vector<uint8_t> bytes(const memory& m) {
  const auto* p = static_cast<const uint8_t*>(m.get_data_handle());
  return std::vector<uint8_t>(p, p + m.get_desc().get_size());
}

struct Result {
  std::vector<uint8_t> dst, diff_src;
  bool fast = false;
};

Result run(const Case& c, bool onednn) {
  if (onednn)
    setenv("DPCNN_ONEDNN_MAXPOOL", "1", 1);
  else
    unsetenv("DPCNN_ONEDNN_MAXPOOL");
  LayerSpec spec;
  spec.type = "maxpool2d";
  spec.pool[0] = c.pool[0];
  spec.pool[1] = c.pool[1];
  spec.strides[0] = c.strides[0];
  spec.strides[1] = c.strides[1];
  spec.padding = c.padding;
  Context ctx;
  const memory::desc src_md(c.in, c.type, c.layout);
  auto layer = make_layer(spec, ctx, src_md, true);
  unsetenv("DPCNN_ONEDNN_MAXPOOL");
  Result out;
  out.fast = dynamic_cast<MaxPool2D&>(*layer).fast();
  const memory::desc f32 = plain_md(c.in);
  std::vector<float> x = with_ties(f32.get_size() / sizeof(float), 3);
  memory xm(f32, ctx.engine, x.data()), src(src_md, ctx.engine);
  Converter(ctx, f32, src_md, "t").run_into(ctx, xm, src);
  layer->forward(src, StepInfo{});
  ctx.stream.wait();
  out.dst = bytes(layer->dst());
  const memory::desc r32 = plain_md(layer->dst_md().dims());
  std::vector<float> r = with_ties(r32.get_size() / sizeof(float), 4);
  memory rm(r32, ctx.engine, r.data()), ddst(layer->dst_md(), ctx.engine);
  Converter(ctx, r32, layer->dst_md(), "t").run_into(ctx, rm, ddst);
  layer->backward(ddst, true);
  ctx.stream.wait();
  out.diff_src = bytes(layer->diff_src());
  return out;
}

TEST(PoolFast, MatchesOneDnnBitForBitAndTakesOnlyWhatItCovers) {
  const bool bf16 = detect_cpu_bf16().isa_bf16;
  const std::vector<Case> cases = {
      {tag::nChw16c, dt::f32, {3, 32, 26, 26}, {2, 2}, {2, 2}, "valid", true},  // pool1
      {tag::nhwc, dt::f32, {3, 64, 11, 11}, {2, 2}, {2, 2}, "valid", true},     // pool2: 11 -> 5
      {tag::nchw, dt::f32, {2, 3, 9, 7}, {3, 2}, {3, 2}, "valid", true},
      {tag::nhwc, dt::f32, {2, 5, 8, 9}, {2, 3}, {3, 4}, "valid", true},  // gaps between windows
      {tag::nChw16c, dt::bf16, {3, 32, 26, 26}, {2, 2}, {2, 2}, "valid", true},
      {tag::nhwc, dt::bf16, {3, 64, 11, 11}, {2, 2}, {2, 2}, "valid", true},
      {tag::nchw, dt::f32, {2, 3, 9, 9}, {3, 3}, {2, 2}, "valid", false},  // overlapping
      {tag::nchw, dt::f32, {2, 3, 9, 9}, {2, 2}, {2, 2}, "same", false},   // padded
  };
  for (const Case& c : cases) {
    if (c.type == dt::bf16 && !bf16) continue;
    SCOPED_TRACE(::testing::Message()
                 << "dims " << c.in[1] << "x" << c.in[2] << "x" << c.in[3] << " pool " << c.pool[0]
                 << "x" << c.pool[1] << " stride " << c.strides[0] << "x" << c.strides[1] << " "
                 << (c.type == dt::bf16 ? "bf16" : "f32") << " layout "
                 << static_cast<int>(c.layout));
    const Result fast = run(c, false), ref = run(c, true);
    EXPECT_EQ(fast.fast, c.fast);
    EXPECT_FALSE(ref.fast);
    EXPECT_EQ(fast.dst, ref.dst);
    EXPECT_EQ(fast.diff_src, ref.diff_src);
  }
}

}  // namespace
}  // namespace dpcnn
