// Layer: one network layer, built for ONE input memory descriptor (batch size
// and layout) and one mode (training or inference) on oneDNN 2.6 primitives.
// The model builds one chain of layers per batch size it meets; all chains share
// the same flat parameter, gradient and state buffers, which hold every tensor in
// plain layout (OIHW / OI / x) whatever layout the primitives prefer inside.
//
// Layout contract between neighbours: layer i's src descriptor is layer i-1's
// dst descriptor (often a blocked layout such as nChw16c, chosen by oneDNN with
// format_tag::any); dst() is produced in dst_md() and diff_src() in src_md().
// Each layer reorders internally when its primitives want something else
// (Converter). Not thread-safe: one training thread drives a chain; oneDNN
// parallelises inside each primitive with OpenMP.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "core/rng.h"
#include "layers/batch_stats.h"

namespace dpcnn {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

// The engine and stream all layers run on (CPU, in-order), and the memory
// their activations live in.
//
// A model keeps one chain of layers per batch size, but only one chain runs
// at a time and no activation outlives a step, so the buffer a layer in slot i
// uses for a role ("dst", "diff_src", ...) can be the same memory in every
// chain: alloc() hands out such shared buffers while a slot is set
// (begin_layer), and private ones otherwise (layer tests). A request larger than the shared buffer
// gets a new one; the old stays alive for the chains that use it. This keeps a worker's activations
// at one chain's worth (memory per rank is a target).
class Context {
 public:
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};

  // `role` names the buffer within its layer (a string literal).
  memory alloc(const memory::desc& md, const char* role) const;
  void begin_layer(int slot) const { slot_ = slot; }
  // Makes (slot, role) the same memory as (to_slot, to_role): for buffers whose
  // lifetimes within a step do not overlap (see Model::plan_memory).
  void alias(int slot, const std::string& role, int to_slot, const std::string& to_role) {
    aliases_[{slot, role}] = {to_slot, to_role};
  }
  void end_layer() const { slot_ = -1; }

  // Set by Model::set_batch_stats_reducer (several ranks); null: one rank or a
  // single-process tool. Layers read it at each step, not at construction.
  BatchStatsReducer* stats_reducer = nullptr;
  // Non-zero between Model::freeze_params and the next write access to the
  // parameters (a new number at each freeze): inference layers may keep their
  // weights in the primitives' layout instead of reordering them every batch.
  uint64_t frozen_params = 0;

 private:
  struct Buffer {
    std::shared_ptr<void> data;
    size_t bytes = 0;
  };
  mutable int slot_ = -1;
  mutable std::map<std::pair<int, std::string>, Buffer> shared_;
  std::map<std::pair<int, std::string>, std::pair<int, std::string>> aliases_;
  mutable std::vector<std::shared_ptr<void>> retired_;
};

// Per-step facts a layer may need (dropout masks depend on the GLOBAL sample
// index so that any rank count draws the same masks).
struct StepInfo {
  uint64_t seed = 0;
  uint64_t step = 0;
  int64_t first_sample = 0;  // global position of this slice's first sample in the batch
};

// Moves data between two descriptors of the same tensor: a no-op view when they
// match, otherwise a reorder into a buffer created once: the slot's shared one
// for `role` (Context::alloc), or one of its own when `role` is null.
class Converter {
 public:
  Converter() = default;
  Converter(const Context& ctx, const memory::desc& from, const memory::desc& to, const char* role);
  // Returns `from` itself, or the reordered copy.
  const memory& run(const Context& ctx, const memory& from);
  // Reorders `from` into the caller's `to` memory (always copies when needed).
  void run_into(const Context& ctx, const memory& from, const memory& to);
  bool needed() const { return needed_; }

 private:
  bool needed_ = false;
  memory out_;
  dnnl::reorder reorder_;
};

class Layer {
 public:
  Layer(const Context& ctx, const memory::desc& src_md, bool training)
      : ctx_(ctx), src_md_(src_md), training_(training) {}
  virtual ~Layer() = default;
  Layer(const Layer&) = delete;
  Layer& operator=(const Layer&) = delete;

  virtual std::string kind() const = 0;
  const memory::desc& src_md() const { return src_md_; }
  const memory::desc& dst_md() const { return dst_md_; }

  // Floats this layer owns in the flat buffers (weights then bias), and in the
  // non-trainable state buffer (e.g. BatchNorm running mean and variance).
  virtual size_t param_count() const { return 0; }
  virtual size_t state_count() const { return 0; }
  // Keras initialisation of this layer's slice: Glorot-uniform weights, zero
  // biases, BatchNorm gamma 1 / beta 0, running mean 0 / var 1.
  virtual void init_params(float* /*params*/, float* /*state*/, Rng& /*rng*/) const {}
  // Points the layer at its slices of the shared buffers (called once).
  virtual void bind(float* /*params*/, float* /*grads*/, float* /*state*/) {}

  // src must have src_md(). The result stays valid until the next forward.
  virtual void forward(const memory& src, const StepInfo& info) = 0;
  // diff_dst has dst_md(). Overwrites this layer's gradient slice and, unless
  // need_diff_src is false (first layer), produces diff_src().
  virtual void backward(const memory& diff_dst, bool need_diff_src) = 0;

  // This rank's slice of the global batch is empty (a last partial batch
  // smaller than the rank count). oneDNN primitives are not built for a zero
  // batch, so nothing is computed; a layer that makes collective calls
  // (synchronized BatchNorm) makes the same calls with an empty contribution,
  // and keeps any state (running statistics) equal to the other ranks'.
  virtual void forward_empty(const StepInfo& /*info*/) {}
  virtual void backward_empty(bool /*need_diff_src*/) {}

  const memory& dst() const { return dst_; }
  const memory& diff_src() const { return diff_src_; }

 protected:
  const Context& ctx_;
  memory::desc src_md_;
  memory::desc dst_md_;
  bool training_;
  memory src_;  // the src of the last forward (kept for backward)
  memory dst_;
  memory diff_src_;
};

// The data types of a layer with weights (conv2d, dense): what its primitives
// compute in (f32 or bf16: weights, src, dst and their gradients between
// layers; the weights' gradients are always f32) and what its dst hands on.
// Layers without weights compute in their src's type (maxpool2d, relu,
// flatten) or need f32 (batchnorm, dropout). Model chooses (plan_precision).
struct LayerTypes {
  dt compute = dt::f32;
  dt dst = dt::f32;
};

// Builds the layer `spec` for input `src_md`. Throws dpcnn::Error for specs
// that cannot be built (the config loader rejects most of them earlier).
std::unique_ptr<Layer> make_layer(const LayerSpec& spec, const Context& ctx,
                                  const memory::desc& src_md, bool training,
                                  const LayerTypes& types = {});

// Shape helpers shared by the layers.
memory::dims dims_of(const memory::desc& md);
// Keras padding: "valid" -> 0; "same" -> total = max((ceil(in/s)-1)*s + k - in, 0),
// the smaller half before.
void keras_padding(const std::string& padding, int in, int k, int s, int64_t* before,
                   int64_t* after, int64_t* out);
// Glorot-uniform fill: limit sqrt(6 / (fan_in + fan_out)).
void glorot_uniform(float* w, size_t n, int fan_in, int fan_out, Rng& rng);

}  // namespace dpcnn
