#include <cstring>

#include "layers/layers_impl.h"

namespace dpcnn {

using dnnl::algorithm;
using dnnl::prop_kind;

WeightedLayer::WeightedLayer(const LayerSpec& spec, const Context& ctx, const memory::desc& src_md,
                             bool training, const LayerTypes& types)
    : Layer(ctx, src_md, training),
      relu_(spec.activation == "relu"),
      bias_(spec.use_bias),
      types_(types) {}

dnnl::primitive_attr WeightedLayer::relu_attr(bool relu) {
  dnnl::primitive_attr attr;
  if (relu) {
    dnnl::post_ops po;
    po.append_eltwise(1.0f, algorithm::eltwise_relu, 0.0f, 0.0f);
    attr.set_post_ops(po);
  }
  return attr;
}

void WeightedLayer::setup(dnnl::primitive fwd, dnnl::primitive bwd_w, dnnl::primitive bwd_d,
                          const Descs& d, memory::format_tag user_w_tag) {
  fwd_ = fwd;
  bwd_w_ = bwd_w;
  bwd_d_ = bwd_d;
  d_ = d;
  user_w_tag_ = user_w_tag;
  dst_md_ = d.dst;
  dst_ = ctx_.alloc(dst_md_, "dst");
  src_in_ = Converter(ctx_, src_md_, d.src, "src_in");
  if (!training_) return;
  if (relu_) {
    auto hint = dnnl::eltwise_forward::primitive_desc(
        {prop_kind::forward_training, algorithm::eltwise_relu_use_dst_for_bwd, dst_md_, 0.f, 0.f},
        ctx_.engine);
    relu_bwd_ = dnnl::eltwise_backward(dnnl::eltwise_backward::primitive_desc(
        {algorithm::eltwise_relu_use_dst_for_bwd, dst_md_, dst_md_, 0.f, 0.f}, ctx_.engine, hint));
    diff_pre_ = ctx_.alloc(dst_md_, "diff_pre");
  }
  ddst_w_ = Converter(ctx_, dst_md_, d.bw_diff_dst, "ddst_w");
  ddst_d_ = Converter(ctx_, dst_md_, d.bd_diff_dst, "ddst_d");
  src_w_ = Converter(ctx_, d.src, d.bw_src, "src_w");
  diff_src_ = ctx_.alloc(src_md_, "diff_src");
  dsrc_out_ = Converter(ctx_, d.bd_diff_src, src_md_, "dsrc_out");
  diff_src_raw_ = dsrc_out_.needed() ? ctx_.alloc(d.bd_diff_src, "diff_src_raw") : diff_src_;
  dw_int_ = ctx_.alloc(d.bw_diff_weights, "dw");
}

size_t WeightedLayer::param_count() const {
  size_t nw = 1;
  for (auto v : wdims_) nw *= static_cast<size_t>(v);
  return nw + (bias_ ? wdims_[0] : 0);
}

void WeightedLayer::init_params(float* params, float*, Rng& rng) const {
  const size_t nw = param_count() - (bias_ ? wdims_[0] : 0);
  glorot_uniform(params, nw, fan_in_, fan_out_, rng);
  if (bias_) std::memset(params + nw, 0, wdims_[0] * sizeof(float));
}

void WeightedLayer::bind(float* params, float* grads, float*) {
  const memory::desc user_w_md(wdims_, dt::f32, user_w_tag_);
  const size_t nw = user_w_md.get_size() / sizeof(float);
  const memory::desc b_md({wdims_[0]}, dt::f32, tag::x);
  user_w_ = memory(user_w_md, ctx_.engine, params);
  w_in_ = Converter(ctx_, user_w_md, d_.weights, "w_in");
  if (bias_) user_b_ = memory(b_md, ctx_.engine, params + nw);
  if (!training_) return;
  w_bd_ = Converter(ctx_, user_w_md, d_.bd_weights, "w_bd");
  user_dw_ = memory(user_w_md, ctx_.engine, grads);
  dw_out_ = Converter(ctx_, d_.bw_diff_weights, user_w_md, "dw_out");
  if (!dw_out_.needed()) dw_int_ = user_dw_;
  if (bias_) user_db_ = memory(b_md, ctx_.engine, grads + nw);
}

void WeightedLayer::forward(const memory& src, const StepInfo&) {
  src_ = src_in_.run(ctx_, src);
  if (training_ || ctx_.frozen_params == 0 || !w_in_.needed()) {
    fwd_w_ = w_in_.run(ctx_, user_w_);
  } else if (w_frozen_gen_ != ctx_.frozen_params) {
    // Frozen parameters (dpcnn-predict): reorder once into a buffer of this
    // layer's own (the shared "w_in" is rewritten by other chains) and reuse it.
    if (!w_frozen_.needed()) w_frozen_ = Converter(ctx_, user_w_.get_desc(), d_.weights, nullptr);
    fwd_w_ = w_frozen_.run(ctx_, user_w_);
    w_frozen_gen_ = ctx_.frozen_params;
  }
  std::unordered_map<int, memory> args = {
      {DNNL_ARG_SRC, src_}, {DNNL_ARG_WEIGHTS, fwd_w_}, {DNNL_ARG_DST, dst_}};
  if (bias_) args[DNNL_ARG_BIAS] = user_b_;
  fwd_.execute(ctx_.stream, args);
}

void WeightedLayer::backward(const memory& diff_dst, bool need_diff_src) {
  memory dd = diff_dst;
  if (relu_) {
    relu_bwd_.execute(
        ctx_.stream,
        {{DNNL_ARG_DST, dst_}, {DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_DIFF_SRC, diff_pre_}});
    dd = diff_pre_;
  }
  // The weights gradient lands in the plain gradient buffer, through a reorder
  // only when the primitive prefers a blocked layout.
  std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, src_w_.run(ctx_, src_)},
                                          {DNNL_ARG_DIFF_DST, ddst_w_.run(ctx_, dd)},
                                          {DNNL_ARG_DIFF_WEIGHTS, dw_int_}};
  if (bias_) args[DNNL_ARG_DIFF_BIAS] = user_db_;
  bwd_w_.execute(ctx_.stream, args);
  dw_out_.run_into(ctx_, dw_int_, user_dw_);
  if (!need_diff_src) return;
  // Reuse the forward's reordered weights when backward-data wants the same layout.
  const memory w = (d_.bd_weights == d_.weights) ? fwd_w_ : w_bd_.run(ctx_, user_w_);
  bwd_d_.execute(ctx_.stream, {{DNNL_ARG_DIFF_DST, ddst_d_.run(ctx_, dd)},
                               {DNNL_ARG_WEIGHTS, w},
                               {DNNL_ARG_DIFF_SRC, diff_src_raw_}});
  dsrc_out_.run_into(ctx_, diff_src_raw_, diff_src_);
}

}  // namespace dpcnn
