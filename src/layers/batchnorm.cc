#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "layers/layers_impl.h"

namespace dpcnn {

using dnnl::algorithm;
using dnnl::normalization_flags;
using dnnl::prop_kind;

BatchNorm::BatchNorm(const LayerSpec& spec, const Context& ctx, const memory::desc& src_md,
                     bool training)
    : Layer(ctx, src_md, training),
      momentum_(spec.momentum),
      epsilon_(spec.epsilon),
      sync_(spec.sync) {
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

// Built only when a reducer is present (several ranks): a one-rank run never
// pays for primitives it does not use.
void BatchNorm::build_sync_primitives() {
  const auto flags = normalization_flags::use_scale | normalization_flags::use_shift |
                     normalization_flags::use_global_stats;
  const dnnl::batch_normalization_forward::primitive_desc fwd_pd(
      {prop_kind::forward_training, src_md_, epsilon_, flags}, ctx_.engine);
  if (fwd_pd.dst_desc() != dst_md_) throw Error("batchnorm: the synchronized forward changed dst");
  fwd_global_ = dnnl::batch_normalization_forward(fwd_pd);
  bwd_global_ =
      dnnl::batch_normalization_backward(dnnl::batch_normalization_backward::primitive_desc(
          {prop_kind::backward, dst_md_, src_md_, epsilon_, flags}, ctx_.engine, fwd_pd));
  const memory::desc c_md({channels_}, dt::f32, tag::x);
  corr_a_ = memory(c_md, ctx_.engine);
  corr_b_ = memory(c_md, ctx_.engine);
  // diff_src += correction, in place. (A binary primitive that broadcasts
  // per-channel vectors over a blocked layout runs oneDNN's reference code
  // here, ~100x slower; adding two tensors of one layout is JIT code.)
  correct_ = dnnl::binary(dnnl::binary::primitive_desc(
      {algorithm::binary_add, src_md_, dst_md_, src_md_}, ctx_.engine));
  sync_built_ = true;
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

// One allreduce of 1 + 2C doubles: the count and, per channel, count * mean
// and count * (variance + mean^2) of this slice (oneDNN's own, accurate slice
// statistics). The global variance is then E[x^2] - mean^2 in double, whose
// error stays far below float's unless |mean| / sigma exceeds ~1e4.
double BatchNorm::reduce_statistics(double local_count) {
  const int64_t c = channels_;
  sums_.assign(1 + 2 * c, 0.0);
  sums_[0] = local_count;
  float* m = static_cast<float*>(mean_.get_data_handle());
  float* v = static_cast<float*>(var_.get_data_handle());
  if (local_count > 0)
    for (int64_t k = 0; k < c; ++k) {
      sums_[1 + k] = local_count * m[k];
      sums_[1 + c + k] = local_count * (double(v[k]) + double(m[k]) * m[k]);
    }
  ctx_.stats_reducer->allreduce_sum(sums_.data(), sums_.size());
  const double n = sums_[0];
  for (int64_t k = 0; k < c; ++k) {
    const double mean = sums_[1 + k] / n;
    m[k] = static_cast<float>(mean);
    v[k] = static_cast<float>(std::max(0.0, sums_[1 + c + k] / n - mean * mean));
  }
  return n;
}

// Keras: r = momentum * r + (1 - momentum) * batch, with the unbiased batch
// variance (as PyTorch and TF's fused kernel do) over `count` values a channel.
void BatchNorm::update_running_statistics(double count) {
  const float* m = static_cast<const float*>(mean_.get_data_handle());
  const float* v = static_cast<const float*>(var_.get_data_handle());
  float* rm = static_cast<float*>(run_mean_.get_data_handle());
  float* rv = static_cast<float*>(run_var_.get_data_handle());
  const float unbias = count > 1 ? static_cast<float>(count / (count - 1)) : 1.0f;
  for (int64_t c = 0; c < channels_; ++c) {
    rm[c] = momentum_ * rm[c] + (1 - momentum_) * m[c];
    rv[c] = momentum_ * rv[c] + (1 - momentum_) * v[c] * unbias;
  }
}

// One forward primitive (slice or global statistics, or inference) over src.
void BatchNorm::run_forward(const dnnl::batch_normalization_forward& prim, const memory& src,
                            const memory& mean, const memory& var) {
  prim.execute(ctx_.stream, {{DNNL_ARG_SRC, src},
                             {DNNL_ARG_SCALE, scale_},
                             {DNNL_ARG_SHIFT, shift_},
                             {DNNL_ARG_MEAN, mean},
                             {DNNL_ARG_VARIANCE, var},
                             {DNNL_ARG_DST, dst_}});
}

void BatchNorm::forward(const memory& src, const StepInfo&) {
  src_ = src;
  if (!training_) {
    run_forward(fwd_, src, run_mean_, run_var_);
    return;
  }
  // This slice's statistics (and, without synchronization, the result).
  run_forward(fwd_, src, mean_, var_);
  // The CPU engine with OpenMP executes synchronously: mean_ and var_ are
  // ready to read here (as for every host-side read in the layers).
  if (!synced()) {
    update_running_statistics(static_cast<double>(count_per_channel_));
    return;
  }
  if (!sync_built_) build_sync_primitives();
  global_count_ = reduce_statistics(static_cast<double>(count_per_channel_));
  run_forward(fwd_global_, src, mean_, var_);
  update_running_statistics(global_count_);
}

void BatchNorm::forward_empty(const StepInfo&) {
  // Unsynchronized, an empty slice has no statistics and leaves the running
  // ones alone; synchronized, it must join the reduction and then apply the
  // same running-statistics update as every other rank.
  if (!synced()) return;
  global_count_ = reduce_statistics(0.0);
  update_running_statistics(global_count_);
}

void BatchNorm::backward(const memory& diff_dst, bool need_diff_src) {
  if (!synced()) {
    // Backward always produces diff_src alongside the scale/shift gradients.
    bwd_.execute(ctx_.stream, {{DNNL_ARG_SRC, src_},
                               {DNNL_ARG_MEAN, mean_},
                               {DNNL_ARG_VARIANCE, var_},
                               {DNNL_ARG_DIFF_DST, diff_dst},
                               {DNNL_ARG_SCALE, scale_},
                               {DNNL_ARG_SHIFT, shift_},
                               {DNNL_ARG_DIFF_SRC, diff_src_},
                               {DNNL_ARG_DIFF_SCALE, dscale_},
                               {DNNL_ARG_DIFF_SHIFT, dshift_}});
    return;
  }
  // With the global statistics held constant oneDNN gives diff_src =
  // gamma/sigma * diff_dst and this slice's sums dgamma = sum(diff_dst * xhat),
  // dbeta = sum(diff_dst), which are also this rank's parameter gradients (the
  // gradient allreduce adds the other ranks'). The full gradient over the
  // global batch of N values a channel is
  //   diff_src = gamma/sigma * (diff_dst - DBETA/N - xhat * DGAMMA/N)
  // with DGAMMA, DBETA summed over all ranks: one reduction of 2C doubles.
  bwd_global_.execute(ctx_.stream, {{DNNL_ARG_SRC, src_},
                                    {DNNL_ARG_MEAN, mean_},
                                    {DNNL_ARG_VARIANCE, var_},
                                    {DNNL_ARG_DIFF_DST, diff_dst},
                                    {DNNL_ARG_SCALE, scale_},
                                    {DNNL_ARG_SHIFT, shift_},
                                    {DNNL_ARG_DIFF_SRC, diff_src_},
                                    {DNNL_ARG_DIFF_SCALE, dscale_},
                                    {DNNL_ARG_DIFF_SHIFT, dshift_}});
  if (!need_diff_src) return;  // the same on every rank (first layer)
  const int64_t c = channels_;
  const float* dg = static_cast<const float*>(dscale_.get_data_handle());
  const float* db = static_cast<const float*>(dshift_.get_data_handle());
  sums_.resize(2 * c);
  for (int64_t k = 0; k < c; ++k) {
    sums_[k] = dg[k];
    sums_[c + k] = db[k];
  }
  ctx_.stats_reducer->allreduce_sum(sums_.data(), sums_.size());
  const float* gamma = static_cast<const float*>(scale_.get_data_handle());
  const float* v = static_cast<const float*>(var_.get_data_handle());
  float* a = static_cast<float*>(corr_a_.get_data_handle());
  float* b = static_cast<float*>(corr_b_.get_data_handle());
  for (int64_t k = 0; k < c; ++k) {
    const double inv = 1.0 / std::sqrt(double(v[k]) + epsilon_);
    a[k] = static_cast<float>(-gamma[k] * sums_[k] * inv / global_count_);
    b[k] = static_cast<float>(-gamma[k] * sums_[c + k] * inv / global_count_);
  }
  // What diff_src still lacks, -gamma/(sigma N) * (DBETA + xhat * DGAMMA), is
  // itself a batch normalisation of src with the same statistics, scale a and
  // shift b: the forward primitive computes it, subtracting the mean first (no
  // cancellation when |mean| >> sigma). It goes into dst_, which is dead now:
  // the layers after this one have finished their backward and diff_dst
  // (which may share dst_'s memory, Model::plan_memory) was consumed above.
  fwd_global_.execute(ctx_.stream, {{DNNL_ARG_SRC, src_},
                                    {DNNL_ARG_SCALE, corr_a_},
                                    {DNNL_ARG_SHIFT, corr_b_},
                                    {DNNL_ARG_MEAN, mean_},
                                    {DNNL_ARG_VARIANCE, var_},
                                    {DNNL_ARG_DST, dst_}});
  correct_.execute(
      ctx_.stream,
      {{DNNL_ARG_SRC_0, diff_src_}, {DNNL_ARG_SRC_1, dst_}, {DNNL_ARG_DST, diff_src_}});
}

void BatchNorm::backward_empty(bool need_diff_src) {
  if (!synced() || !need_diff_src) return;
  sums_.assign(2 * channels_, 0.0);
  ctx_.stats_reducer->allreduce_sum(sums_.data(), sums_.size());
}

}  // namespace dpcnn
