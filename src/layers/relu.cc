#include "layers/layers_impl.h"

namespace dpcnn {

using dnnl::algorithm;
using dnnl::prop_kind;

ReLU::ReLU(const Context& ctx, const memory::desc& src_md, bool training)
    : Layer(ctx, src_md, training) {
  // Training: the backward reads dst (positive exactly where src was), so
  // that the model may run a ReLU in place (Model::plan_memory).
  const auto pk = training ? prop_kind::forward_training : prop_kind::forward_inference;
  const auto alg = training ? algorithm::eltwise_relu_use_dst_for_bwd : algorithm::eltwise_relu;
  const dnnl::eltwise_forward::primitive_desc fwd_pd({pk, alg, src_md, 0.f, 0.f}, ctx.engine);
  fwd_ = dnnl::eltwise_forward(fwd_pd);
  dst_md_ = fwd_pd.dst_desc();
  dst_ = ctx.alloc(dst_md_, "dst");
  if (!training) return;
  bwd_ = dnnl::eltwise_backward(
      dnnl::eltwise_backward::primitive_desc({alg, src_md, src_md, 0.f, 0.f}, ctx.engine, fwd_pd));
  diff_src_ = ctx.alloc(src_md, "diff_src");
}

void ReLU::forward(const memory& src, const StepInfo&) {
  fwd_.execute(ctx_.stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst_}});
}

void ReLU::backward(const memory& diff_dst, bool need_diff_src) {
  if (!need_diff_src) return;
  bwd_.execute(
      ctx_.stream,
      {{DNNL_ARG_DST, dst_}, {DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_DIFF_SRC, diff_src_}});
}

}  // namespace dpcnn
