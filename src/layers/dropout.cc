#include <cstring>

#include "layers/layers_impl.h"

namespace dpcnn {

Dropout::Dropout(const LayerSpec& spec, const Context& ctx, const memory::desc& src_md,
                 bool training)
    : Layer(ctx, src_md, training), rate_(spec.rate) {
  dst_md_ = src_md;
  if (!training) return;
  dst_ = ctx.alloc(dst_md_, "dst");
  diff_src_ = ctx.alloc(src_md, "diff_src");
  mask_.resize(src_md.get_size() / sizeof(float));
}

void Dropout::forward(const memory& src, const StepInfo& info) {
  if (!training_ || rate_ == 0.0f) {
    dst_ = src;
    return;
  }
  // N is the outermost dimension of every layout used here, so each sample owns
  // one contiguous chunk (including any layout padding, which stays zero).
  const int64_t n = src_md_.dims()[0];
  if (n <= 0) return;  // never built for an empty slice (Model::train_step), but never divide by 0
  const size_t per = mask_.size() / static_cast<size_t>(n);
  const float scale = 1.0f / (1.0f - rate_);
  const float* x = static_cast<const float*>(src.get_data_handle());
  float* y = static_cast<float*>(dst_.get_data_handle());
  for (int64_t i = 0; i < n; ++i) {
    Rng rng(mix_seed(info.seed ^ 0x44524f50ULL, info.step,
                     static_cast<uint64_t>(info.first_sample + i)));
    for (size_t j = i * per; j < (i + 1) * per; ++j) {
      mask_[j] = rng.uniform01() >= rate_;
      y[j] = mask_[j] ? x[j] * scale : 0.0f;
    }
  }
}

void Dropout::backward(const memory& diff_dst, bool need_diff_src) {
  if (!need_diff_src) return;
  if (rate_ == 0.0f) {
    diff_src_ = diff_dst;
    return;
  }
  const float scale = 1.0f / (1.0f - rate_);
  const float* dy = static_cast<const float*>(diff_dst.get_data_handle());
  float* dx = static_cast<float*>(diff_src_.get_data_handle());
  for (size_t j = 0; j < mask_.size(); ++j) dx[j] = mask_[j] ? dy[j] * scale : 0.0f;
}

}  // namespace dpcnn
