#include <algorithm>

#include "core/error.h"
#include "layers/layers_impl.h"

namespace dpcnn {

using dnnl::normalization_flags;
using dnnl::prop_kind;

BatchNorm::BatchNorm(const LayerSpec& spec, const Context& ctx, const memory::desc& src_md,
                     bool training)
    : Layer(ctx, src_md, training), momentum_(spec.momentum), epsilon_(spec.epsilon) {
  const auto s = src_md.dims();
  channels_ = s[1];
  count_per_channel_ = s[0];
  for (size_t i = 2; i < s.size(); ++i) count_per_channel_ *= s[i];
  auto flags = normalization_flags::use_scale | normalization_flags::use_shift;
  if (!training) flags |= normalization_flags::use_global_stats;
  const auto pk = training ? prop_kind::forward_training : prop_kind::forward_inference;
  fwd_pd_ =
      dnnl::batch_normalization_forward::primitive_desc({pk, src_md, epsilon_, flags}, ctx.engine);
  fwd_ = dnnl::batch_normalization_forward(fwd_pd_);
  dst_md_ = fwd_pd_.dst_desc();
  dst_ = ctx.alloc(dst_md_, "dst");
  if (!training) return;
  mean_ = ctx.alloc(fwd_pd_.mean_desc(), "mean");
  var_ = ctx.alloc(fwd_pd_.variance_desc(), "var");
  const dnnl::batch_normalization_backward::primitive_desc bwd_pd(
      {prop_kind::backward, dst_md_, src_md, epsilon_, flags}, ctx.engine, fwd_pd_);
  bwd_ = dnnl::batch_normalization_backward(bwd_pd);
  diff_src_ = ctx.alloc(src_md, "diff_src");
}

void BatchNorm::init_params(float* params, float* state, Rng&) const {
  std::fill(params, params + channels_, 1.0f);                  // gamma
  std::fill(params + channels_, params + 2 * channels_, 0.0f);  // beta
  std::fill(state, state + channels_, 0.0f);                    // running mean
  std::fill(state + channels_, state + 2 * channels_, 1.0f);    // running variance
}

void BatchNorm::bind(float* params, float* grads, float* state) {
  const memory::desc c_md({channels_}, dt::f32, tag::x);
  scale_ = memory(c_md, ctx_.engine, params);
  shift_ = memory(c_md, ctx_.engine, params + channels_);
  run_mean_ = memory(c_md, ctx_.engine, state);
  run_var_ = memory(c_md, ctx_.engine, state + channels_);
  if (!training_) return;
  dscale_ = memory(c_md, ctx_.engine, grads);
  dshift_ = memory(c_md, ctx_.engine, grads + channels_);
}

void BatchNorm::forward(const memory& src, const StepInfo&) {
  src_ = src;
  if (!training_) {
    fwd_.execute(ctx_.stream, {{DNNL_ARG_SRC, src},
                               {DNNL_ARG_SCALE, scale_},
                               {DNNL_ARG_SHIFT, shift_},
                               {DNNL_ARG_MEAN, run_mean_},
                               {DNNL_ARG_VARIANCE, run_var_},
                               {DNNL_ARG_DST, dst_}});
    return;
  }
  fwd_.execute(ctx_.stream, {{DNNL_ARG_SRC, src},
                             {DNNL_ARG_SCALE, scale_},
                             {DNNL_ARG_SHIFT, shift_},
                             {DNNL_ARG_MEAN, mean_},
                             {DNNL_ARG_VARIANCE, var_},
                             {DNNL_ARG_DST, dst_}});
  // Running statistics as Keras: r = momentum * r + (1 - momentum) * batch, with
  // the unbiased batch variance (as PyTorch and TF's fused kernel do).
  const float* m = static_cast<const float*>(mean_.get_data_handle());
  const float* v = static_cast<const float*>(var_.get_data_handle());
  float* rm = static_cast<float*>(run_mean_.get_data_handle());
  float* rv = static_cast<float*>(run_var_.get_data_handle());
  const float unbias = count_per_channel_ > 1
                           ? static_cast<float>(count_per_channel_) / (count_per_channel_ - 1)
                           : 1.0f;
  for (int64_t c = 0; c < channels_; ++c) {
    rm[c] = momentum_ * rm[c] + (1 - momentum_) * m[c];
    rv[c] = momentum_ * rv[c] + (1 - momentum_) * v[c] * unbias;
  }
}

void BatchNorm::backward(const memory& diff_dst, bool need_diff_src) {
  // Backward always produces diff_src alongside the scale/shift gradients.
  (void)need_diff_src;
  bwd_.execute(ctx_.stream, {{DNNL_ARG_SRC, src_},
                             {DNNL_ARG_MEAN, mean_},
                             {DNNL_ARG_VARIANCE, var_},
                             {DNNL_ARG_DIFF_DST, diff_dst},
                             {DNNL_ARG_SCALE, scale_},
                             {DNNL_ARG_SHIFT, shift_},
                             {DNNL_ARG_DIFF_SRC, diff_src_},
                             {DNNL_ARG_DIFF_SCALE, dscale_},
                             {DNNL_ARG_DIFF_SHIFT, dshift_}});
}

}  // namespace dpcnn
