#include "train/early_stopping.h"

#include <cstdio>
#include <limits>

namespace dpcnn {

std::string metric_mode(const std::string& monitor, const std::string& mode) {
  if (mode == "min" || mode == "max") return mode;
  return monitor.find("acc") != std::string::npos ? "max" : "min";
}

EarlyStopping::EarlyStopping(const EarlyStoppingConfig& cfg)
    : cfg_(cfg),
      minimize_(metric_mode(cfg.monitor, cfg.mode) == "min"),
      best_(minimize_ ? std::numeric_limits<double>::infinity()
                      : -std::numeric_limits<double>::infinity()) {}

// Keras 2.11's EarlyStopping.on_epoch_end: wait counts epochs since the last
// improvement (by more than min_delta); it stops once wait >= patience, never
// after the first epoch.
bool EarlyStopping::on_epoch_end(const EpochMetrics& m) {
  if (!cfg_.enabled || stopped()) return stopped();
  const double v = metric_value(m, cfg_.monitor);
  if (v < 0) return false;
  ++seen_;
  ++wait_;
  const bool better = minimize_ ? v + cfg_.min_delta < best_ : v - cfg_.min_delta > best_;
  if (better) {
    best_ = v;
    best_epoch_ = m.epoch;
    wait_ = 0;
    return false;
  }
  if (wait_ >= cfg_.patience && seen_ > 1) stopped_epoch_ = m.epoch;
  return stopped();
}

std::string EarlyStopping::reason() const {
  char buf[256];
  std::snprintf(
      buf, sizeof buf, "%s did not improve by more than %g for %d epoch(s) (best %.4f at epoch %d)",
      cfg_.monitor.c_str(), static_cast<double>(cfg_.min_delta), wait_, best_, best_epoch_);
  return buf;
}

BestTracker::BestTracker(std::string monitor, const std::string& mode)
    : monitor_(std::move(monitor)),
      minimize_(metric_mode(monitor_, mode) == "min"),
      best_(minimize_ ? std::numeric_limits<double>::infinity()
                      : -std::numeric_limits<double>::infinity()) {}

bool BestTracker::improves(const EpochMetrics& m) {
  if (monitor_.empty()) return false;
  const double v = metric_value(m, monitor_);
  if (v < 0 || !(minimize_ ? v < best_ : v > best_)) return false;
  best_ = v;
  best_epoch_ = m.epoch;
  return true;
}

std::string best_monitor(const Config& cfg) {
  const std::string& b = cfg.checkpoint.best_monitor;
  if (b == "none" || !cfg.train.eval) return "";
  if (b != "auto") return b;
  if (cfg.train.early_stopping.enabled) return cfg.train.early_stopping.monitor;
  return cfg.train.validation_split > 0 ? "val_loss" : "";
}

}  // namespace dpcnn
