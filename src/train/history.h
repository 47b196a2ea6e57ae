// Epoch metrics: appended to runs/<name>/metrics.jsonl (one JSON object a line)
// and drawn as an SVG plot of the loss and accuracy curves (curves.svg).
// Written by rank 0 only; plain functions over plain data.
#pragma once

#include <string>
#include <vector>

namespace dpcnn {

struct EpochMetrics {
  int epoch = 0;       // 1-based
  long long step = 0;  // global steps done at the end of this epoch
  double loss = 0, accuracy = 0;
  // Held-out validation (train.validation_split); < 0: not evaluated.
  double val_loss = -1, val_accuracy = -1;
  double lr = 0, seconds = 0, images_per_sec = 0;
  // The test set, scored after the epoch only with train.test_each_epoch; < 0: not.
  double test_loss = -1, test_accuracy = -1;
  bool best = false;  // this epoch's checkpoint became checkpoints/best
};

// The named per-epoch metric (loss, accuracy, val_loss, val_accuracy,
// test_loss, test_accuracy), or -1 when this epoch has none.
double metric_value(const EpochMetrics& m, const std::string& name);

std::string to_json(const EpochMetrics& m);
void append_metrics(const std::string& path, const EpochMetrics& m);
// Two panels (loss, accuracy) over epochs: train, validation and test curves
// (each where it was measured).
std::string curves_svg(const std::vector<EpochMetrics>& history, const std::string& title);
// Writes `text` to `path` atomically (temp file + rename).
void write_file_atomic(const std::string& path, const std::string& text);

}  // namespace dpcnn
