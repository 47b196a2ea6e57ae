// dpcnn-predict: classifies images (files and folders) or evaluates an IDX set
// with a trained checkpoint, on one machine, without MPI. Rebuilds the network
// from the config stored in the checkpoint, so only the checkpoint is needed.
// Maps every bad input to one line on stderr and exit code 2 (1 for internal
// failures). The work is in src/predict/ (files, parallel decoding, batches).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "checkpoint/saved_model.h"
#include "core/error.h"
#include "core/exit_codes.h"
#include "core/json.h"
#include "core/version.h"
#include "data/idx.h"
#include "image/image.h"
#include "image/pipeline.h"
#include "layers/dnnl_info.h"
#include "layers/precision.h"
#include "predict/classify.h"
#include "predict/inputs.h"

namespace {

using dpcnn::exit_code::kBadInput;

struct Options {
  std::string checkpoint;
  std::vector<std::string> images;
  std::vector<std::string> idx;  // IMAGES LABELS
  std::string preprocess = "auto";
  std::string write_png;
  int count = 10;
  int top = 3;
  int batch = 64;
  std::string precision = "fp32";
  bool json = false, show = false, version = false, profile = false;
};

std::string json_probs(const std::vector<double>& p) {
  std::string s = "[";
  for (size_t k = 0; k < p.size(); ++k) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s%.7g", k ? "," : "", p[k]);
    s += buf;
  }
  return s + "]";
}

// "\"prediction\":5,\"class\":\"Sandal\",\"probability\":0.97,\"top\":[...]"
std::string json_answer(const dpcnn::SavedModel& m, const std::vector<double>& p, int top) {
  const auto order = dpcnn::ranked(p);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.7g", p[order[0]]);
  std::string s = "\"prediction\":" + std::to_string(order[0]) +
                  ",\"class\":" + dpcnn::json_string(m.class_names[order[0]]) +
                  ",\"probability\":" + buf + ",\"top\":[";
  for (int k = 0; k < std::min<int>(top, static_cast<int>(p.size())); ++k) {
    std::snprintf(buf, sizeof buf, "%.7g", p[order[k]]);
    s += std::string(k ? "," : "") + "{\"index\":" + std::to_string(order[k]) +
         ",\"class\":" + dpcnn::json_string(m.class_names[order[k]]) + ",\"p\":" + buf + "}";
  }
  return s + "]";
}

// "Sandal (p=0.970)  top3: Sandal 0.970, Sneaker 0.020, Ankle boot 0.010"
std::string text_answer(const dpcnn::SavedModel& m, const std::vector<double>& p, int top) {
  const auto order = dpcnn::ranked(p);
  char buf[64];
  std::snprintf(buf, sizeof buf, " (p=%.3f)", p[order[0]]);
  std::string s = m.class_names[order[0]] + buf;
  const int k_max = std::min<int>(top, static_cast<int>(p.size()));
  if (k_max > 1) {
    s += "  top" + std::to_string(k_max) + ":";
    for (int k = 0; k < k_max; ++k) {
      std::snprintf(buf, sizeof buf, " %.3f", p[order[k]]);
      s += std::string(k ? ", " : " ") + m.class_names[order[k]] + buf;
    }
  }
  return s;
}

int predict_images(const Options& o, dpcnn::SavedModel& m) {
  const dpcnn::InputFiles in = dpcnn::collect_inputs(o.images);
  if (in.skipped)
    std::fprintf(stderr, "dpcnn-predict: skipped %d non-image file(s) in the folders given\n",
                 in.skipped);
  if (in.files.empty()) throw dpcnn::InputError("no image files found in the folders given");
  // auto: the pipeline the model was trained with when it learnt from an image
  // folder or its config names one (configs/fashion-mnist.yaml: none), else
  // MNIST-style (IDX digits were made that way).
  const bool named = m.cfg.data.format == "folder" || m.cfg.data.preprocess_given;
  const std::string name = o.preprocess != "auto" ? o.preprocess
                           : named                ? m.cfg.data.preprocess
                           : m.channels == 1      ? "mnist"
                                                  : "resize";
  const dpcnn::Preprocess mode = dpcnn::parse_preprocess(name);
  int failed = 0;
  // A bad file costs its own line, not the whole batch.
  dpcnn::classify_files(m, in.files, mode, o.batch, [&](const dpcnn::Classified& c) {
    if (!c.error.empty()) {
      std::fflush(stdout);
      std::fprintf(stderr, "dpcnn-predict: %s\n", c.error.c_str());
      ++failed;
      return;
    }
    if (o.json)
      std::printf("{\"file\":%s,%s,\"probabilities\":%s}\n", dpcnn::json_string(*c.file).c_str(),
                  json_answer(m, c.p, o.top).c_str(), json_probs(c.p).c_str());
    else
      std::printf("%s: %s\n", c.file->c_str(), text_answer(m, c.p, o.top).c_str());
    if (o.show)
      std::fputs(dpcnn::ascii_art(c.input, m.channels * m.height, m.width).c_str(), stdout);
  });
  return failed ? kBadInput : 0;
}

struct IdxSet {
  dpcnn::IdxArray images, labels;
  int n = 0, channels = 1, height = 0, width = 0;
};

IdxSet read_idx_set(const std::vector<std::string>& paths) {
  IdxSet s;
  s.images = dpcnn::read_idx(paths[0]);
  s.labels = dpcnn::read_idx(paths[1]);
  if (s.images.dims.size() == 4) {  // N x C x H x W (colour, as dpcnn-dataset writes it)
    s.channels = static_cast<int>(s.images.dims[1]);
    s.images.dims.erase(s.images.dims.begin() + 1);
  }
  if (s.images.dims.size() != 3)
    throw dpcnn::InputError("'" + paths[0] +
                            "': expected images (N x H x W or N x C x H x W), found " +
                            std::to_string(s.images.dims.size()) + " dimensions");
  if (s.labels.dims.size() != 1 || s.labels.dims[0] != s.images.dims[0])
    throw dpcnn::InputError("'" + paths[1] + "': expected " + std::to_string(s.images.dims[0]) +
                            " labels to match '" + paths[0] + "'");
  s.n = static_cast<int>(s.images.dims[0]);
  s.height = static_cast<int>(s.images.dims[1]);
  s.width = static_cast<int>(s.images.dims[2]);
  return s;
}

int write_pngs(const Options& o) {
  const IdxSet s = read_idx_set(o.idx);
  if (s.channels != 1)
    throw dpcnn::InputError("--write-png writes gray images; '" + o.idx[0] +
                            "' has colour (use dpcnn-dataset to-folder)");
  std::error_code ec;
  std::filesystem::create_directories(o.write_png, ec);
  if (ec) throw dpcnn::Error("cannot create '" + o.write_png + "': " + ec.message());
  const size_t in = static_cast<size_t>(s.height) * s.width;
  for (int i = 0; i < std::min(o.count, s.n); ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "/%05d-label-%d.png", i, s.labels.data[i]);
    const std::string path = o.write_png + name;
    dpcnn::write_image(path, s.images.data.data() + i * in, s.width, s.height, 1);
    std::printf("%s\n", path.c_str());
  }
  return 0;
}

void print_confusion(const std::vector<std::vector<int64_t>>& confusion, bool json) {
  const size_t k = confusion.size();
  if (json) {
    std::printf(",\"confusion\":[");
    for (size_t r = 0; r < k; ++r) {
      std::printf("%s[", r ? "," : "");
      for (size_t c = 0; c < k; ++c)
        std::printf("%s%lld", c ? "," : "", static_cast<long long>(confusion[r][c]));
      std::printf("]");
    }
    std::printf("]}\n");
    return;
  }
  std::printf("confusion matrix (rows: true label, columns: predicted)\n     ");
  for (size_t c = 0; c < k; ++c) std::printf("%6zu", c);
  std::printf("\n");
  for (size_t r = 0; r < k; ++r) {
    std::printf("%5zu", r);
    for (size_t c = 0; c < k; ++c) std::printf("%6lld", static_cast<long long>(confusion[r][c]));
    std::printf("\n");
  }
}

int evaluate_idx(const Options& o, dpcnn::SavedModel& m) {
  const IdxSet s = read_idx_set(o.idx);
  if (s.channels != m.channels || s.height != m.height || s.width != m.width)
    throw dpcnn::InputError("'" + o.idx[0] + "' holds " +
                            (s.channels > 1 ? std::to_string(s.channels) + "x" : "") +
                            std::to_string(s.height) + "x" + std::to_string(s.width) +
                            " images; the model takes " + std::to_string(m.channels) + "x" +
                            std::to_string(m.height) + "x" + std::to_string(m.width));
  for (int i = 0; i < s.n; ++i)
    if (s.labels.data[i] >= m.classes)
      throw dpcnn::InputError("'" + o.idx[1] + "': label " + std::to_string(s.labels.data[i]) +
                              " of sample " + std::to_string(i) + " is not below the model's " +
                              std::to_string(m.classes) + " classes");
  // As the trainer feeds them: pixel / 255, no other preprocessing.
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  std::vector<float> x(s.images.data.size());
  for (size_t i = 0; i < x.size(); ++i) x[i] = s.images.data[i] / 255.0f;
  const auto t1 = Clock::now();
  m.model->set_profiling(o.profile);
  const std::vector<double> p = dpcnn::classify_tensors(m, x.data(), s.n, o.batch);
  const auto t2 = Clock::now();
  if (o.profile) {
    auto ms = [](Clock::time_point a, Clock::time_point b) {
      return std::chrono::duration<double, std::milli>(b - a).count();
    };
    const int batches = (s.n + o.batch - 1) / o.batch;
    std::fprintf(stderr,
                 "profile: %d images in %d batches of %d: pixels/255 %.1f ms, network and "
                 "probabilities %.1f ms (%.3f ms a batch, %.0f images/s)\n"
                 "per batch on the first thread's copy of the network:\n%s",
                 s.n, batches, o.batch, ms(t0, t1), ms(t1, t2), ms(t1, t2) / batches,
                 s.n / (ms(t1, t2) / 1e3), m.model->profile_table("batch").c_str());
  }
  std::vector<std::vector<int64_t>> confusion(m.classes, std::vector<int64_t>(m.classes, 0));
  int64_t correct = 0;
  for (int i = 0; i < s.n; ++i) {
    const std::vector<double> pi(p.begin() + static_cast<size_t>(i) * m.classes,
                                 p.begin() + static_cast<size_t>(i + 1) * m.classes);
    const int pred = dpcnn::ranked(pi)[0];
    const int y = s.labels.data[i];
    ++confusion[y][pred];
    correct += pred == y;
    if (o.json)
      std::printf("{\"index\":%d,\"label\":%d,%s,\"probabilities\":%s}\n", i, y,
                  json_answer(m, pi, o.top).c_str(), json_probs(pi).c_str());
  }
  const double acc = s.n ? static_cast<double>(correct) / s.n : 0.0;
  if (o.json)
    std::printf("{\"count\":%d,\"correct\":%lld,\"accuracy\":%.6f", s.n,
                static_cast<long long>(correct), acc);
  else
    std::printf("accuracy %.4f (%lld/%d)\n", acc, static_cast<long long>(correct), s.n);
  print_confusion(confusion, o.json);
  return 0;
}

int run(const Options& o) {
  if (!o.write_png.empty()) {
    if (o.idx.empty()) throw dpcnn::InputError("--write-png needs --idx IMAGES LABELS");
    return write_pngs(o);
  }
  if (o.images.empty() && o.idx.empty())
    throw dpcnn::InputError(
        "nothing to predict: give IMAGE files or folders, or --idx IMAGES LABELS");
  std::string what = o.checkpoint;
  if (what.empty()) {
    std::string why;
    what = dpcnn::default_checkpoint("runs", &why);
    std::fprintf(stderr, "dpcnn-predict: %s\n", why.c_str());
  }
  // fp32 by default: the probabilities then match training's evaluation and
  // the exported ONNX model to 1e-4; bf16 (or auto, bf16 on AMX) trades that
  // for speed and agrees to about 1e-2.
  const dpcnn::PrecisionChoice prec =
      dpcnn::choose_precision(o.precision, dpcnn::detect_cpu_bf16(), "--precision");
  if (o.precision != "fp32")
    std::fprintf(stderr, "dpcnn-predict: precision %s (%s)\n",
                 dpcnn::precision_name(prec.precision), prec.why.c_str());
  dpcnn::SavedModel m = dpcnn::open_saved_model(what, prec.precision);
  if (!m.note.empty()) std::fprintf(stderr, "dpcnn-predict: %s\n", m.note.c_str());
  int rc = 0;
  if (!o.images.empty()) rc = predict_images(o, m);
  if (!o.idx.empty()) rc = std::max(rc, evaluate_idx(o, m));
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "dpcnn-predict: classify images with a dpcnn checkpoint\n"
      "  dpcnn-predict --checkpoint runs/mnist digit.png photos/ ...\n"
      "  dpcnn-predict --checkpoint runs/mnist --idx t10k-images-idx3-ubyte "
      "t10k-labels-idx1-ubyte"};
  Options o;
  app.add_option("--checkpoint", o.checkpoint,
                 "checkpoint file, `latest` pointer, checkpoints, run or experiment directory "
                 "(default: the newest run under ./runs)");
  app.add_option("images", o.images,
                 "image files (PNG, JPEG, BMP, GIF, PGM/PPM) and folders (searched recursively)");
  app.add_option("--idx", o.idx, "evaluate an IDX set: IMAGES LABELS (accuracy, confusion)")
      ->expected(2);
  app.add_option("--preprocess", o.preprocess,
                 "auto (default): the model's data.preprocess if it was trained on an image "
                 "folder or its config names one, else mnist; mnist: invert, crop, fit 20x20, "
                 "centre by mass; resize: "
                 "plain resize; none: images already at the model's input size")
      ->check(CLI::IsMember({"auto", "mnist", "resize", "none"}));
  app.add_flag(
      "--json", o.json,
      "one JSON object per image (or IDX sample): index and class name, all probabilities");
  app.add_flag("--show", o.show, "draw each preprocessed input as ASCII art");
  app.add_option("--top", o.top, "how many classes to list per image (default 3)")
      ->check(CLI::Range(1, 1000));
  app.add_option("--batch", o.batch, "images per pass through the network (default 64)")
      ->check(CLI::Range(1, 65536));
  app.add_option("--precision", o.precision,
                 "fp32 (default: matches training's evaluation and the ONNX export), bf16, or "
                 "auto (bf16 where the CPU computes it fast, i.e. AMX)")
      ->check(CLI::IsMember({"fp32", "bf16", "auto"}));
  app.add_flag("--profile", o.profile,
               "with --idx: time each layer a batch and the phases (on stderr)");
  app.add_option("--write-png", o.write_png,
                 "with --idx: write the first --count images as DIR/<index>-label-<label>.png");
  app.add_option("--count", o.count, "images for --write-png (default 10)")
      ->check(CLI::Range(1, 1000000));
  app.add_flag("--version", o.version, "print versions (dpcnn, commit, oneDNN and its CPU ISA)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "dpcnn-predict: %s (see --help)\n", e.what());
    return kBadInput;
  }
  if (o.version) {
    std::fputs(dpcnn::version_report("dpcnn-predict", {dpcnn::onednn_version_line()}).c_str(),
               stdout);
    return 0;
  }
  try {
    return run(o);
  } catch (const dpcnn::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "dpcnn-predict: %s\n", e.what());
    // Everything predict reads is input; a failure to write (--write-png) is not.
    return e.exit_code() == dpcnn::exit_code::kFailure && o.write_png.empty() ? kBadInput
                                                                              : e.exit_code();
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "dpcnn-predict: internal error: %s\n", e.what());
    return dpcnn::exit_code::kFailure;
  }
}
