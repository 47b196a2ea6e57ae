#include "layers/softmax_xent.h"

#include <cmath>

#include "core/error.h"

namespace dpcnn {

SoftmaxCrossEntropy::SoftmaxCrossEntropy(const Context& ctx, const memory::desc& logits_md)
    : ctx_(ctx) {
  const auto d = logits_md.dims();
  if (d.size() != 2) throw Error("the loss needs (N, classes) logits");
  n_ = d[0];
  k_ = d[1];
  const memory::desc plain({n_, k_}, dt::f32, tag::nc);
  if (logits_md != plain) throw Error("the loss needs plain (N, classes) logits");
  fwd_ = dnnl::logsoftmax_forward(dnnl::logsoftmax_forward::primitive_desc(
      {dnnl::prop_kind::forward_inference, plain, 1}, ctx.engine));
  logp_ = ctx.alloc(plain, "logp");
  diff_ = ctx.alloc(plain, "diff");
}

LossResult SoftmaxCrossEntropy::forward(const memory& logits, const int32_t* labels,
                                        float grad_scale) {
  fwd_.execute(ctx_.stream, {{DNNL_ARG_SRC, logits}, {DNNL_ARG_DST, logp_}});
  const float* lp = log_probs();
  float* g = static_cast<float*>(diff_.get_data_handle());
  LossResult r;
  r.count = n_;
  for (int64_t i = 0; i < n_; ++i) {
    const float* row = lp + i * k_;
    if (!labels) continue;  // prediction: log-probabilities only
    const int32_t y = labels[i];
    if (y < 0 || y >= k_) throw Error("label " + std::to_string(y) + " out of range");
    r.loss_sum -= row[y];
    int64_t best = 0;
    for (int64_t j = 1; j < k_; ++j)
      if (row[j] > row[best]) best = j;
    r.correct += (best == y);
    if (grad_scale > 0) {
      for (int64_t j = 0; j < k_; ++j)
        g[i * k_ + j] = (std::exp(row[j]) - (j == y ? 1.0f : 0.0f)) * grad_scale;
    }
  }
  return r;
}

}  // namespace dpcnn
