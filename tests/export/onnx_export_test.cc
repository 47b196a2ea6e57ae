// The ONNX graph dpcnn-export writes, read back with the message classes of
// ONNX's own schema: one node per layer in the config's order, the
// checkpoint's weights bit for bit, Keras 'same' padding as explicit pads, and
// the metadata (class names, version).
#include <gtest/gtest.h>
#include <onnx/onnx.pb.h>

#include <cstring>

#include "config/config.h"
#include "core/version.h"
#include "export/onnx_export.h"
#include "model/model.h"

namespace dpcnn {
namespace {

const char* kEveryLayer = R"(
data: {class_names: [a, b, 'c "quoted"']}
model:
  input: [1, 12, 12]
  classes: 3
  layers:
    - {type: conv2d, filters: 4, kernel: 3, padding: same, use_bias: false}
    - {type: batchnorm}
    - {type: relu}
    - {type: maxpool2d, pool: 3, strides: 2, padding: same}
    - {type: conv2d, filters: 5, kernel: [3, 2], activation: relu}
    - {type: dropout, rate: 0.5}
    - {type: flatten}
    - {type: dense, units: 6, activation: relu}
    - {type: dense, units: 3}
)";

std::vector<std::string> ops(const onnx::GraphProto& g) {
  std::vector<std::string> out;
  for (const auto& n : g.node()) out.push_back(n.op_type());
  return out;
}

const onnx::NodeProto& node(const onnx::GraphProto& g, const std::string& name) {
  for (const auto& n : g.node())
    if (n.name() == name) return n;
  ADD_FAILURE() << "no node " << name;
  return g.node(0);
}

std::vector<int64_t> ints(const onnx::NodeProto& n, const std::string& attr) {
  for (const auto& a : n.attribute())
    if (a.name() == attr) return {a.ints().begin(), a.ints().end()};
  return {};
}

std::string meta(const onnx::ModelProto& m, const std::string& key) {
  for (const auto& p : m.metadata_props())
    if (p.key() == key) return p.value();
  return "(missing)";
}

TEST(OnnxExport, EveryLayerTypeBecomesItsOperatorInConfigOrder) {
  const Config cfg = parse_config(kEveryLayer, "every-layer");
  Model model(cfg.model);
  model.init(7);
  OnnxExportOptions o;
  o.class_names = cfg.data.class_names;
  o.global_step = 12;
  onnx::ModelProto m;
  ASSERT_TRUE(m.ParseFromString(export_onnx(model, o)));
  EXPECT_EQ(m.opset_import(0).version(), 13);
  EXPECT_EQ(m.ir_version(), 7);
  const auto& g = m.graph();
  // Dropout leaves no node; conv2d(relu) then maxpool stays Conv, Relu in
  // config order (dpcnn runs the ReLU after the pool, which is the same).
  EXPECT_EQ(ops(g),
            (std::vector<std::string>{"Conv", "BatchNormalization", "Relu", "MaxPool", "Conv",
                                      "Relu", "Flatten", "Gemm", "Relu", "Gemm", "Softmax"}));
  // 12 -> 'same' 3x3 stride 2 pool: out 6, total pad (6-1)*2+3-12 = 1, at the end.
  EXPECT_EQ(ints(node(g, "layers.3.maxpool2d"), "pads"), (std::vector<int64_t>{0, 0, 1, 1}));
  EXPECT_EQ(ints(node(g, "layers.0.conv2d"), "pads"), (std::vector<int64_t>{1, 1, 1, 1}));
  EXPECT_EQ(ints(node(g, "layers.4.conv2d"), "kernel_shape"), (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(g.input(0).name(), "input");
  EXPECT_EQ(g.input(0).type().tensor_type().shape().dim(0).dim_param(), "batch");
  EXPECT_EQ(g.input(0).type().tensor_type().shape().dim(2).dim_value(), 12);
  EXPECT_EQ(g.output(0).name(), "probabilities");
  EXPECT_EQ(g.output(0).type().tensor_type().shape().dim(1).dim_value(), 3);

  // Every parameter and running statistic, under its checkpoint name, bit for bit.
  int checked = 0;
  for (const auto& t : g.initializer()) {
    for (const auto* table : {&model.param_info(), &model.state_info()}) {
      for (const ParamInfo& p : *table) {
        if (p.name != t.name()) continue;
        const float* want =
            (table == &model.param_info() ? model.params() : model.state()) + p.offset;
        EXPECT_EQ(std::vector<int64_t>(t.dims().begin(), t.dims().end()), p.shape) << p.name;
        ASSERT_EQ(t.raw_data().size(), p.count * sizeof(float)) << p.name;
        EXPECT_EQ(std::memcmp(t.raw_data().data(), want, t.raw_data().size()), 0) << p.name;
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, static_cast<int>(model.param_info().size() + model.state_info().size()));
  EXPECT_EQ(meta(m, "class_names"), R"(["a","b","c \"quoted\""])");
  EXPECT_EQ(meta(m, "dpcnn_version"), project_version());
  EXPECT_EQ(meta(m, "global_step"), "12");
  EXPECT_EQ(meta(m, "output"), "probabilities");
}

TEST(OnnxExport, LogitsOptionEndsWithoutSoftmaxAndNamesClassesByIndexWhenUnnamed) {
  const Config cfg = parse_config(
      "model: {input: [1, 6, 6], classes: 2, layers: [{type: flatten}, {type: dense, units: 2}]}",
      "tiny");
  Model model(cfg.model);
  model.init(1);
  OnnxExportOptions o;
  o.logits = true;
  onnx::ModelProto m;
  ASSERT_TRUE(m.ParseFromString(export_onnx(model, o)));
  EXPECT_EQ(ops(m.graph()), (std::vector<std::string>{"Flatten", "Gemm", "Identity"}));
  EXPECT_EQ(m.graph().output(0).name(), "logits");
  EXPECT_EQ(meta(m, "class_names"), R"(["0","1"])");
}

}  // namespace
}  // namespace dpcnn
