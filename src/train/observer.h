// TrainingObserver: how the world outside the ranks follows and steers a run.
// Rank 0's Trainer calls the on_* methods from the training thread (keep them
// quick: a reporter that talks to the network should queue and return), and
// polls poll_command() at every step boundary; the command is broadcast so all
// ranks act on it at the same step. Other ranks never call an observer.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "train/history.h"

namespace dpcnn {

struct RunInfo {
  std::string name, run_dir;
  int ranks = 1;
  std::vector<std::string> hosts;  // one per rank
  int epochs = 0;
  int64_t steps_per_epoch = 0, total_steps = 0;
  int64_t start_step = 0;  // > 0 when resumed from a checkpoint
};

struct ProgressInfo {
  int epoch = 0;  // 1-based
  int64_t step_in_epoch = 0, global_step = 0, total_steps = 0;
  double loss = 0, accuracy = 0;  // running means of this epoch (rank 0's slices)
  double images_per_sec = 0;      // global images over the last interval
  double lr = 0;
};

struct FinalResult {
  double test_loss = 0, test_accuracy = 0;
  int64_t test_count = 0;
  double images_per_sec = 0;
  bool stopped = false;    // ended by a Stop command (after a final checkpoint)
  std::string early_stop;  // why train.early_stopping ended the run; "" if it did not
};

// One rank's figures over the steps since the previous gather (mean seconds
// a step by phase, after the warm-up steps), as its `perf` line measures them.
struct RankStats {
  int rank = 0;
  std::string host;
  int64_t steps = 0;  // in the window; 0: none yet, the figures are the last known
  double step = 0, data = 0, forward_backward = 0, allreduce_wait = 0, optimizer = 0;
  uint64_t peak_rss_bytes = 0;
};

enum class Command : int32_t { kNone = 0, kCheckpoint = 1, kStop = 2 };

class TrainingObserver {
 public:
  virtual ~TrainingObserver() = default;
  virtual void on_start(const RunInfo&) {}
  virtual void on_progress(const ProgressInfo&) {}  // every step; rate-limit inside
  virtual void on_epoch_end(const EpochMetrics&) {}
  virtual void on_checkpoint(const std::string& /*path*/, int64_t /*global_step*/) {}
  // checkpoints/best now names `path` (after its on_checkpoint).
  virtual void on_best(const std::string& /*path*/) {}
  virtual void on_finish(const FinalResult&) {}
  virtual Command poll_command() { return Command::kNone; }
  // Asked at the same step boundary as poll_command(): true makes every rank
  // take part in one small gather of its RankStats, handed to on_rank_stats().
  virtual bool wants_rank_stats() { return false; }
  virtual void on_rank_stats(const std::vector<RankStats>&) {}
};

}  // namespace dpcnn
