// The Trainer's checkpoints: rank 0 writes (the others go on to the next
// collective, where they wait at most one write); on resume rank 0 reads and
// broadcasts, so hosts without a shared filesystem resume too.
#include <chrono>
#include <cstdio>
#include <sstream>

#include "checkpoint/checkpoint.h"
#include "checkpoint/model_io.h"
#include "config/config_diff.h"
#include "core/error.h"
#include "train/trainer.h"

namespace dpcnn {
namespace {

MetricsRecord to_record(const EpochMetrics& m) {
  return {m.epoch, m.step,    m.loss,           m.accuracy,  m.val_loss,      m.val_accuracy,
          m.lr,    m.seconds, m.images_per_sec, m.test_loss, m.test_accuracy, m.best};
}

EpochMetrics from_record(const MetricsRecord& r) {
  return {r.epoch, r.step,    r.loss,           r.accuracy,  r.val_loss,      r.val_accuracy,
          r.lr,    r.seconds, r.images_per_sec, r.test_loss, r.test_accuracy, r.best};
}

}  // namespace

void Trainer::save_checkpoint(int epoch, int64_t step_in_epoch, bool on_command) {
  if (comm_.rank() != 0 || run_dir_.empty()) return;
  if (global_step_ == saved_step_) {
    // Asked for one at a step already saved (e.g. right after an epoch end):
    // that checkpoint is the answer, and the launcher waits to hear so.
    if (on_command && opts_.observer) opts_.observer->on_checkpoint(saved_path_, global_step_);
    return;
  }
  const auto t0 = std::chrono::steady_clock::now();
  CheckpointData c;
  save_model(model_, opt_.get(), cfg_.optimizer.type, &c);
  c.config_yaml = cfg_.yaml;
  c.ranks = comm_.size();
  c.epoch = epoch;
  c.step_in_epoch = step_in_epoch;
  c.global_step = global_step_;
  c.seed = cfg_.seed;
  for (const auto& m : history_) c.metrics.push_back(to_record(m));
  const std::string path =
      CheckpointDir(run_dir_ + "/checkpoints").save(c, std::max(1, cfg_.checkpoint.keep));
  saved_step_ = global_step_;
  saved_path_ = path;
  const double ms =
      1e3 * std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("checkpoint %s (step %lld, %.1f ms)\n", path.c_str(),
              static_cast<long long>(global_step_), ms);
  std::fflush(stdout);
  if (opts_.observer) opts_.observer->on_checkpoint(path, global_step_);
}

void Trainer::resume(const std::string& what) {
  // Rank 0 finds and loads the checkpoint; a failure there is an exception that
  // the worker's main turns into one line and a job-wide abort.
  // found, epoch, step_in_epoch, global_step, stopped early
  int64_t pos[5] = {0, 0, 0, 0, 0};
  if (comm_.rank() == 0) {
    CheckpointData c;
    std::string path;
    bool found = true;
    if (what == "auto") {
      found = !run_dir_.empty() && CheckpointDir(run_dir_ + "/checkpoints")
                                       .load_newest_valid(model_spec_text(cfg_.model), &c, &path);
    } else {
      path = resolve_checkpoint_path(what);
      c = read_checkpoint(path);
    }
    if (found) {
      if (!run_dir_.empty()) check_resumed_config(c.config_yaml, path);  // not when only reading
      load_model(c, path, &model_, opt_.get(), cfg_.optimizer.type);
      saved_path_ = path;
      pos[0] = 1;
      pos[1] = c.epoch;
      pos[2] = c.step_in_epoch;
      pos[3] = c.global_step;
      for (const auto& r : c.metrics) history_.push_back(from_record(r));
      if (!run_dir_.empty()) replay_callbacks(c.config_yaml);
      pos[4] = early_.stopped();
      if (!run_dir_.empty()) {
        std::ostringstream log;  // the run's log now matches the checkpoint's history
        for (const auto& m : history_) log << to_json(m) << '\n';
        write_file_atomic(run_dir_ + "/metrics.jsonl", log.str());
      }
      std::printf("%s %s: epoch %lld, step %lld (%lld steps done)\n",
                  run_dir_.empty() ? "loaded" : "resuming from", path.c_str(),
                  static_cast<long long>(c.epoch + 1), static_cast<long long>(c.step_in_epoch),
                  static_cast<long long>(c.global_step));
    } else {
      if (run_dir_.empty())
        std::printf("no earlier run of '%s' has a checkpoint: starting a new run\n",
                    cfg_.name.c_str());
      else
        std::printf("no checkpoint in %s/checkpoints: starting fresh\n", run_dir_.c_str());
    }
    std::fflush(stdout);
  }
  comm_.broadcast(pos, sizeof pos, 0);
  comm_.broadcast(model_.params(), model_.param_count() * sizeof(float), 0);
  comm_.broadcast(model_.state(), model_.state_count() * sizeof(float), 0);
  for (auto& [name, slot] : opt_->slots()) comm_.broadcast(slot->data(), slot->size() * 4, 0);
  comm_.broadcast(&opt_->iterations, sizeof opt_->iterations, 0);
  if (!pos[0]) return;
  start_epoch_ = static_cast<int>(pos[1]);
  start_step_ = pos[2];
  global_step_ = saved_step_ = pos[3];
  early_stopped_ = pos[4] != 0;
}

// EarlyStopping and the best checkpoint are functions of the metric history:
// replaying it restores their state (best value, epochs waited, stopped). A
// run that had stopped early and would not stop under the new settings says
// so, rather than train on silently.
void Trainer::replay_callbacks(const std::string& saved_yaml) {
  for (const auto& m : history_) {
    early_.on_epoch_end(m);
    best_.improves(m);
  }
  if (early_.stopped()) {
    early_reason_ = early_.reason();
    return;
  }
  if (saved_yaml.empty()) return;
  try {
    EarlyStopping before(parse_config(saved_yaml, "checkpoint").train.early_stopping);
    for (const auto& m : history_) before.on_epoch_end(m);
    if (before.stopped())
      std::printf(
          "resume: this run had stopped early after epoch %d (%s); with the new "
          "train.early_stopping settings it trains on\n",
          before.stopped_epoch(), before.reason().c_str());
  } catch (const Error&) {
    // A config this version no longer reads: nothing to compare with.
  }
}

// Every setting that differs from the checkpoint's config is listed with the
// value used; what cannot change mid-run (the batch, and with it the position
// in the epoch; the optimizer and its state; the model's shapes, which
// load_model checks) is refused.
void Trainer::check_resumed_config(const std::string& saved_yaml, const std::string& path) {
  if (saved_yaml.empty()) return;  // written by a version that kept no config
  for (const ConfigChange& d : diff_configs(saved_yaml, cfg_.yaml)) {
    if (d.key == "train.batch_size" || d.key == "optimizer.type")
      throw InputError("cannot resume from " + path + " with " + d.key + " " + d.now +
                       ": the checkpoint was trained with " + d.before +
                       " (start a new run, or resume with the same value)");
    if (d.key == "name" || d.key == "runs_dir") continue;  // where, not how
    std::printf("resume: %s differs from the checkpoint's (%s -> %s); using %s\n", d.key.c_str(),
                d.before.c_str(), d.now.c_str(), d.now.c_str());
  }
}

}  // namespace dpcnn
