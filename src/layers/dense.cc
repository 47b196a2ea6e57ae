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
  Descs d;
  d.src = fwd_pd.src_desc();
  d.weights = fwd_pd.weights_desc();
  d.dst = fwd_pd.dst_desc();
  if (!training) {
    setup(Fwd(fwd_pd), {}, {}, d, tag::oi);
    return;
  }
  using BwdW = dnnl::inner_product_backward_weights;
  using BwdD = dnnl::inner_product_backward_data;
  const BwdW::primitive_desc bw_pd({src_md, w_any, b_md, dst_md}, ctx.engine, fwd_pd);
  const BwdD::primitive_desc bd_pd({src_md, w_any, dst_md}, ctx.engine, fwd_pd);
  d.bw_src = bw_pd.src_desc();
  d.bw_diff_dst = bw_pd.diff_dst_desc();
  d.bw_diff_weights = bw_pd.diff_weights_desc();
  d.bd_diff_dst = bd_pd.diff_dst_desc();
  d.bd_weights = bd_pd.weights_desc();
  d.bd_diff_src = bd_pd.diff_src_desc();
  setup(Fwd(fwd_pd), BwdW(bw_pd), BwdD(bd_pd), d, tag::oi);
}

}  // namespace dpcnn
