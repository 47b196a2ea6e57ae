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

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "layers/layer.h"
#include "layers/precision.h"
#include "layers/softmax_xent.h"

namespace dpcnn {

struct ParamInfo {
  std::string name;            // e.g. "layers.0.conv2d.weight"
  std::vector<int64_t> shape;  // plain layout
  size_t offset = 0;           // in floats, into params()/grads() (or state())
  size_t count = 0;
};

// Time spent in one executed layer (Model::set_profiling), summed over steps.
struct LayerTiming {
  std::string name;  // e.g. "conv2d(32) bf16->f32", in execution order
  double forward_s = 0, backward_s = 0;
  int64_t steps = 0;
};

class Model {
 public:
  // `precision` bf16: mixed precision (layers/precision.h); the flat buffers
  // stay f32 either way, so checkpoints do not depend on it.
  explicit Model(const ModelConfig& cfg, Precision precision = Precision::kFp32);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  // Keras initialisation from `seed` (Glorot-uniform, zero bias, BN 1/0/0/1).
  void init(uint64_t seed);

  size_t param_count() const { return params_.size(); }
  size_t state_count() const { return state_.size(); }
  // Write access to the parameters (or state) ends a freeze_params().
  float* params() {
    ctx_.frozen_params = 0;
    return params_.data();
  }
  float* grads() { return grads_.data(); }
  float* state() {
    ctx_.frozen_params = 0;
    return state_.data();
  }
  // A promise that the parameters and state stay as they are until the next
  // non-const params()/state() (pointers taken before must not be written
  // through): inference then reorders each layer's weights once, not every
  // batch (3-4 % of an fp32 batch). dpcnn-predict's classify does this.
  void freeze_params() { ctx_.frozen_params = ++freezes_; }
  const float* params() const { return params_.data(); }
  const float* state() const { return state_.data(); }
  const std::vector<ParamInfo>& param_info() const { return param_info_; }
  const std::vector<ParamInfo>& state_info() const { return state_info_; }
  const ModelConfig& config() const { return cfg_; }
  Precision precision() const { return precision_; }
  // What evaluate() and log_probs() compute in: the constructor's precision
  // unless set (before the first inference call). The trainer evaluates in
  // f32 so that accuracy is the same for every rank count.
  void set_inference_precision(Precision p) { inference_precision_ = p; }
  // What each executed layer computes in: one line a layer.
  std::string precision_plan() const;

  // Per-layer forward/backward wall time of training steps (off by default:
  // the timing waits on the stream after every layer).
  void set_profiling(bool on) { profiling_ = on; }
  const std::vector<LayerTiming>& layer_timings() const { return timings_; }
  // The timings as a table, milliseconds per step (`per`: "step", "batch").
  std::string profile_table(const std::string& per) const;
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
    int source;          // index in cfg.model.layers
    LayerTypes types{};  // f32 unless plan_precision says bf16
  };
  void plan_layers();
  void plan_precision();
  void plan_memory();
  Chain& chain(int n, bool training);
  void forward(Chain& c, const float* x, const StepInfo& info, bool timed = false);
  void start_timing(const Chain& c);
  double seconds_since(std::chrono::steady_clock::time_point t0);
  LossResult train_step_empty(const StepInfo& info, const GradsReady& ready);

  ModelConfig cfg_;
  Precision precision_, inference_precision_;
  std::vector<Planned> plan_;
  bool profiling_ = false;
  std::vector<LayerTiming> timings_;
  Context ctx_;
  std::vector<float> params_, grads_, state_;
  std::vector<ParamInfo> param_info_, state_info_;
  std::vector<size_t> layer_param_offset_, layer_state_offset_;
  std::map<std::pair<int, bool>, std::unique_ptr<Chain>> chains_;
  uint64_t freezes_ = 0;
};

}  // namespace dpcnn
