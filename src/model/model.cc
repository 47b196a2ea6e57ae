#include "model/model.h"

#include <algorithm>

#include "core/error.h"

namespace dpcnn {

struct Model::Chain {
  memory input;
  std::vector<std::unique_ptr<Layer>> layers;
  std::unique_ptr<SoftmaxCrossEntropy> loss;
};

namespace {

std::vector<std::pair<std::string, std::vector<int64_t>>> layer_tensors(const LayerSpec& s,
                                                                        const Layer& l) {
  // Names and plain shapes of a layer's parameters, in buffer order.
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  if (s.type == "conv2d" || s.type == "dense") {
    const size_t total = l.param_count();
    const int64_t o = s.type == "conv2d" ? s.filters : s.units;
    const int64_t nb = s.use_bias ? o : 0;
    const int64_t per_out = static_cast<int64_t>(total - nb) / o;
    if (s.type == "conv2d")
      out.push_back(
          {"weight", {o, per_out / (s.kernel[0] * s.kernel[1]), s.kernel[0], s.kernel[1]}});
    else
      out.push_back({"weight", {o, per_out}});
    if (s.use_bias) out.push_back({"bias", {o}});
  } else if (s.type == "batchnorm") {
    const int64_t c = static_cast<int64_t>(l.param_count() / 2);
    out.push_back({"gamma", {c}});
    out.push_back({"beta", {c}});
  }
  return out;
}

}  // namespace

Model::Model(const ModelConfig& cfg) : cfg_(cfg) {
  if (cfg_.input.size() != 3) throw Error("model.input must be [C, H, W]");
  // Lay out the buffers from a one-sample inference chain (shapes do not depend
  // on the batch size), then bind it like every later chain.
  memory::desc md({1, cfg_.input[0], cfg_.input[1], cfg_.input[2]}, dt::f32, tag::nchw);
  size_t np = 0, ns = 0;
  for (size_t i = 0; i < cfg_.layers.size(); ++i) {
    auto l = make_layer(cfg_.layers[i], ctx_, md, false);
    layer_param_offset_.push_back(np);
    layer_state_offset_.push_back(ns);
    const std::string prefix = "layers." + std::to_string(i) + "." + cfg_.layers[i].type + ".";
    for (auto& [name, shape] : layer_tensors(cfg_.layers[i], *l)) {
      size_t count = 1;
      for (auto d : shape) count *= static_cast<size_t>(d);
      param_info_.push_back({prefix + name, shape, np, count});
      np += count;
    }
    if (l->state_count() > 0) {
      const int64_t c = static_cast<int64_t>(l->state_count() / 2);
      state_info_.push_back({prefix + "running_mean", {c}, ns, static_cast<size_t>(c)});
      state_info_.push_back({prefix + "running_var", {c}, ns + c, static_cast<size_t>(c)});
      ns += l->state_count();
    }
    md = l->dst_md();
  }
  params_.assign(np, 0.0f);
  grads_.assign(np, 0.0f);
  state_.assign(ns, 0.0f);
}

Model::~Model() = default;

void Model::init(uint64_t seed) {
  Rng rng(mix_seed(seed, 0x494e4954ULL));  // "INIT"
  Chain& c = chain(1, false);
  for (size_t i = 0; i < c.layers.size(); ++i)
    c.layers[i]->init_params(params_.data() + layer_param_offset_[i],
                             state_.data() + layer_state_offset_[i], rng);
}

Model::Chain& Model::chain(int n, bool training) {
  auto& slot = chains_[{n, training}];
  if (slot) return *slot;
  auto c = std::make_unique<Chain>();
  memory::desc md({n, cfg_.input[0], cfg_.input[1], cfg_.input[2]}, dt::f32, tag::nchw);
  c->input = memory(md, ctx_.engine, DNNL_MEMORY_NONE);
  for (size_t i = 0; i < cfg_.layers.size(); ++i) {
    auto l = make_layer(cfg_.layers[i], ctx_, md, training);
    l->bind(params_.data() + layer_param_offset_[i], grads_.data() + layer_param_offset_[i],
            state_.data() + layer_state_offset_[i]);
    md = l->dst_md();
    c->layers.push_back(std::move(l));
  }
  c->loss = std::make_unique<SoftmaxCrossEntropy>(ctx_, md);
  slot = std::move(c);
  return *slot;
}

void Model::forward(Chain& c, const float* x, const StepInfo& info) {
  c.input.set_data_handle(const_cast<float*>(x));
  const memory* cur = &c.input;
  for (auto& l : c.layers) {
    l->forward(*cur, info);
    cur = &l->dst();
  }
}

LossResult Model::train_step(const float* x, const int32_t* y, int n, float grad_scale,
                             const StepInfo& info, const GradsReady& ready) {
  Chain& c = chain(n, true);
  forward(c, x, info);
  LossResult r = c.loss->forward(c.layers.back()->dst(), y, grad_scale);
  const memory* diff = &c.loss->diff_logits();
  for (size_t i = c.layers.size(); i-- > 0;) {
    c.layers[i]->backward(*diff, i > 0);
    diff = &c.layers[i]->diff_src();
    if (ready && c.layers[i]->param_count() > 0) ready(layer_param_offset_[i]);
  }
  ctx_.stream.wait();
  return r;
}

LossResult Model::evaluate(const float* x, const int32_t* y, int n) {
  Chain& c = chain(n, false);
  forward(c, x, StepInfo{});
  return c.loss->forward(c.layers.back()->dst(), y, 0.0f);
}

const float* Model::log_probs(const float* x, int n) {
  Chain& c = chain(n, false);
  forward(c, x, StepInfo{});
  c.loss->forward(c.layers.back()->dst(), nullptr, 0.0f);
  return c.loss->log_probs();
}

}  // namespace dpcnn
