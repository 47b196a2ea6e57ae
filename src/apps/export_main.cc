// dpcnn-export: writes a checkpoint's model as an ONNX file (opset 13) that
// other runtimes load (checked with onnx.checker and OpenCV's DNN module).
// Reads only the checkpoint; no MPI, no training. Maps every bad input to one
// line on stderr and exit code 2 (1 for failures such as a full disk).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "checkpoint/checkpoint.h"
#include "checkpoint/saved_model.h"
#include "core/error.h"
#include "core/exit_codes.h"
#include "core/version.h"
#include "export/onnx_export.h"
#include "layers/dnnl_info.h"

namespace {

struct Options {
  std::string checkpoint, output;
  bool logits = false;
};

int run(const Options& o) {
  std::string what = o.checkpoint;
  if (what.empty()) {
    std::string why;
    what = dpcnn::default_checkpoint("runs", &why);
    std::fprintf(stderr, "dpcnn-export: %s\n", why.c_str());
  }
  const dpcnn::SavedModel s = dpcnn::open_saved_model(what);
  if (!s.note.empty()) std::fprintf(stderr, "dpcnn-export: %s\n", s.note.c_str());
  dpcnn::OnnxExportOptions eo;
  eo.logits = o.logits;
  eo.class_names = s.class_names;
  eo.source_checkpoint = s.path;
  eo.global_step = s.global_step;
  const std::string bytes = dpcnn::export_onnx(*s.model, eo);
  // Atomic like a checkpoint: a reader never sees half a model under its name.
  dpcnn::write_file_durably(o.output, bytes);
  std::fprintf(stderr, "dpcnn-export: wrote '%s' (%zu bytes, opset %d, output %s) from '%s'\n",
               o.output.c_str(), bytes.size(), dpcnn::kOnnxOpset,
               o.logits ? "logits" : "probabilities", s.path.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "dpcnn-export: write a dpcnn checkpoint's model as ONNX (opset 13)\n"
      "  dpcnn-export --checkpoint runs/mnist -o mnist.onnx"};
  Options o;
  bool version = false;
  app.add_option("--checkpoint", o.checkpoint,
                 "checkpoint file, `latest` pointer, checkpoints, run or experiment directory "
                 "(default: the newest run under ./runs)");
  app.add_option("-o,--output", o.output, "the ONNX file to write");
  app.add_flag("--logits", o.logits,
               "output the last layer's logits instead of softmax probabilities");
  app.add_flag("--version", version, "print versions (dpcnn, commit, oneDNN and its CPU ISA)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "dpcnn-export: %s (see --help)\n", e.what());
    return dpcnn::exit_code::kBadInput;
  }
  if (version) {
    std::fputs(dpcnn::version_report("dpcnn-export", {dpcnn::onednn_version_line()}).c_str(),
               stdout);
    return 0;
  }
  if (o.output.empty()) {
    std::fprintf(stderr, "dpcnn-export: -o/--output FILE is required (see --help)\n");
    return dpcnn::exit_code::kBadInput;
  }
  try {
    return run(o);
  } catch (const dpcnn::Error& e) {
    std::fprintf(stderr, "dpcnn-export: %s\n", e.what());
    return e.exit_code();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dpcnn-export: internal error: %s\n", e.what());
    return dpcnn::exit_code::kFailure;
  }
}
