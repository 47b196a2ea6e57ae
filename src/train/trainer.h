// Trainer: the data-parallel training loop (global batch split across ranks,
// gradients averaged with the communicator, every rank stepping together), the
// distributed evaluation, and rank 0's outputs (progress, metrics.jsonl,
// curves.svg, the final summary). Knows the Communicator interface, never MPI.
// Not thread-safe: runs on the process's main thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "config/config.h"
#include "data/dataset.h"
#include "model/model.h"
#include "optim/optimizer.h"
#include "train/history.h"

namespace dpcnn {

// Where one rank's share of a global batch starts and how big it is.
struct Slice {
  int64_t begin = 0;  // position within the global batch
  int n = 0;
};
// Contiguous slices that differ in size by at most one, the larger first.
Slice rank_slice(int64_t total, int rank, int ranks);

struct EvalResult {
  double loss = 0, accuracy = 0;
  int64_t count = 0, correct = 0;
};

// Seconds per phase, summed over a run's training steps after the first
// kWarmupSteps (which create primitives and touch fresh memory).
constexpr int64_t kWarmupSteps = 5;
struct PhaseTimes {
  double data = 0, forward_backward = 0, allreduce_wait = 0, optimizer = 0;
  int64_t steps = 0, images = 0;
  double wall = 0;  // whole steps, start to end
};

class Trainer {
 public:
  Trainer(const Config& cfg, Communicator& comm, const DataSplit& data);

  // Trains cfg.train.epochs epochs (or max_steps); returns the final evaluation.
  EvalResult run();
  // Prints the final "test_loss ... test_acc ..." and "perf {...}" lines (rank 0).
  void print_summary(const EvalResult& final_eval);
  // Each test sample is evaluated exactly once across ranks; the result is the
  // same on every rank and for every rank count.
  EvalResult evaluate();

  Model& model() { return model_; }
  const PhaseTimes& times() const { return times_; }
  const std::vector<EpochMetrics>& history() const { return history_; }
  int64_t global_step() const { return global_step_; }

 private:
  void train_epoch(int epoch);
  EpochMetrics end_epoch(int epoch, double loss_sum, double correct, int64_t seen, double seconds);
  void check_replicas_agree(int epoch);
  using Clock = std::chrono::steady_clock;
  void record_times(Clock::time_point t0, Clock::time_point t1, Clock::time_point t2,
                    Clock::time_point t3, int64_t images);

  const Config& cfg_;
  Communicator& comm_;
  const DataSplit& data_;
  Model model_;
  std::unique_ptr<Optimizer> opt_;
  std::unique_ptr<GradientReducer> reducer_;
  std::vector<float> x_;
  std::vector<int32_t> y_;
  int64_t steps_per_epoch_ = 0, total_steps_ = 0, global_step_ = 0;
  PhaseTimes times_;
  std::vector<EpochMetrics> history_;
  std::string run_dir_;
  bool done_ = false;
};

// FNV-1a over the bytes of a float buffer: cheap replica-agreement check.
uint64_t checksum(const float* data, size_t n);

}  // namespace dpcnn
