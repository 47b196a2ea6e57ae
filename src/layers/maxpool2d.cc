#include <cstdlib>
#include <string>

#include "core/error.h"
#include "layers/layers_impl.h"

namespace dpcnn {

using dnnl::algorithm;
using dnnl::prop_kind;

MaxPool2D::MaxPool2D(const LayerSpec& spec, const Context& ctx, const memory::desc& src_md,
                     bool training)
    : Layer(ctx, src_md, training) {
  const auto s = src_md.dims();
  if (s.size() != 4) throw Error("maxpool2d needs a 4-D (N,C,H,W) input");
  int64_t pt, pb, pl, pr, oh, ow;
  keras_padding(spec.padding, static_cast<int>(s[2]), spec.pool[0], spec.strides[0], &pt, &pb, &oh);
  keras_padding(spec.padding, static_cast<int>(s[3]), spec.pool[1], spec.strides[1], &pl, &pr, &ow);
  if (oh < 1 || ow < 1) throw Error("maxpool2d window is larger than its input");
  const memory::dims strides = {spec.strides[0], spec.strides[1]};
  const memory::dims kernel = {spec.pool[0], spec.pool[1]};
  const memory::dims pad_l = {pt, pl}, pad_r = {pb, pr};
  // dst in whatever layout matches src (oneDNN keeps blocked layouts blocked),
  // in src's data type (bf16 halves the bytes of this memory-bound layer).
  const memory::desc dst_any({s[0], s[1], oh, ow}, src_md.data_type(), tag::any);
  const auto pk = training ? prop_kind::forward_training : prop_kind::forward_inference;
  fwd_pd_ = dnnl::pooling_forward::primitive_desc(
      {pk, algorithm::pooling_max, src_md, dst_any, strides, kernel, pad_l, pad_r}, ctx.engine);
  fwd_ = dnnl::pooling_forward(fwd_pd_);
  dst_md_ = fwd_pd_.dst_desc();
  dst_ = ctx.alloc(dst_md_, "dst");
  if (!training) return;
  // pool_fast.cc: oneDNN's training-mode max-pool is 15x its inference cost.
  // DPCNN_ONEDNN_MAXPOOL=1 keeps oneDNN's (to measure and test against it).
  const auto gs = pool_geometry(src_md), gd = pool_geometry(dst_md_);
  const char* keep = std::getenv("DPCNN_ONEDNN_MAXPOOL");
  fast_ = !(keep && std::string(keep) == "1") && gs && gd && pt == 0 && pb == 0 && pl == 0 &&
          pr == 0 && strides[0] >= kernel[0] && strides[1] >= kernel[1] &&
          kernel[0] * kernel[1] <= 256 && gs->block == gd->block &&
          (src_md.data_type() == dt::f32 || src_md.data_type() == dt::bf16);
  if (fast_) {
    shape_ = {s[0],
              s[1],
              s[2],
              s[3],
              oh,
              ow,
              kernel[0],
              kernel[1],
              strides[0],
              strides[1],
              static_cast<int64_t>(src_md.get_size()),
              *gs,
              *gd};
    arg_.resize(static_cast<size_t>(s[0] * s[1] * oh * ow));
    diff_src_ = ctx.alloc(src_md, "diff_src");
    return;
  }
  ws_ = ctx.alloc(fwd_pd_.workspace_desc(), "ws");
  const dnnl::pooling_backward::primitive_desc bwd_pd(
      {algorithm::pooling_max, src_md, dst_md_, strides, kernel, pad_l, pad_r}, ctx.engine,
      fwd_pd_);
  bwd_ = dnnl::pooling_backward(bwd_pd);
  ddst_in_ = Converter(ctx, dst_md_, bwd_pd.diff_dst_desc(), "ddst_in");
  dsrc_out_ = Converter(ctx, bwd_pd.diff_src_desc(), src_md_, "dsrc_out");
  diff_src_ = ctx.alloc(bwd_pd.diff_src_desc(), "diff_src");
  if (dsrc_out_.needed()) throw Error("maxpool2d: unexpected diff_src layout");
}

void MaxPool2D::forward(const memory& src, const StepInfo&) {
  if (fast_) {
    pool_fast_forward(shape_, src_md_.data_type(), src.get_data_handle(), dst_.get_data_handle(),
                      arg_.data());
    return;
  }
  std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst_}};
  if (training_) args[DNNL_ARG_WORKSPACE] = ws_;
  fwd_.execute(ctx_.stream, args);
}

void MaxPool2D::backward(const memory& diff_dst, bool need_diff_src) {
  if (!need_diff_src) return;  // no parameters: nothing else to compute
  if (fast_) {
    pool_fast_backward(shape_, src_md_.data_type(), diff_dst.get_data_handle(), arg_.data(),
                       diff_src_.get_data_handle());
    return;
  }
  bwd_.execute(ctx_.stream, {{DNNL_ARG_DIFF_DST, ddst_in_.run(ctx_, diff_dst)},
                             {DNNL_ARG_WORKSPACE, ws_},
                             {DNNL_ARG_DIFF_SRC, diff_src_}});
}

}  // namespace dpcnn
