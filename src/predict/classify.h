// Batched classification for dpcnn-predict: whole batches per OpenMP thread,
// each thread decoding and preprocessing its batch of image files and running
// it through its own single-threaded copy of the network (no per-layer
// barriers between threads), and the network's float log-probabilities turned
// into probabilities computed in double, so they sum to 1 and none exceeds 1
// (exp of a float log-probability can reach 1.000001). Not thread-safe: one
// caller, which owns the SavedModel while classifying; the parallelism is inside.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "checkpoint/saved_model.h"
#include "image/image.h"

namespace dpcnn {

// Softmax in double of `classes` log-probabilities (or logits): every value in
// [0, 1] and their sum 1 up to double rounding.
std::vector<double> probabilities_from_log_probs(const float* log_probs, int classes);

// Classes by decreasing probability (ties: lower index first).
std::vector<int> ranked(const std::vector<double>& p);

struct Classified {
  const std::string* file = nullptr;
  std::vector<double> p;         // one per class
  const float* input = nullptr;  // the preprocessed input (C x height x width), for --show
  std::string error;             // set (and p empty) when the file could not be read
};

// Classifies `files` in batches of `batch`, in order, and calls `emit` once per
// file (decode failures included, with `error` set). Images are decoded with
// the model's channel count and go through src/image/pipeline.h, as training
// on an image folder does.
void classify_files(SavedModel& m, const std::vector<std::string>& files, Preprocess mode,
                    int batch, const std::function<void(const Classified&)>& emit);

// Runs n inputs (n x C x H x W floats) through the network in batches; returns
// n x classes probabilities.
std::vector<double> classify_tensors(SavedModel& m, const float* x, int n, int batch);

}  // namespace dpcnn
