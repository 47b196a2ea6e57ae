#include "core/error.h"
#include "layers/layers_impl.h"

namespace dpcnn {

using dnnl::algorithm;
using dnnl::prop_kind;

Dense::Dense(const LayerSpec& spec, const Context& ctx, const memory::desc& src_md, bool training)
    : WeightedLayer(spec, ctx, src_md, training) {
  const auto s = src_md.dims();
  if (s.size() != 2) throw Error("dense needs a 2-D (N, features) input: put a flatten before it");
  const int64_t n = s[0], k = s[1];
  wdims_ = {spec.units, k};
  fan_in_ = static_cast<int>(k);
  fan_out_ = spec.units;
  const memory::desc w_any(wdims_, dt::f32, tag::any);
  const memory::desc b_md = bias_ ? memory::desc({spec.units}, dt::f32, tag::x) : memory::desc();
  // dst stays plain so the loss (and the predict tool) read logits directly.
  const memory::desc dst_md({n, spec.units}, dt::f32, tag::nc);

  const auto pk = training ? prop_kind::forward_training : prop_kind::forward_inference;
  using Fwd = dnnl::inner_product_forward;
  const Fwd::primitive_desc fwd_pd({pk, src_md, w_any, b_md, dst_md}, relu_attr(relu_), ctx.engine);
  if (!training) {
    setup_from<Fwd>(fwd_pd, tag::oi);
    return;
  }
  using BwdW = dnnl::inner_product_backward_weights;
  using BwdD = dnnl::inner_product_backward_data;
  const BwdW::primitive_desc bw_pd({src_md, w_any, b_md, dst_md}, ctx.engine, fwd_pd);
  const BwdD::primitive_desc bd_pd({src_md, w_any, dst_md}, ctx.engine, fwd_pd);
  setup_from<Fwd, BwdW, BwdD>(fwd_pd, bw_pd, bd_pd, tag::oi);
}

}  // namespace dpcnn
