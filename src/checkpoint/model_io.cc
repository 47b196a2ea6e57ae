#include "checkpoint/model_io.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "core/error.h"

namespace dpcnn {
namespace {

std::string num(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(v));
  return buf;
}

std::string pair(const int v[2]) { return std::to_string(v[0]) + "x" + std::to_string(v[1]); }

std::string shape_text(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// The first line where two specs differ, so the message says which layer
// changed instead of printing two whole networks.
std::string spec_difference(const std::string& expected, const std::string& found) {
  const auto a = lines_of(expected), b = lines_of(found);
  for (size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
    const std::string x = i < a.size() ? a[i] : "(nothing)";
    const std::string y = i < b.size() ? b[i] : "(nothing)";
    if (x != y) return "expected '" + x + "', found '" + y + "'";
  }
  return "expected '" + expected + "', found '" + found + "'";
}

Error another(const std::string& source, const std::string& what, const std::string& detail) {
  return Error("checkpoint '" + source + "' is of another " + what + ": " + detail);
}

void check_tensors(const std::vector<TensorData>& have, const std::vector<ParamInfo>& want,
                   const std::string& source, const char* kind) {
  if (have.size() != want.size())
    throw another(source, "model",
                  "expected " + std::to_string(want.size()) + " " + kind + " tensors, found " +
                      std::to_string(have.size()));
  for (size_t i = 0; i < want.size(); ++i) {
    const TensorData& t = have[i];
    if (t.name != want[i].name || t.shape != want[i].shape || t.data.size() != want[i].count)
      throw another(source, "model",
                    "expected " + want[i].name + " " + shape_text(want[i].shape) + ", found " +
                        t.name + " " + shape_text(t.shape) + " (" + std::to_string(t.data.size()) +
                        " values)");
  }
}

std::vector<TensorData> tensors(const std::vector<ParamInfo>& info, const float* buf) {
  std::vector<TensorData> out;
  for (const ParamInfo& p : info)
    out.push_back({p.name, p.shape, std::vector<float>(buf + p.offset, buf + p.offset + p.count)});
  return out;
}

}  // namespace

std::string model_spec_text(const ModelConfig& m) {
  std::ostringstream s;
  s << "input";
  for (size_t i = 0; i < m.input.size(); ++i) s << (i ? "x" : " ") << m.input[i];
  s << " classes " << m.classes << "\n";
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const LayerSpec& l = m.layers[i];
    s << i << " " << l.type;
    if (l.type == "conv2d") {
      s << " filters=" << l.filters << " kernel=" << pair(l.kernel)
        << " strides=" << pair(l.strides) << " padding=" << l.padding
        << " activation=" << l.activation << " use_bias=" << (l.use_bias ? "true" : "false");
    } else if (l.type == "maxpool2d") {
      s << " pool=" << pair(l.pool) << " strides=" << pair(l.strides) << " padding=" << l.padding;
    } else if (l.type == "dense") {
      s << " units=" << l.units << " activation=" << l.activation
        << " use_bias=" << (l.use_bias ? "true" : "false");
    } else if (l.type == "dropout") {
      s << " rate=" << num(l.rate);
    } else if (l.type == "batchnorm") {
      s << " momentum=" << num(l.momentum) << " epsilon=" << num(l.epsilon);
    }
    s << "\n";
  }
  return s.str();
}

void save_model(const Model& model, const Optimizer* opt, const std::string& optimizer_type,
                CheckpointData* c) {
  c->model_spec = model_spec_text(model.config());
  c->params = tensors(model.param_info(), model.params());
  c->state = tensors(model.state_info(), model.state());
  c->optimizer_slots.clear();
  if (!opt) return;
  c->optimizer_type = optimizer_type;
  c->optimizer_iterations = opt->iterations;
  // slots() hands out mutable pointers; reading through them changes nothing.
  for (const auto& [name, buf] : const_cast<Optimizer*>(opt)->slots())
    c->optimizer_slots.push_back({"opt." + name, {static_cast<int64_t>(buf->size())}, *buf});
}

void load_model(const CheckpointData& c, const std::string& source, Model* model, Optimizer* opt,
                const std::string& optimizer_type) {
  const std::string spec = model_spec_text(model->config());
  if (c.model_spec != spec) throw another(source, "model", spec_difference(spec, c.model_spec));
  check_tensors(c.params, model->param_info(), source, "parameter");
  check_tensors(c.state, model->state_info(), source, "state");
  std::vector<std::pair<std::string, std::vector<float>*>> slots;
  if (opt) {
    if (!optimizer_type.empty() && c.optimizer_type != optimizer_type)
      throw another(source, "optimizer",
                    "expected " + optimizer_type + ", found '" + c.optimizer_type + "'");
    slots = opt->slots();
    if (c.optimizer_slots.size() != slots.size())
      throw another(source, "optimizer",
                    "expected " + std::to_string(slots.size()) + " state buffers, found " +
                        std::to_string(c.optimizer_slots.size()) +
                        (c.optimizer_slots.empty() ? " (saved without optimizer state)" : ""));
    for (size_t i = 0; i < slots.size(); ++i) {
      const TensorData& t = c.optimizer_slots[i];
      if (t.name != "opt." + slots[i].first || t.data.size() != slots[i].second->size())
        throw another(source, "optimizer",
                      "expected slot opt." + slots[i].first + " of " +
                          std::to_string(slots[i].second->size()) + " values, found " + t.name +
                          " of " + std::to_string(t.data.size()));
    }
  }

  const auto& pi = model->param_info();
  for (size_t i = 0; i < pi.size(); ++i)
    std::copy(c.params[i].data.begin(), c.params[i].data.end(), model->params() + pi[i].offset);
  const auto& si = model->state_info();
  for (size_t i = 0; i < si.size(); ++i)
    std::copy(c.state[i].data.begin(), c.state[i].data.end(), model->state() + si[i].offset);
  if (opt) {
    for (size_t i = 0; i < slots.size(); ++i) *slots[i].second = c.optimizer_slots[i].data;
    opt->iterations = c.optimizer_iterations;
  }
}

}  // namespace dpcnn
