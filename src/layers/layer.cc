#include "layers/layer.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

#include "core/error.h"
#include "layers/layers_impl.h"

namespace dpcnn {

memory Context::alloc(const memory::desc& md, const char* role) const {
  const size_t bytes = md.get_size();
  if (slot_ < 0) return memory(md, engine);
  std::pair<int, std::string> key{slot_, role};
  if (auto a = aliases_.find(key); a != aliases_.end()) key = a->second;
  Buffer& b = shared_[key];
  if (b.bytes < bytes) {
    if (b.data) retired_.push_back(b.data);
    // A bf16 tensor gets the bytes of its f32 twin: the trainer's f32
    // evaluation chain then reuses the buffer rather than retiring it and
    // allocating its own (pages that only a bf16 chain uses are never touched,
    // so they cost no resident memory).
    const size_t want = md.data_type() == dt::bf16 ? 2 * bytes : bytes;
    const size_t rounded = (want + 63) / 64 * 64;
    b.data = std::shared_ptr<void>(std::aligned_alloc(64, rounded), std::free);
    if (!b.data) throw std::bad_alloc();
    b.bytes = want;
  }
  return memory(md, engine, b.data.get());
}

Converter::Converter(const Context& ctx, const memory::desc& from, const memory::desc& to,
                     const char* role)
    : needed_(from != to) {
  if (!needed_) return;
  out_ = role ? ctx.alloc(to, role) : memory(to, ctx.engine);
  reorder_ = dnnl::reorder(dnnl::reorder::primitive_desc(ctx.engine, from, ctx.engine, to));
}

const memory& Converter::run(const Context& ctx, const memory& from) {
  if (!needed_) return from;
  reorder_.execute(ctx.stream, {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, out_}});
  return out_;
}

void Converter::run_into(const Context& ctx, const memory& from, const memory& to) {
  if (!needed_) {
    // Same layout but distinct buffers: a plain copy.
    if (from.get_data_handle() != to.get_data_handle())
      std::memcpy(to.get_data_handle(), from.get_data_handle(), from.get_desc().get_size());
    return;
  }
  reorder_.execute(ctx.stream, {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}});
}

memory::dims dims_of(const memory::desc& md) { return md.dims(); }

void keras_padding(const std::string& padding, int in, int k, int s, int64_t* before,
                   int64_t* after, int64_t* out) {
  if (padding == "same") {
    const int o = (in + s - 1) / s;
    const int total = std::max((o - 1) * s + k - in, 0);
    *before = total / 2;
    *after = total - total / 2;
    *out = o;
  } else {
    *before = *after = 0;
    *out = (in - k) / s + 1;
  }
}

void glorot_uniform(float* w, size_t n, int fan_in, int fan_out, Rng& rng) {
  const float limit = std::sqrt(6.0f / static_cast<float>(fan_in + fan_out));
  for (size_t i = 0; i < n; ++i) w[i] = rng.uniform(-limit, limit);
}

std::unique_ptr<Layer> make_layer(const LayerSpec& spec, const Context& ctx,
                                  const memory::desc& src_md, bool training,
                                  const LayerTypes& types) {
  const std::string& t = spec.type;
  if ((t == "dropout" || t == "batchnorm") && src_md.data_type() != dt::f32)
    throw Error(t + " needs an f32 input (the layer before it must hand on f32)");
  if (t == "conv2d") return std::make_unique<Conv2D>(spec, ctx, src_md, training, types);
  if (t == "maxpool2d") return std::make_unique<MaxPool2D>(spec, ctx, src_md, training);
  if (t == "dense") return std::make_unique<Dense>(spec, ctx, src_md, training, types);
  if (t == "relu") return std::make_unique<ReLU>(ctx, src_md, training);
  if (t == "flatten") return std::make_unique<Flatten>(ctx, src_md, training);
  if (t == "dropout") return std::make_unique<Dropout>(spec, ctx, src_md, training);
  if (t == "batchnorm") return std::make_unique<BatchNorm>(spec, ctx, src_md, training);
  throw Error("unknown layer type '" + t + "'");
}

}  // namespace dpcnn
