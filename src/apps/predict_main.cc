// dpcnn-predict: classifies images (or evaluates an IDX set) with a trained
// checkpoint, on one machine, without MPI. Rebuilds the network from the
// config stored in the checkpoint, so only the checkpoint is needed. Maps every
// bad input to one line on stderr and exit code 2 (1 for internal failures).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "checkpoint/model_io.h"
#include "config/config.h"
#include "core/error.h"
#include "data/idx.h"
#include "image/image.h"
#include "model/model.h"

namespace {

constexpr int kExitBadInput = 2;
constexpr int kBatch = 256;  // bounds memory on 10,000-image IDX sets

struct Options {
  std::string checkpoint;
  std::vector<std::string> images;
  std::vector<std::string> idx;  // IMAGES LABELS
  std::string preprocess = "mnist";
  std::string write_png;
  int count = 10;
  int top = 3;
  bool json = false, show = false;
};

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string json_probs(const float* log_probs, int classes) {
  std::string s = "[";
  for (int k = 0; k < classes; ++k) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s%.7g", k ? "," : "", std::exp(log_probs[k]));
    s += buf;
  }
  return s + "]";
}

std::vector<int> ranked(const float* log_probs, int classes) {
  std::vector<int> order(classes);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return log_probs[a] > log_probs[b]; });
  return order;
}

// The network and what it expects, rebuilt from a checkpoint alone.
struct Loaded {
  dpcnn::Config cfg;
  std::unique_ptr<dpcnn::Model> model;
  int channels = 0, height = 0, width = 0, classes = 0;
};

Loaded load(const std::string& what) {
  const std::string path = dpcnn::resolve_checkpoint_path(what);
  const dpcnn::CheckpointData c = dpcnn::read_checkpoint(path);
  if (c.config_yaml.empty())
    throw dpcnn::Error("checkpoint '" + path + "' holds no config; cannot rebuild its model");
  Loaded l;
  l.cfg = dpcnn::parse_config(c.config_yaml, "checkpoint '" + path + "' (its config)");
  l.model = std::make_unique<dpcnn::Model>(l.cfg.model);
  dpcnn::load_model(c, path, l.model.get(), nullptr);
  l.channels = l.cfg.model.input[0];
  l.height = l.cfg.model.input[1];
  l.width = l.cfg.model.input[2];
  l.classes = l.cfg.model.classes;
  return l;
}

// Runs the model over n inputs in batches; returns n x classes log-probabilities.
std::vector<float> infer(Loaded& l, const std::vector<float>& x, int n) {
  const size_t in = static_cast<size_t>(l.channels) * l.height * l.width;
  std::vector<float> out(static_cast<size_t>(n) * l.classes);
  for (int b = 0; b < n; b += kBatch) {
    const int m = std::min(kBatch, n - b);
    const float* lp = l.model->log_probs(x.data() + b * in, m);
    std::copy(lp, lp + static_cast<size_t>(m) * l.classes, out.begin() + b * l.classes);
  }
  return out;
}

int predict_images(const Options& o, Loaded& l) {
  if (l.channels != 1)
    throw dpcnn::Error("the model takes " + std::to_string(l.channels) +
                       "-channel input; dpcnn-predict reads images as grayscale (1 channel)");
  const auto mode =
      o.preprocess == "resize" ? dpcnn::Preprocess::kResize : dpcnn::Preprocess::kMnist;
  const size_t in = static_cast<size_t>(l.height) * l.width;
  std::vector<float> x;
  std::vector<std::string> names;
  int failed = 0;
  // A bad file costs its own line, not the whole batch.
  for (const std::string& f : o.images) {
    try {
      const auto v = dpcnn::preprocess_digit(dpcnn::load_image(f), mode, l.height, l.width);
      x.insert(x.end(), v.begin(), v.end());
      names.push_back(f);
    } catch (const dpcnn::Error& e) {
      std::fprintf(stderr, "dpcnn-predict: %s\n", e.what());
      ++failed;
    }
  }
  const int n = static_cast<int>(names.size());
  const std::vector<float> lp = n ? infer(l, x, n) : std::vector<float>{};
  for (int i = 0; i < n; ++i) {
    const float* p = lp.data() + static_cast<size_t>(i) * l.classes;
    const auto order = ranked(p, l.classes);
    if (o.json) {
      std::printf("{\"file\":%s,\"prediction\":%d,\"probability\":%.7g,\"probabilities\":%s}\n",
                  json_string(names[i]).c_str(), order[0], std::exp(p[order[0]]),
                  json_probs(p, l.classes).c_str());
    } else {
      std::printf("%s: %d (p=%.3f)  top%d:", names[i].c_str(), order[0], std::exp(p[order[0]]),
                  std::min(o.top, l.classes));
      for (int k = 0; k < std::min(o.top, l.classes); ++k)
        std::printf("%s %d %.3f", k ? "," : "", order[k], std::exp(p[order[k]]));
      std::printf("\n");
    }
    if (o.show) std::fputs(dpcnn::ascii_art(x.data() + i * in, l.height, l.width).c_str(), stdout);
  }
  return failed ? kExitBadInput : 0;
}

struct IdxSet {
  dpcnn::IdxArray images, labels;
  int n = 0, height = 0, width = 0;
};

IdxSet read_idx_set(const std::vector<std::string>& paths) {
  IdxSet s;
  s.images = dpcnn::read_idx(paths[0]);
  s.labels = dpcnn::read_idx(paths[1]);
  if (s.images.dims.size() != 3)
    throw dpcnn::Error("'" + paths[0] + "': expected images (N x H x W), found " +
                       std::to_string(s.images.dims.size()) + " dimensions");
  if (s.labels.dims.size() != 1 || s.labels.dims[0] != s.images.dims[0])
    throw dpcnn::Error("'" + paths[1] + "': expected " + std::to_string(s.images.dims[0]) +
                       " labels to match '" + paths[0] + "'");
  s.n = static_cast<int>(s.images.dims[0]);
  s.height = static_cast<int>(s.images.dims[1]);
  s.width = static_cast<int>(s.images.dims[2]);
  return s;
}

int write_pngs(const Options& o) {
  const IdxSet s = read_idx_set(o.idx);
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

int evaluate_idx(const Options& o, Loaded& l) {
  const IdxSet s = read_idx_set(o.idx);
  if (l.channels != 1 || s.height != l.height || s.width != l.width)
    throw dpcnn::Error("'" + o.idx[0] + "' holds " + std::to_string(s.height) + "x" +
                       std::to_string(s.width) + " images; the model takes " +
                       std::to_string(l.channels) + "x" + std::to_string(l.height) + "x" +
                       std::to_string(l.width));
  for (int i = 0; i < s.n; ++i)
    if (s.labels.data[i] >= l.classes)
      throw dpcnn::Error("'" + o.idx[1] + "': label " + std::to_string(s.labels.data[i]) +
                         " of sample " + std::to_string(i) + " is not below the model's " +
                         std::to_string(l.classes) + " classes");
  // As the trainer feeds them: pixel / 255, no other preprocessing.
  std::vector<float> x(s.images.data.size());
  for (size_t i = 0; i < x.size(); ++i) x[i] = s.images.data[i] / 255.0f;
  const std::vector<float> lp = infer(l, x, s.n);
  std::vector<std::vector<int64_t>> confusion(l.classes, std::vector<int64_t>(l.classes, 0));
  int64_t correct = 0;
  for (int i = 0; i < s.n; ++i) {
    const float* p = lp.data() + static_cast<size_t>(i) * l.classes;
    const int pred = ranked(p, l.classes)[0];
    const int y = s.labels.data[i];
    ++confusion[y][pred];
    correct += pred == y;
    if (o.json)
      std::printf(
          "{\"index\":%d,\"label\":%d,\"prediction\":%d,\"probability\":%.7g,"
          "\"probabilities\":%s}\n",
          i, y, pred, std::exp(p[pred]), json_probs(p, l.classes).c_str());
  }
  const double acc = s.n ? static_cast<double>(correct) / s.n : 0.0;
  if (o.json) {
    std::printf("{\"count\":%d,\"correct\":%lld,\"accuracy\":%.6f,\"confusion\":[", s.n,
                static_cast<long long>(correct), acc);
    for (int r = 0; r < l.classes; ++r) {
      std::printf("%s[", r ? "," : "");
      for (int c = 0; c < l.classes; ++c)
        std::printf("%s%lld", c ? "," : "", static_cast<long long>(confusion[r][c]));
      std::printf("]");
    }
    std::printf("]}\n");
    return 0;
  }
  std::printf("accuracy %.4f (%lld/%d)\n", acc, static_cast<long long>(correct), s.n);
  std::printf("confusion matrix (rows: true label, columns: predicted)\n     ");
  for (int c = 0; c < l.classes; ++c) std::printf("%6d", c);
  std::printf("\n");
  for (int r = 0; r < l.classes; ++r) {
    std::printf("%5d", r);
    for (int c = 0; c < l.classes; ++c)
      std::printf("%6lld", static_cast<long long>(confusion[r][c]));
    std::printf("\n");
  }
  return 0;
}

int run(const Options& o) {
  if (!o.write_png.empty()) {
    if (o.idx.empty()) throw dpcnn::Error("--write-png needs --idx IMAGES LABELS");
    return write_pngs(o);
  }
  if (o.checkpoint.empty()) throw dpcnn::Error("--checkpoint is required");
  if (o.images.empty() && o.idx.empty())
    throw dpcnn::Error("nothing to predict: give IMAGE files or --idx IMAGES LABELS");
  Loaded l = load(o.checkpoint);
  int rc = 0;
  if (!o.images.empty()) rc = predict_images(o, l);
  if (!o.idx.empty()) rc = std::max(rc, evaluate_idx(o, l));
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "dpcnn-predict: classify digit images with a dpcnn checkpoint\n"
      "  dpcnn-predict --checkpoint runs/mnist/checkpoints/latest digit.png ...\n"
      "  dpcnn-predict --checkpoint runs/mnist --idx t10k-images-idx3-ubyte "
      "t10k-labels-idx1-ubyte"};
  Options o;
  app.add_option("--checkpoint", o.checkpoint,
                 "checkpoint file, a `latest` pointer, or a checkpoints (or run) directory");
  app.add_option("images", o.images, "images to classify (PNG, JPEG, BMP, GIF, PGM/PPM)");
  app.add_option("--idx", o.idx, "evaluate an IDX set: IMAGES LABELS (accuracy, confusion)")
      ->expected(2);
  app.add_option("--preprocess", o.preprocess,
                 "mnist: invert, crop, fit 20x20, centre by mass (default); resize: plain resize")
      ->check(CLI::IsMember({"mnist", "resize"}));
  app.add_flag("--json", o.json,
               "one JSON object per image (or IDX sample) with all probabilities");
  app.add_flag("--show", o.show, "draw each preprocessed input as ASCII art");
  app.add_option("--top", o.top, "how many classes to list per image (default 3)")
      ->check(CLI::Range(1, 1000));
  app.add_option("--write-png", o.write_png,
                 "with --idx: write the first --count images as DIR/<index>-label-<label>.png");
  app.add_option("--count", o.count, "images for --write-png (default 10)")
      ->check(CLI::Range(1, 1000000));
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "dpcnn-predict: %s (see --help)\n", e.what());
    return kExitBadInput;
  }
  try {
    return run(o);
  } catch (const dpcnn::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "dpcnn-predict: %s\n", e.what());
    return kExitBadInput;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "dpcnn-predict: internal error: %s\n", e.what());
    return 1;
  }
}
