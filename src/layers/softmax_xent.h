// SoftmaxCrossEntropy: the loss at the end of every classifier. Forward runs
// oneDNN's logsoftmax on the (N, K) plain logits; the loss, the correct count
// and the gradient (softmax - onehot) * scale are then a few lines. `scale` is
// 1 / GLOBAL batch size, so summing the gradients of all ranks gives the mean
// over the global batch. Not thread-safe; one per model chain.
#pragma once

#include <cstdint>

#include "layers/layer.h"

namespace dpcnn {

struct LossResult {
  double loss_sum = 0;  // summed over the samples (not averaged)
  int64_t correct = 0;  // argmax == label
  int64_t count = 0;    // samples
};

class SoftmaxCrossEntropy {
 public:
  SoftmaxCrossEntropy(const Context& ctx, const memory::desc& logits_md);
  // Computes log-probabilities; with `grad_scale` > 0 also the gradient.
  LossResult forward(const memory& logits, const int32_t* labels, float grad_scale);
  const memory& diff_logits() const { return diff_; }
  // Log-probabilities of the last forward, (N, K) row-major.
  const float* log_probs() const { return static_cast<const float*>(logp_.get_data_handle()); }

 private:
  const Context& ctx_;
  int64_t n_, k_;
  dnnl::logsoftmax_forward fwd_;
  memory logp_, diff_;
};

}  // namespace dpcnn
