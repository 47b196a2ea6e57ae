// Optimizers over the model's flat parameter and gradient buffers, with the
// update rules and defaults of Keras (tf.keras.optimizers): SGD (momentum,
// Nesterov), RMSprop (rho 0.9, epsilon 1e-7 inside the root), Adam (bias-corrected, epsilon 1e-7),
// each with optional decoupled weight decay (p -= lr * wd * p, as Keras's
// `weight_decay` and AdamW). And the learning-rate schedules. Not thread-safe;
// step() is called by the training thread after the gradient allreduce.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"

namespace dpcnn {

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // One update with learning rate `lr`; grads are the mean over the global batch.
  virtual void step(float* params, const float* grads, size_t n, float lr) = 0;
  // Named state buffers (for checkpoints), and the number of steps taken.
  virtual std::vector<std::pair<std::string, std::vector<float>*>> slots() = 0;
  int64_t iterations = 0;
};

std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& cfg, size_t param_count);

// Learning rate for global step `step` (0-based) of a run of `total_steps`
// with `steps_per_epoch`: constant, step (x gamma every step_epochs epochs) or
// cosine (to min_lr at total_steps), after an optional linear warm-up.
float learning_rate(const OptimizerConfig& cfg, int64_t step, int64_t steps_per_epoch,
                    int64_t total_steps);

}  // namespace dpcnn
