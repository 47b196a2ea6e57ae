#include "core/error.h"
#include "layers/layers_impl.h"

namespace dpcnn {

using dnnl::algorithm;
using dnnl::prop_kind;

Dense::Dense(const LayerSpec& spec, const Context& ctx, const memory::desc& src_md, bool training,
             const LayerTypes& types)
    : WeightedLayer(spec, ctx, src_md, training, types) {
  const auto s = src_md.dims();
  if (s.size() != 2) throw Error("dense needs a 2-D (N, features) input: put a flatten before it");
  const int64_t n = s[0], k = s[1];
  wdims_ = {spec.units, k};
  fan_in_ = static_cast<int>(k);
  fan_out_ = spec.units;
  // As Conv2D: weights, src and dst in the compute type (src reordered into it
  // when the layer before hands on another), the weights' gradient in f32.
  const dt cdt = types.compute;
  const memory::desc src_c =
      src_md.data_type() == cdt ? src_md : memory::desc({n, k}, cdt, tag::nc);
  const memory::desc w_any(wdims_, cdt, tag::any);
  const memory::desc w_grad(wdims_, dt::f32, tag::any);
  const memory::desc b_md = bias_ ? memory::desc({spec.units}, dt::f32, tag::x) : memory::desc();
  // dst stays plain so the loss (and the predict tool) read logits directly.
  const memory::desc dst_md({n, spec.units}, types.dst, tag::nc);
  const memory::desc ddst_md({n, spec.units}, cdt, tag::nc);

  const auto pk = training ? prop_kind::forward_training : prop_kind::forward_inference;
  using Fwd = dnnl::inner_product_forward;
  const Fwd::primitive_desc fwd_pd({pk, src_c, w_any, b_md, dst_md}, relu_attr(relu_), ctx.engine);
  if (!training) {
    setup_from<Fwd>(fwd_pd, tag::oi);
    return;
  }
  using BwdW = dnnl::inner_product_backward_weights;
  using BwdD = dnnl::inner_product_backward_data;
  const BwdW::primitive_desc bw_pd({src_c, w_grad, b_md, ddst_md}, ctx.engine, fwd_pd);
  const BwdD::primitive_desc bd_pd({src_c, w_any, ddst_md}, ctx.engine, fwd_pd);
  setup_from<Fwd, BwdW, BwdD>(fwd_pd, bw_pd, bd_pd, tag::oi);
}

}  // namespace dpcnn
