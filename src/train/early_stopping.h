// Epoch-end callbacks over the epoch metrics, as Keras's: EarlyStopping (stop
// when the monitored metric has not improved by more than min_delta for
// `patience` epochs) and the choice of checkpoints/best (ModelCheckpoint with
// save_best_only: strictly better than every epoch before). Both are pure
// functions of the metric history, so a resumed run rebuilds their state by
// replaying the history its checkpoint holds. Plain data; one thread.
#pragma once

#include <string>

#include "config/config.h"
#include "train/history.h"

namespace dpcnn {

// "min" or "max" for a metric and a Keras mode (auto: max for *accuracy).
std::string metric_mode(const std::string& monitor, const std::string& mode);

class EarlyStopping {
 public:
  explicit EarlyStopping(const EarlyStoppingConfig& cfg);
  // Feeds one epoch; true when training should stop after it. An epoch
  // without the metric (evaluation off, a partial epoch) changes nothing.
  bool on_epoch_end(const EpochMetrics& m);
  bool stopped() const { return stopped_epoch_ > 0; }
  int stopped_epoch() const { return stopped_epoch_; }
  // "val_loss did not improve by more than 0 for 3 epochs (best 0.0412 at epoch 9)"
  std::string reason() const;

 private:
  EarlyStoppingConfig cfg_;
  bool minimize_ = true;
  double best_;
  int best_epoch_ = 0, wait_ = 0, stopped_epoch_ = 0, seen_ = 0;
};

// Which checkpoint is best by `monitor` ("" for none).
class BestTracker {
 public:
  BestTracker(std::string monitor, const std::string& mode);
  bool enabled() const { return !monitor_.empty(); }
  // True when this epoch is strictly better than every one before.
  bool improves(const EpochMetrics& m);
  const std::string& monitor() const { return monitor_; }
  double best() const { return best_; }
  int best_epoch() const { return best_epoch_; }

 private:
  std::string monitor_;
  bool minimize_ = true;
  double best_;
  int best_epoch_ = 0;
};

// checkpoint.best_monitor resolved: "auto" is early stopping's monitor, else
// val_loss with a validation split, else "" (no best checkpoint).
std::string best_monitor(const Config& cfg);

}  // namespace dpcnn
