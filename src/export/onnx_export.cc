#include "export/onnx_export.h"

#include <onnx/onnx.pb.h>

#include <algorithm>
#include <cstdio>
#include <map>

#include "core/error.h"
#include "core/json.h"
#include "core/version.h"

namespace dpcnn {
namespace {

// Same arithmetic as the layers' (layers/layer.cc keras_padding), kept here
// so the exporter needs no oneDNN primitive to know a shape.
void keras_pads(const std::string& padding, int64_t in, int k, int s, int64_t* before,
                int64_t* after, int64_t* out) {
  if (padding == "same") {
    const int64_t o = (in + s - 1) / s;
    const int64_t total = std::max<int64_t>((o - 1) * s + k - in, 0);
    *before = total / 2;
    *after = total - total / 2;
    *out = o;
  } else {
    *before = *after = 0;
    *out = (in - k) / s + 1;
  }
}

std::string json_list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ',';
    out += json_string(items[i]);
  }
  return out + "]";
}

class GraphBuilder {
 public:
  GraphBuilder(const Model& model, onnx::GraphProto* g) : model_(model), g_(g) {
    for (const ParamInfo& p : model.param_info()) params_[p.name] = &p;
    for (const ParamInfo& p : model.state_info()) state_[p.name] = &p;
  }

  // A checkpoint tensor as an initializer, under its own name.
  std::string tensor(const std::string& name, bool state = false) {
    const auto& table = state ? state_ : params_;
    const auto it = table.find(name);
    if (it == table.end()) throw Error("export: the model has no tensor '" + name + "'");
    const ParamInfo& p = *it->second;
    const float* data = (state ? model_.state() : model_.params()) + p.offset;
    onnx::TensorProto* t = g_->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : p.shape) t->add_dims(d);
    // raw_data is little-endian, as every machine dpcnn runs on.
    t->set_raw_data(reinterpret_cast<const char*>(data), p.count * sizeof(float));
    return name;
  }

  std::string zeros(const std::string& name, int64_t n) {
    onnx::TensorProto* t = g_->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    t->add_dims(n);
    const std::vector<float> z(static_cast<size_t>(n), 0.0f);
    t->set_raw_data(reinterpret_cast<const char*>(z.data()), z.size() * sizeof(float));
    return name;
  }

  onnx::NodeProto* node(const std::string& op, const std::string& name,
                        const std::vector<std::string>& inputs) {
    onnx::NodeProto* n = g_->add_node();
    n->set_op_type(op);
    n->set_name(name);
    for (const auto& i : inputs) n->add_input(i);
    n->add_output(name);
    return n;
  }

  static void ints(onnx::NodeProto* n, const std::string& name, const std::vector<int64_t>& v) {
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }
  static void one_int(onnx::NodeProto* n, const std::string& name, int64_t v) {
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void one_float(onnx::NodeProto* n, const std::string& name, float v) {
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(v);
  }

 private:
  const Model& model_;
  onnx::GraphProto* g_;
  std::map<std::string, const ParamInfo*> params_, state_;
};

void value_info(onnx::ValueInfoProto* v, const std::string& name,
                const std::vector<int64_t>& dims) {
  v->set_name(name);
  onnx::TypeProto_Tensor* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(onnx::TensorProto::FLOAT);
  onnx::TensorShapeProto* s = t->mutable_shape();
  s->add_dim()->set_dim_param("batch");
  for (int64_t d : dims) s->add_dim()->set_dim_value(d);
}

}  // namespace

std::string export_onnx(const Model& model, const OnnxExportOptions& options) {
  const ModelConfig& cfg = model.config();
  onnx::ModelProto m;
  m.set_ir_version(7);  // the IR that goes with opset 13
  m.set_producer_name("dpcnn");
  m.set_producer_version(project_version());
  m.set_model_version(1);
  m.set_doc_string("dpcnn sequential CNN; input NCHW float32 scaled to [0,1]; output " +
                   std::string(options.logits ? "logits" : "softmax probabilities"));
  onnx::OperatorSetIdProto* opset = m.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOnnxOpset);
  auto meta = [&](const std::string& k, const std::string& v) {
    onnx::StringStringEntryProto* e = m.add_metadata_props();
    e->set_key(k);
    e->set_value(v);
  };
  std::vector<std::string> names = options.class_names;
  if (names.empty())
    for (int k = 0; k < cfg.classes; ++k) names.push_back(std::to_string(k));
  meta("class_names", json_list(names));
  meta("dpcnn_version", project_version());
  meta("dpcnn_commit", git_commit());
  if (!options.source_checkpoint.empty()) meta("source_checkpoint", options.source_checkpoint);
  meta("global_step", std::to_string(options.global_step));
  meta("output", options.logits ? "logits" : "probabilities");

  onnx::GraphProto* g = m.mutable_graph();
  g->set_name("dpcnn");
  GraphBuilder b(model, g);
  value_info(g->add_input(), "input", {cfg.input[0], cfg.input[1], cfg.input[2]});

  // Shape of the running tensor: C,H,W while spatial, then just features.
  int64_t c = cfg.input[0], h = cfg.input[1], w = cfg.input[2];
  bool spatial = true;
  std::string x = "input";
  for (size_t i = 0; i < cfg.layers.size(); ++i) {
    const LayerSpec& l = cfg.layers[i];
    const std::string p = "layers." + std::to_string(i) + "." + l.type;
    auto refuse = [&](const std::string& why) {
      return InputError("layer " + std::to_string(i) + " (" + l.type +
                        "): cannot be exported to ONNX: " + why);
    };
    if (l.type == "conv2d") {
      if (!spatial) throw refuse("its input is not C x H x W");
      int64_t pt, pb, pl, pr, oh, ow;
      keras_pads(l.padding, h, l.kernel[0], l.strides[0], &pt, &pb, &oh);
      keras_pads(l.padding, w, l.kernel[1], l.strides[1], &pl, &pr, &ow);
      const std::string bias = l.use_bias ? b.tensor(p + ".bias") : b.zeros(p + ".bias", l.filters);
      onnx::NodeProto* n = b.node("Conv", p, {x, b.tensor(p + ".weight"), bias});
      GraphBuilder::ints(n, "kernel_shape", {l.kernel[0], l.kernel[1]});
      GraphBuilder::ints(n, "strides", {l.strides[0], l.strides[1]});
      GraphBuilder::ints(n, "pads", {pt, pl, pb, pr});
      GraphBuilder::ints(n, "dilations", {1, 1});
      GraphBuilder::one_int(n, "group", 1);
      x = p;
      c = l.filters, h = oh, w = ow;
      if (l.activation == "relu") x = b.node("Relu", p + ".relu", {x})->output(0);
    } else if (l.type == "maxpool2d") {
      if (!spatial) throw refuse("its input is not C x H x W");
      int64_t pt, pb, pl, pr, oh, ow;
      keras_pads(l.padding, h, l.pool[0], l.strides[0], &pt, &pb, &oh);
      keras_pads(l.padding, w, l.pool[1], l.strides[1], &pl, &pr, &ow);
      onnx::NodeProto* n = b.node("MaxPool", p, {x});
      GraphBuilder::ints(n, "kernel_shape", {l.pool[0], l.pool[1]});
      GraphBuilder::ints(n, "strides", {l.strides[0], l.strides[1]});
      GraphBuilder::ints(n, "pads", {pt, pl, pb, pr});
      x = p;
      h = oh, w = ow;
    } else if (l.type == "flatten") {
      if (spatial) {
        onnx::NodeProto* n = b.node("Flatten", p, {x});
        GraphBuilder::one_int(n, "axis", 1);
        x = p;
        c = c * h * w, h = w = 1;
        spatial = false;
      }
    } else if (l.type == "dense") {
      if (spatial && (h != 1 || w != 1)) throw refuse("its input is spatial (add a flatten)");
      if (spatial) {  // C x 1 x 1: a flatten the config left implicit
        onnx::NodeProto* n = b.node("Flatten", p + ".flatten", {x});
        GraphBuilder::one_int(n, "axis", 1);
        x = n->output(0);
        spatial = false;
      }
      const std::string bias = l.use_bias ? b.tensor(p + ".bias") : b.zeros(p + ".bias", l.units);
      onnx::NodeProto* n = b.node("Gemm", p, {x, b.tensor(p + ".weight"), bias});
      GraphBuilder::one_int(n, "transB", 1);
      x = p;
      c = l.units;
      if (l.activation == "relu") x = b.node("Relu", p + ".relu", {x})->output(0);
    } else if (l.type == "relu") {
      x = b.node("Relu", p, {x})->output(0);
    } else if (l.type == "dropout") {
      // Identity at inference: no node.
    } else if (l.type == "batchnorm") {
      onnx::NodeProto* n =
          b.node("BatchNormalization", p,
                 {x, b.tensor(p + ".gamma"), b.tensor(p + ".beta"),
                  b.tensor(p + ".running_mean", true), b.tensor(p + ".running_var", true)});
      GraphBuilder::one_float(n, "epsilon", l.epsilon);
      x = p;
    } else {
      throw refuse("no ONNX mapping for this layer type");
    }
  }
  if (spatial) throw InputError("export: the model's output is not a vector of class scores");

  std::string out = x;
  if (options.logits) {
    out = b.node("Identity", "logits", {x})->output(0);
  } else {
    onnx::NodeProto* n = b.node("Softmax", "probabilities", {x});
    GraphBuilder::one_int(n, "axis", 1);
    out = "probabilities";
  }
  value_info(g->add_output(), out, {c});

  std::string bytes;
  if (!m.SerializeToString(&bytes)) throw Error("export: cannot serialize the ONNX model");
  return bytes;
}

}  // namespace dpcnn
