// Helpers for layer tests: build one layer on plain inputs, run it, and compare
// its analytic gradients with central finite differences of
//   L = sum(dst * R)   (R a fixed random tensor),
// so that dL/d(dst) = R is what backward receives.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "core/rng.h"
#include "layers/layer.h"

namespace dpcnn::testing {

// Layer specs as a config's model.layers would give them.
inline LayerSpec conv(int filters, int k, const char* act = "none", const char* pad = "valid",
                      int stride = 1, bool bias = true) {
  LayerSpec s;
  s.type = "conv2d";
  s.filters = filters;
  s.kernel[0] = s.kernel[1] = k;
  s.strides[0] = s.strides[1] = stride;
  s.padding = pad;
  s.activation = act;
  s.use_bias = bias;
  return s;
}

inline LayerSpec dense(int units, const char* act = "none") {
  LayerSpec s;
  s.type = "dense";
  s.units = units;
  s.activation = act;
  return s;
}

inline LayerSpec simple(const char* type) {
  LayerSpec s;
  s.type = type;
  return s;
}

inline memory::desc plain_md(const memory::dims& d) {
  return memory::desc(d, dt::f32, d.size() == 4 ? tag::nchw : tag::nc);
}

inline std::vector<float> random_vec(size_t n, uint64_t seed, float lo = -1, float hi = 1) {
  Rng r(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = r.uniform(lo, hi);
  return v;
}

// A layer under test with its own buffers and plain-layout views of dst.
struct Harness {
  Context ctx;
  std::unique_ptr<Layer> layer;
  std::vector<float> params, grads, state, x;
  memory src;
  memory::desc dst_plain;
  Converter dst_to_plain, plain_to_dst;
  memory dst_plain_mem, ddst;

  Harness(const LayerSpec& spec, const memory::dims& in, bool training = true, uint64_t seed = 1) {
    const memory::desc md = plain_md(in);
    layer = make_layer(spec, ctx, md, training);
    params.assign(layer->param_count(), 0.f);
    grads.assign(layer->param_count(), 0.f);
    state.assign(layer->state_count(), 0.f);
    Rng rng(seed);
    layer->init_params(params.data(), state.data(), rng);
    layer->bind(params.data(), grads.data(), state.data());
    x = random_vec(md.get_size() / sizeof(float), seed + 1);
    src = memory(md, ctx.engine, x.data());
    const auto dd = layer->dst_md().dims();
    dst_plain = plain_md(dd);
    dst_to_plain = Converter(ctx, layer->dst_md(), dst_plain, "test");
    plain_to_dst = Converter(ctx, dst_plain, layer->dst_md(), "test");
    dst_plain_mem = memory(dst_plain, ctx.engine);
    ddst = memory(layer->dst_md(), ctx.engine);
  }
  // Forward; returns dst in plain layout.
  std::vector<float> forward(uint64_t step = 0) {
    layer->forward(src, StepInfo{7, step, 0});
    dst_to_plain.run_into(ctx, layer->dst(), dst_plain_mem);
    ctx.stream.wait();
    const float* p = static_cast<const float*>(dst_plain_mem.get_data_handle());
    return std::vector<float>(p, p + dst_plain.get_size() / sizeof(float));
  }
  double loss(const std::vector<float>& r, uint64_t step = 0) {
    auto y = forward(step);
    double l = 0;
    for (size_t i = 0; i < y.size(); ++i) l += double(y[i]) * r[i];
    return l;
  }
  // Backward with diff_dst = r (plain); returns diff_src (plain: src is plain).
  std::vector<float> backward(std::vector<float> r) {
    memory rp(dst_plain, ctx.engine, r.data());
    plain_to_dst.run_into(ctx, rp, ddst);
    layer->backward(ddst, true);
    ctx.stream.wait();
    const float* p = static_cast<const float*>(layer->diff_src().get_data_handle());
    return std::vector<float>(p, p + x.size());
  }
};

// Checks d(loss)/d(v[i]) against central differences for every element of v
// (or every `stride`-th element). `v` must be a buffer the harness reads.
inline void expect_matches_fd(Harness& h, std::vector<float>& v, const std::vector<float>& analytic,
                              const std::vector<float>& r, const char* what, float eps = 5e-3f,
                              size_t stride = 1, float tol = 5e-3f) {
  ASSERT_EQ(v.size(), analytic.size());
  int bad = 0;
  for (size_t i = 0; i < v.size(); i += stride) {
    const float keep = v[i];
    v[i] = keep + eps;
    const double lp = h.loss(r);
    v[i] = keep - eps;
    const double lm = h.loss(r);
    v[i] = keep;
    const double fd = (lp - lm) / (2.0 * eps);
    if (std::abs(fd - analytic[i]) > tol + 1e-2 * std::abs(fd) && ++bad < 5)
      ADD_FAILURE() << what << "[" << i << "]: analytic " << analytic[i] << " vs finite difference "
                    << fd;
  }
  EXPECT_EQ(bad, 0) << what << ": mismatches";
}

}  // namespace dpcnn::testing
