#include "layers/layers_impl.h"

namespace dpcnn {

Flatten::Flatten(const Context& ctx, const memory::desc& src_md, bool training)
    : Layer(ctx, src_md, training) {
  const auto s = src_md.dims();
  identity_ = s.size() == 2;
  if (identity_) {
    dst_md_ = src_md;
    diff_src_ = ctx.alloc(src_md, "diff_src");
    return;
  }
  int64_t features = 1;
  for (size_t i = 1; i < s.size(); ++i) features *= s[i];
  dst_md_ = memory::desc({s[0], features}, src_md.data_type(), tag::nc);
  dst_ = ctx.alloc(dst_md_, "dst");
  // The same bytes seen as plain N,C,H,W: reordering into this view flattens.
  plain4d_ = memory::desc(s, src_md.data_type(), tag::nchw);
  dst_plain4d_ = memory(plain4d_, ctx.engine, dst_.get_data_handle());
  to_plain_ = Converter(ctx, src_md, plain4d_, "to_plain");
  if (training) {
    from_plain_ = Converter(ctx, plain4d_, src_md, "from_plain");
    diff_src_ = ctx.alloc(src_md, "diff_src");
  }
}

void Flatten::forward(const memory& src, const StepInfo&) {
  if (identity_) {
    dst_ = src;
    return;
  }
  to_plain_.run_into(ctx_, src, dst_plain4d_);
}

void Flatten::backward(const memory& diff_dst, bool need_diff_src) {
  if (!need_diff_src) return;
  if (identity_) {
    diff_src_ = diff_dst;
    return;
  }
  from_plain_.run_into(ctx_, memory(plain4d_, ctx_.engine, diff_dst.get_data_handle()), diff_src_);
}

}  // namespace dpcnn
