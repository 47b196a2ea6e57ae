// Model: a sequential network (config model.layers) with ONE flat parameter
// buffer, ONE flat gradient buffer and one flat state buffer (BatchNorm running
// statistics), in the spirit of llm.c's malloc_and_point_parameters: one
// allreduce and one checkpoint write serve every layer. Every tensor in these
// buffers is plain (OIHW, OI, x) and they are ordered layer by layer, weights
// before bias, so the last layer's gradients sit at the end of the buffer and
// are final first during backward.
//
// oneDNN primitives are shape-specific, so the model keeps one chain of layers
// per (batch size, training/inference) it meets; chains share the buffers.
// Not thread-safe: one training thread; oneDNN uses OpenMP inside primitives.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "layers/layer.h"
#include "layers/softmax_xent.h"

namespace dpcnn {

struct ParamInfo {
  std::string name;            // e.g. "layers.0.conv2d.weight"
  std::vector<int64_t> shape;  // plain layout
  size_t offset = 0;           // in floats, into params()/grads() (or state())
  size_t count = 0;
};

class Model {
 public:
  explicit Model(const ModelConfig& cfg);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  // Keras initialisation from `seed` (Glorot-uniform, zero bias, BN 1/0/0/1).
  void init(uint64_t seed);

  size_t param_count() const { return params_.size(); }
  size_t state_count() const { return state_.size(); }
  float* params() { return params_.data(); }
  float* grads() { return grads_.data(); }
  float* state() { return state_.data(); }
  const float* params() const { return params_.data(); }
  const float* state() const { return state_.data(); }
  const std::vector<ParamInfo>& param_info() const { return param_info_; }
  const std::vector<ParamInfo>& state_info() const { return state_info_; }
  const ModelConfig& config() const { return cfg_; }
  int64_t input_size() const { return cfg_.input[0] * cfg_.input[1] * cfg_.input[2]; }

  // Called during backward with the offset of the first parameter of the layer
  // whose gradients just became final (decreasing offsets).
  using GradsReady = std::function<void(size_t offset)>;

  // One training pass over a slice of n samples (x: n x C x H x W floats,
  // y: n labels): forward, loss, backward. Overwrites grads() with
  // d(sum of losses * grad_scale)/d(params). n may be 0 (this rank's slice of
  // a last partial batch): grads() become zero and every collective call
  // (`ready`, the batch-statistics reducer) is made as for a non-empty slice.
  LossResult train_step(const float* x, const int32_t* y, int n, float grad_scale,
                        const StepInfo& info, const GradsReady& ready = {});
  // Synchronized BatchNorm's peers (several ranks); null: slice statistics.
  // The reducer must outlive the model's use of it.
  void set_batch_stats_reducer(BatchStatsReducer* r) { ctx_.stats_reducer = r; }

  // Inference-mode loss and correct count (BatchNorm uses running stats).
  LossResult evaluate(const float* x, const int32_t* y, int n);
  // Inference-mode log-probabilities, n x classes, valid until the next call.
  const float* log_probs(const float* x, int n);

 private:
  struct Chain;
  struct Planned {
    LayerSpec spec;
    int source;  // index in cfg.model.layers
  };
  void plan_layers();
  void plan_memory();
  Chain& chain(int n, bool training);
  void forward(Chain& c, const float* x, const StepInfo& info);
  LossResult train_step_empty(const StepInfo& info, const GradsReady& ready);

  ModelConfig cfg_;
  std::vector<Planned> plan_;
  Context ctx_;
  std::vector<float> params_, grads_, state_;
  std::vector<ParamInfo> param_info_, state_info_;
  std::vector<size_t> layer_param_offset_, layer_state_offset_;
  std::map<std::pair<int, bool>, std::unique_ptr<Chain>> chains_;
};

}  // namespace dpcnn
