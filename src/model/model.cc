#include "model/model.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "core/error.h"
#include "layers/precision.h"

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

// The layers as executed. conv2d(relu) followed by maxpool2d runs as conv2d,
// maxpool2d, relu: max-pooling commutes with ReLU (both monotone), so the
// result and its gradients are the same, but ReLU's backward then touches a
// tensor four times smaller (it was 7% of a training step of the seed model).
void Model::plan_layers() {
  const auto& ls = cfg_.layers;
  for (size_t i = 0; i < ls.size(); ++i) {
    if (ls[i].type == "conv2d" && ls[i].activation == "relu" && i + 1 < ls.size() &&
        ls[i + 1].type == "maxpool2d") {
      LayerSpec conv = ls[i], relu;
      conv.activation = "none";
      relu.type = "relu";
      plan_.push_back({conv, static_cast<int>(i)});
      plan_.push_back({ls[i + 1], static_cast<int>(i + 1)});
      plan_.push_back({relu, static_cast<int>(i)});
      ++i;
      continue;
    }
    plan_.push_back({ls[i], static_cast<int>(i)});
  }
}

// Buffers that can share memory within a training step.
// - A layer whose backward does not read its input (max-pool uses its
//   workspace, flatten and dropout only reshape or mask) can write its
//   diff_src over the previous layer's dst, unless that layer reads its own
//   dst in backward (a ReLU, or one fused into conv/dense). The diff_src is
//   produced after every forward use of that dst is over. For the seed model
//   this saves conv1's 86 KB a sample.
// - A ReLU runs in place: its dst overwrites the previous layer's dst and its
//   diff_src its diff_dst (the next layer's diff_src), when the previous layer
//   does not read its own dst in backward. ReLU's backward reads its dst,
//   which is positive exactly where its src was. For the seed model, where
//   ReLU follows each max-pool, this saves 2 x 1.4 MB at batch 64 (the
//   1-rank peak RSS with full Fashion-MNIST is a target, README "Memory").
void Model::plan_memory() {
  auto reads_src = [](const LayerSpec& s) {
    return s.type == "conv2d" || s.type == "dense" || s.type == "batchnorm";
  };
  auto reads_dst = [](const LayerSpec& s) {
    return s.type == "relu" ||
           ((s.type == "conv2d" || s.type == "dense") && s.activation == "relu");
  };
  const int n = static_cast<int>(plan_.size());
  for (int i = 1; i < n; ++i) {
    const LayerSpec& s = plan_[i].spec;
    const LayerSpec& prev = plan_[i - 1].spec;
    if (s.type == "relu") {
      if (reads_dst(prev)) continue;
      ctx_.alias(i, "dst", i - 1, "dst");
      if (i + 1 < n) ctx_.alias(i, "diff_src", i + 1, "diff_src");
    } else if (!reads_src(s) && !reads_dst(prev)) {
      ctx_.alias(i, "diff_src", i - 1, "dst");
    }
  }
}

// Mixed precision, layer by layer. Every layer with weights computes in bf16,
// except conv1 (one input channel) on a CPU with AMX. oneDNN has no AMX kernel
// for one input channel, and the AVX512_BF16 one it takes is 3x slower than
// fp32 there, so the whole step is faster with conv1 in fp32 (Xeon with AMX:
// 6.6 against 7.5 ms a step). Without AMX (Zen 4) conv1 computes in bf16: it
// is slower itself, but its bf16 dst halves the bytes of pool1 and relu1, the
// memory-bound layers after it, and the step is 3% faster (README,
// "Precision": both measurements; DPCNN_BF16_MIN_CHANNELS=1 or 2 forces
// either rule to repeat them). A layer's dst is bf16 only when the next layer
// with weights also computes in bf16 and only max-pooling, ReLU and flatten
// come between (they run in whatever type they receive: pooling,
// memory-bound, then moves half the bytes); batchnorm and dropout get f32,
// and so does the loss (the last logits). Master weights, their gradients,
// optimizer state and loss stay f32.
namespace {
int bf16_min_channels() {
  // DPCNN_BF16_MIN_CHANNELS: for measuring the choice (scripts, README); not a user setting.
  if (const char* e = std::getenv("DPCNN_BF16_MIN_CHANNELS")) return std::atoi(e);
  return detect_cpu_bf16().isa_amx ? 2 : 1;
}
}  // namespace

void Model::plan_precision() {
  const int min_channels = bf16_min_channels();
  auto weighted = [](const LayerSpec& s) { return s.type == "conv2d" || s.type == "dense"; };
  int64_t channels = cfg_.input[0];
  for (auto& p : plan_) {
    if (weighted(p.spec) && channels >= min_channels) p.types.compute = dt::bf16;
    if (p.spec.type == "conv2d") channels = p.spec.filters;
    if (p.spec.type == "dense") channels = p.spec.units;
  }
  for (size_t i = 0; i < plan_.size(); ++i) {
    if (!weighted(plan_[i].spec) || plan_[i].types.compute != dt::bf16) continue;
    size_t j = i + 1;
    auto passes = [](const std::string& t) {
      return t == "maxpool2d" || t == "relu" || t == "flatten";
    };
    while (j < plan_.size() && passes(plan_[j].spec.type)) ++j;
    if (j < plan_.size() && weighted(plan_[j].spec) && plan_[j].types.compute == dt::bf16)
      plan_[i].types.dst = dt::bf16;
  }
}

std::string Model::precision_plan() const {
  std::string out;
  memory::desc md({1, cfg_.input[0], cfg_.input[1], cfg_.input[2]}, dt::f32, tag::nchw);
  Context ctx;
  for (const Planned& p : plan_) {
    const LayerTypes types = precision_ == Precision::kBf16 ? p.types : LayerTypes{};
    auto l = make_layer(p.spec, ctx, md, false, types);
    auto name = [](dt t) { return t == dt::bf16 ? "bf16" : "f32"; };
    out += p.spec.type + ": " + name(md.data_type()) + " -> " + name(l->dst_md().data_type());
    if (p.spec.type == "conv2d" || p.spec.type == "dense")
      out += std::string(" (computes in ") + name(types.compute) + ")";
    out += "\n";
    md = l->dst_md();
  }
  return out;
}

Model::Model(const ModelConfig& cfg, Precision precision)
    : cfg_(cfg), precision_(precision), inference_precision_(precision) {
  if (cfg_.input.size() != 3) throw Error("model.input must be [C, H, W]");
  // Chains keep their primitives for the whole run, so oneDNN's own cache of
  // primitives would only hold JIT code for shapes no longer used.
  dnnl::set_primitive_cache_capacity(0);
  plan_layers();
  plan_memory();
  plan_precision();
  // Lay out the buffers from a one-sample inference chain (shapes do not depend
  // on the batch size), then bind it like every later chain.
  memory::desc md({1, cfg_.input[0], cfg_.input[1], cfg_.input[2]}, dt::f32, tag::nchw);
  size_t np = 0, ns = 0;
  for (const Planned& p : plan_) {
    const LayerSpec& spec = p.spec;
    const int source = p.source;
    auto l = make_layer(spec, ctx_, md, false);
    layer_param_offset_.push_back(np);
    layer_state_offset_.push_back(ns);
    // Names follow the config's layer numbering, whatever the execution order.
    const std::string prefix = "layers." + std::to_string(source) + "." + spec.type + ".";
    for (auto& [name, shape] : layer_tensors(spec, *l)) {
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
  // Throw-away one-sample layers know their shapes; no chain is kept for this.
  Rng rng(mix_seed(seed, 0x494e4954ULL));  // "INIT"
  memory::desc md({1, cfg_.input[0], cfg_.input[1], cfg_.input[2]}, dt::f32, tag::nchw);
  for (size_t i = 0; i < plan_.size(); ++i) {
    auto l = make_layer(plan_[i].spec, ctx_, md, false);
    l->init_params(params_.data() + layer_param_offset_[i], state_.data() + layer_state_offset_[i],
                   rng);
    md = l->dst_md();
  }
}

Model::Chain& Model::chain(int n, bool training) {
  auto& slot = chains_[{n, training}];
  if (slot) return *slot;
  auto c = std::make_unique<Chain>();
  memory::desc md({n, cfg_.input[0], cfg_.input[1], cfg_.input[2]}, dt::f32, tag::nchw);
  c->input = memory(md, ctx_.engine, DNNL_MEMORY_NONE);
  const bool bf16 = (training ? precision_ : inference_precision_) == Precision::kBf16;
  // Each layer slot's buffers are shared with the same slot of every other
  // chain (Context::alloc): one chain runs at a time.
  for (size_t i = 0; i < plan_.size(); ++i) {
    ctx_.begin_layer(static_cast<int>(i));
    auto l = make_layer(plan_[i].spec, ctx_, md, training, bf16 ? plan_[i].types : LayerTypes{});
    l->bind(params_.data() + layer_param_offset_[i], grads_.data() + layer_param_offset_[i],
            state_.data() + layer_state_offset_[i]);
    md = l->dst_md();
    c->layers.push_back(std::move(l));
  }
  ctx_.begin_layer(static_cast<int>(plan_.size()));
  c->loss = std::make_unique<SoftmaxCrossEntropy>(ctx_, md);
  ctx_.end_layer();
  slot = std::move(c);
  return *slot;
}

void Model::forward(Chain& c, const float* x, const StepInfo& info, bool timed) {
  c.input.set_data_handle(const_cast<float*>(x));
  const memory* cur = &c.input;
  for (size_t i = 0; i < c.layers.size(); ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    c.layers[i]->forward(*cur, info);
    cur = &c.layers[i]->dst();
    if (timed) timings_[i].forward_s += seconds_since(t0);
  }
}

double Model::seconds_since(std::chrono::steady_clock::time_point t0) {
  ctx_.stream.wait();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void Model::start_timing(const Chain& c) {
  if (timings_.empty())
    for (size_t i = 0; i < c.layers.size(); ++i) {
      const auto& l = *c.layers[i];
      auto name = [](dt t) { return t == dt::bf16 ? "bf16" : "f32"; };
      timings_.push_back({std::to_string(i) + " " + l.kind() + " " + name(l.src_md().data_type()) +
                          "->" + name(l.dst_md().data_type())});
    }
  if (timings_.size() == c.layers.size()) timings_.push_back({"loss (log-softmax)"});
  for (auto& t : timings_) ++t.steps;
}

LossResult Model::train_step(const float* x, const int32_t* y, int n, float grad_scale,
                             const StepInfo& info, const GradsReady& ready) {
  if (n == 0) return train_step_empty(info, ready);
  Chain& c = chain(n, true);
  if (profiling_) start_timing(c);
  forward(c, x, info, profiling_);
  const auto tl = std::chrono::steady_clock::now();
  LossResult r = c.loss->forward(c.layers.back()->dst(), y, grad_scale);
  if (profiling_) timings_.back().forward_s += seconds_since(tl);
  const memory* diff = &c.loss->diff_logits();
  for (size_t i = c.layers.size(); i-- > 0;) {
    const auto t0 = std::chrono::steady_clock::now();
    c.layers[i]->backward(*diff, i > 0);
    if (profiling_) timings_[i].backward_s += seconds_since(t0);
    diff = &c.layers[i]->diff_src();
    if (ready && c.layers[i]->param_count() > 0) ready(layer_param_offset_[i]);
  }
  ctx_.stream.wait();
  return r;
}

// An empty slice: when a last partial batch has fewer samples than there are
// ranks, the last ranks get none. oneDNN primitives are not built for a zero
// batch, so nothing is computed, but the rank must still take part in every
// collective, in the same order as the others, or the job hangs or mismatches:
// the layers of the one-sample chain (their kinds and buffers; never run on
// data here) make their collective calls with an empty contribution
// (Layer::forward_empty/backward_empty, e.g. synchronized BatchNorm), and the
// gradient buckets are announced layer by layer exactly as backward would.
// The gradients are zero: this rank adds nothing to the sums over the global
// batch, which is what it contributes. Every rank then applies the same update.
LossResult Model::train_step_empty(const StepInfo& info, const GradsReady& ready) {
  Chain& c = chain(1, true);
  for (auto& l : c.layers) l->forward_empty(info);
  std::fill(grads_.begin(), grads_.end(), 0.0f);
  for (size_t i = c.layers.size(); i-- > 0;) {
    c.layers[i]->backward_empty(i > 0);
    if (ready && c.layers[i]->param_count() > 0) ready(layer_param_offset_[i]);
  }
  return {};
}

LossResult Model::evaluate(const float* x, const int32_t* y, int n) {
  Chain& c = chain(n, false);
  forward(c, x, StepInfo{});
  return c.loss->forward(c.layers.back()->dst(), y, 0.0f);
}

std::string Model::profile_table(const std::string& per) const {
  std::string out;
  char line[160];
  std::snprintf(line, sizeof line, "  %-28s %9s %9s %9s   (ms per %s, %s)\n", "layer", "forward",
                "backward", "total", per.c_str(), precision_name(precision_));
  out += line;
  double f = 0, b = 0;
  for (const auto& t : timings_) {
    const double k = t.steps ? 1e3 / static_cast<double>(t.steps) : 0;
    std::snprintf(line, sizeof line, "  %-28s %9.3f %9.3f %9.3f\n", t.name.c_str(), t.forward_s * k,
                  t.backward_s * k, (t.forward_s + t.backward_s) * k);
    out += line;
    f += t.forward_s * k;
    b += t.backward_s * k;
  }
  std::snprintf(line, sizeof line, "  %-28s %9.3f %9.3f %9.3f\n", "all", f, b, f + b);
  return out + line;
}

// Profiled (set_profiling), each call counts as a step of forward times.
const float* Model::log_probs(const float* x, int n) {
  Chain& c = chain(n, false);
  if (profiling_) start_timing(c);
  forward(c, x, StepInfo{}, profiling_);
  const auto t0 = std::chrono::steady_clock::now();
  c.loss->forward(c.layers.back()->dst(), nullptr, 0.0f);
  if (profiling_) timings_.back().forward_s += seconds_since(t0);
  return c.loss->log_probs();
}

}  // namespace dpcnn
