// Trainer: the data-parallel training loop (global batch split across ranks,
// gradients averaged with the communicator, every rank stepping together), the
// distributed evaluation, checkpoints (rank 0 writes, every rank resumes), and
// rank 0's outputs (progress, metrics.jsonl, curves.svg, the final summary, the
// observer). Knows the Communicator interface, never MPI.
// Not thread-safe: runs on the process's main thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <csignal>
#include "comm/communicator.h"
#include "config/config.h"
#include "data/dataset.h"
#include "model/model.h"
#include "optim/optimizer.h"
#include "train/batch_stats_comm.h"
#include "train/early_stopping.h"
#include "train/history.h"
#include "train/observer.h"

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

struct TrainerOptions {
  TrainingObserver* observer = nullptr;  // rank 0's; may be null
  // Rank 0's observer may issue commands: every rank then takes part in a
  // broadcast at each step boundary (all ranks must agree on this flag).
  bool commands = false;
  // Set asynchronously (a SIGTERM handler: scancel, a preempting scheduler,
  // mpirun passing on Ctrl-C) to stop at the next step boundary with a final
  // checkpoint, as the launcher's Stop does. Any rank's flag stops every rank
  // at the same step. May be null (then only commands stop a run).
  const volatile std::sig_atomic_t* stop_flag = nullptr;
  std::string resume;          // "", "auto" (newest valid, if any) or a checkpoint path
  bool live_progress = false;  // redraw a progress bar in place (a terminal)
  // Rank 0's run directory (checkpoints, metrics.jsonl, curves.svg), chosen and
  // locked by the caller. "" writes nothing (--evaluate-only).
  std::string run_dir;
  // What the network computes in (the caller resolves train.precision "auto"
  // with choose_precision); weights, optimizer and allreduce stay f32.
  Precision precision = Precision::kFp32;
};

class Trainer {
 public:
  Trainer(const Config& cfg, Communicator& comm, const DataSplit& data,
          const TrainerOptions& options = {});

  // Trains up to cfg.train.epochs epochs (or max_steps, or a Stop command) and
  // returns the final evaluation (not run after a Stop).
  EvalResult run();
  // Each test sample is evaluated exactly once across ranks; the result is the
  // same on every rank and for every rank count.
  EvalResult evaluate();
  // The same over the held-out validation set (train.validation_split).
  EvalResult evaluate_validation();
  // Prints the final "test_loss ... test_acc ..." and "perf {...}" lines (rank 0).
  void print_summary(const EvalResult& final_eval);

  Model& model() { return model_; }
  // Rank 0's run directory; set once, before run(), when a new run's directory
  // is created only after the model and the checkpoint were checked.
  const std::string& run_dir() const { return run_dir_; }
  void set_run_dir(std::string dir);
  const PhaseTimes& times() const { return times_; }
  const std::vector<EpochMetrics>& history() const { return history_; }
  int64_t global_step() const { return global_step_; }
  int64_t total_steps() const { return total_steps_; }
  bool stopped() const { return stopped_; }
  // train.early_stopping ended the run (now, or before the checkpoint it resumed).
  bool early_stopped() const { return early_stopped_; }
  // True when the resumed checkpoint already holds the whole run (its epochs or
  // max_steps): run() then trains nothing and only evaluates.
  bool complete() const { return global_step_ >= total_steps_; }

 private:
  using Clock = std::chrono::steady_clock;
  void train_epoch(int epoch);
  LossResult step(const std::vector<int64_t>& order, int epoch, int64_t s);
  EvalResult evaluate_slice(const Dataset& d, Slice mine);
  void after_epoch_checkpoint(EpochMetrics& m);
  void replay_callbacks(const std::string& saved_yaml);
  bool handle_command(int epoch, int64_t step_in_epoch);
  void gather_rank_stats();
  EpochMetrics end_epoch(int epoch, double loss_sum, double correct, int64_t seen, double seconds);
  void check_replicas_agree(int epoch);
  void record_times(Clock::time_point t0, Clock::time_point t1, Clock::time_point t2,
                    Clock::time_point t3, int64_t images);
  // trainer_checkpoint.cc
  // on_command: a checkpoint asked for by the observer's command, reported to
  // it even when this step was already saved.
  void save_checkpoint(int epoch, int64_t step_in_epoch, bool on_command = false);
  void resume(const std::string& what);
  void check_resumed_config(const std::string& saved_yaml, const std::string& path);

  const Config& cfg_;
  Communicator& comm_;
  CommBatchStats batch_stats_{comm_};  // synchronized BatchNorm's peers
  const DataSplit& data_;
  TrainerOptions opts_;
  Model model_;
  std::unique_ptr<Optimizer> opt_;
  std::unique_ptr<GradientReducer> reducer_;
  std::vector<float> x_;
  std::vector<int32_t> y_;
  int64_t steps_per_epoch_ = 0, total_steps_ = 0, global_step_ = 0;
  int start_epoch_ = 0;
  int64_t start_step_ = 0, saved_step_ = -1;
  std::string saved_path_;  // of saved_step_
  float lr_ = 0;            // of the last step
  PhaseTimes times_;
  PhaseTimes window_start_;         // times_ at the last rank-stats gather
  RankStats last_window_;           // this rank's figures of the last window that had steps
  std::vector<std::string> hosts_;  // one per rank, gathered in run()
  std::vector<EpochMetrics> history_;
  EarlyStopping early_;
  BestTracker best_;
  std::string run_dir_;
  bool done_ = false, stopped_ = false;
  bool early_stopped_ = false;  // rank 0's EarlyStopping decided (broadcast)
  std::string early_reason_;    // rank 0
};

// FNV-1a over the bytes of a float buffer: cheap replica-agreement check.
uint64_t checksum(const float* data, size_t n);

}  // namespace dpcnn
