// ONNX export: a trained dpcnn Model as an ONNX ModelProto (opset 13, IR 7),
// built with the message classes protoc generates from Debian's onnx.proto.
// It reads a model's weights and config, never trains. Single-threaded.
//
// What the graph holds, layer by layer (the config's order, not the order
// dpcnn executes them in):
//   conv2d    Conv (explicit pads, Keras 'same' = extra row/column at the end)
//             + Relu when its activation is relu
//   maxpool2d MaxPool (padded cells never win, as in oneDNN)
//   flatten   Flatten(axis 1): dpcnn flattens C,H,W, which is ONNX's order
//   dense     Gemm(transB=1) on OI weights + Relu when its activation is relu
//   relu      Relu
//   dropout   nothing (identity at inference)
//   batchnorm BatchNormalization with the running statistics (not folded:
//             the exported weights are the checkpoint's, bit for bit, and a
//             batchnorm after a ReLU could not be folded anyway)
// A layer without bias gets a zero bias, which adds exactly nothing. The
// input is "input", float32 [batch, C, H, W] (batch symbolic); the output is
// "probabilities" (Softmax over the classes) or, with logits, "logits".
// metadata_props: class_names (JSON list), dpcnn_version, dpcnn_commit,
// source_checkpoint, global_step, output.
#pragma once

#include <string>
#include <vector>

#include "model/model.h"

namespace dpcnn {

inline constexpr int kOnnxOpset = 13;

struct OnnxExportOptions {
  bool logits = false;                   // output logits instead of probabilities
  std::vector<std::string> class_names;  // model.classes of them, or empty
  std::string source_checkpoint;         // recorded in the metadata
  int64_t global_step = 0;
};

// The serialized ModelProto. Throws InputError "layer <i> (<type>): cannot be
// exported to ONNX: <why>" for a layer it does not know.
std::string export_onnx(const Model& model, const OnnxExportOptions& options);

}  // namespace dpcnn
