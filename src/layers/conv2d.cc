#include "core/error.h"
#include "layers/layers_impl.h"

namespace dpcnn {

using dnnl::algorithm;
using dnnl::prop_kind;

Conv2D::Conv2D(const LayerSpec& spec, const Context& ctx, const memory::desc& src_md, bool training,
               const LayerTypes& types)
    : WeightedLayer(spec, ctx, src_md, training, types) {
  const auto s = src_md.dims();
  if (s.size() != 4) throw Error("conv2d needs a 4-D (N,C,H,W) input");
  const int64_t n = s[0], c = s[1], h = s[2], w = s[3];
  int64_t pt, pb, pl, pr, oh, ow;
  keras_padding(spec.padding, static_cast<int>(h), spec.kernel[0], spec.strides[0], &pt, &pb, &oh);
  keras_padding(spec.padding, static_cast<int>(w), spec.kernel[1], spec.strides[1], &pl, &pr, &ow);
  if (oh < 1 || ow < 1) throw Error("conv2d kernel is larger than its input");
  wdims_ = {spec.filters, c, spec.kernel[0], spec.kernel[1]};
  const int rf = spec.kernel[0] * spec.kernel[1];
  fan_in_ = static_cast<int>(c) * rf;
  fan_out_ = spec.filters * rf;
  const memory::dims strides = {spec.strides[0], spec.strides[1]};
  const memory::dims pad_l = {pt, pl}, pad_r = {pb, pr};
  // format_tag::any lets oneDNN pick its preferred (blocked) layouts. In bf16
  // the weights' gradient stays f32 (w_grad): it lands in the f32 gradient
  // buffer the allreduce and the optimizer read. Bias and its gradient are f32.
  const dt cdt = types.compute;
  const memory::desc src_any({n, c, h, w}, cdt, tag::any);
  const memory::desc w_any(wdims_, cdt, tag::any);
  const memory::desc w_grad(wdims_, dt::f32, tag::any);
  const memory::desc b_md = bias_ ? memory::desc({spec.filters}, dt::f32, tag::x) : memory::desc();
  const memory::desc dst_any({n, spec.filters, oh, ow}, types.dst, tag::any);
  const memory::desc ddst_any({n, spec.filters, oh, ow}, cdt, tag::any);

  const auto pk = training ? prop_kind::forward_training : prop_kind::forward_inference;
  using Fwd = dnnl::convolution_forward;
  const Fwd::primitive_desc fwd_pd(
      {pk, algorithm::convolution_direct, src_any, w_any, b_md, dst_any, strides, pad_l, pad_r},
      relu_attr(relu_), ctx.engine);
  if (!training) {
    setup_from<Fwd>(fwd_pd, tag::oihw);
    return;
  }
  using BwdW = dnnl::convolution_backward_weights;
  using BwdD = dnnl::convolution_backward_data;
  const BwdW::primitive_desc bw_pd(
      {algorithm::convolution_direct, src_any, w_grad, b_md, ddst_any, strides, pad_l, pad_r},
      ctx.engine, fwd_pd);
  const BwdD::primitive_desc bd_pd(
      {algorithm::convolution_direct, src_any, w_any, ddst_any, strides, pad_l, pad_r}, ctx.engine,
      fwd_pd);
  setup_from<Fwd, BwdW, BwdD>(fwd_pd, bw_pd, bd_pd, tag::oihw);
}

}  // namespace dpcnn
