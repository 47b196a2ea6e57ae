#include "launcher/metrics.h"

#include <google/protobuf/util/time_util.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <cctype>

namespace dpcnn::launcher {
namespace {

namespace pb = dpcnn::v1;
using google::protobuf::util::TimeUtil;
using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::Registry;

double seconds_of(const google::protobuf::Timestamp& t) {
  return static_cast<double>(TimeUtil::TimestampToNanoseconds(t)) * 1e-9;
}

// One unlabelled gauge.
void gauge(Registry& r, const std::string& name, const std::string& help, double value) {
  BuildGauge().Name(name).Help(help).Register(r).Add({}).Set(value);
}

}  // namespace

std::string state_label(pb::JobState state) {
  std::string s = pb::JobState_Name(state);
  s = s.substr(std::string("JOB_STATE_").size());
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string render_metrics(const pb::JobStatus& s, std::chrono::system_clock::time_point now) {
  Registry r;
  // A state set (one series a state, 1 for the current one), so that
  // `dpcnn_job_state{state="running"} == 1` selects running jobs.
  auto& state = BuildGauge()
                    .Name("dpcnn_job_state")
                    .Help("1 for the job's current state, 0 for the others")
                    .Register(r);
  for (int v = pb::JOB_STATE_STARTING; v <= pb::JOB_STATE_FAILED; ++v)
    state.Add({{"state", state_label(static_cast<pb::JobState>(v))}}).Set(v == s.state() ? 1 : 0);
  BuildGauge()
      .Name("dpcnn_job_info")
      .Help("constant 1; the run's id and config name as labels")
      .Register(r)
      .Add({{"run_id", s.run_id()}, {"config_name", s.config_name()}})
      .Set(1);
  gauge(r, "dpcnn_ranks", "number of ranks of the job", s.ranks());
  gauge(r, "dpcnn_epoch", "current epoch, 1-based", s.epoch());
  gauge(r, "dpcnn_epochs", "epochs the run trains", s.epochs());
  gauge(r, "dpcnn_step", "global steps done", static_cast<double>(s.step()));
  gauge(r, "dpcnn_total_steps", "global steps the run trains",
        static_cast<double>(s.total_steps()));
  gauge(r, "dpcnn_images_per_second",
        "training images per second, all ranks together (the current epoch's mean, as rank 0 "
        "reports it)",
        s.images_per_sec());
  // No series while the ETA is unknown (no speed yet, or a restart): 0 means done.
  if (s.eta_known())
    gauge(r, "dpcnn_eta_seconds", "estimated seconds until the last step (0: done)",
          s.eta_seconds());
  if (s.step() > 0) gauge(r, "dpcnn_learning_rate", "learning rate of the last step", s.lr());

  // Loss and accuracy by split: train = the current epoch's running mean (as
  // JobStatus.loss/accuracy), val = the last epoch's validation, test = the
  // final evaluation. A split the run has not evaluated has no series.
  auto& loss = BuildGauge()
                   .Name("dpcnn_loss")
                   .Help(
                       "mean cross-entropy loss by split (train: running mean of the current "
                       "epoch; val: last evaluated epoch; test: final evaluation)")
                   .Register(r);
  auto& acc = BuildGauge()
                  .Name("dpcnn_accuracy_ratio")
                  .Help("fraction of samples classified right, by split (as dpcnn_loss)")
                  .Register(r);
  if (s.step() > 0) {
    loss.Add({{"split", "train"}}).Set(s.loss());
    acc.Add({{"split", "train"}}).Set(s.accuracy());
  }
  for (int i = s.history_size() - 1; i >= 0; --i) {
    const auto& e = s.history(i);
    if (e.val_accuracy() < 0) continue;
    loss.Add({{"split", "val"}}).Set(e.val_loss());
    acc.Add({{"split", "val"}}).Set(e.val_accuracy());
    break;
  }
  if (s.has_result()) {
    loss.Add({{"split", "test"}}).Set(s.test_loss());
    acc.Add({{"split", "test"}}).Set(s.test_accuracy());
  }

  BuildCounter()
      .Name("dpcnn_restarts_total")
      .Help("restarts of the job from its last checkpoint since the launcher started")
      .Register(r)
      .Add({})
      .Increment(s.restarts());
  gauge(r, "dpcnn_max_restarts", "restarts allowed before the launcher gives up", s.max_restarts());
  if (s.has_last_checkpoint_time()) {
    const double t = seconds_of(s.last_checkpoint_time());
    const double now_s = std::chrono::duration<double>(now.time_since_epoch()).count();
    gauge(r, "dpcnn_last_checkpoint_step", "global step of the last checkpoint written",
          static_cast<double>(s.last_checkpoint_step()));
    gauge(r, "dpcnn_last_checkpoint_timestamp_seconds",
          "when the last checkpoint was reported (Unix time)", t);
    gauge(r, "dpcnn_last_checkpoint_age_seconds", "seconds since the last checkpoint was reported",
          std::max(0.0, now_s - t));
  }

  // Per rank, over the steps since the previous gather (about one report
  // interval): mean seconds a step by phase, and the peak resident set.
  auto& step = BuildGauge()
                   .Name("dpcnn_rank_step_seconds")
                   .Help("mean seconds of a training step on this rank, recent window")
                   .Register(r);
  auto& phase = BuildGauge()
                    .Name("dpcnn_rank_phase_seconds")
                    .Help(
                        "mean seconds a step spends in each phase on this rank, recent window "
                        "(data, forward_backward, allreduce_wait, optimizer)")
                    .Register(r);
  auto& wait = BuildGauge()
                   .Name("dpcnn_rank_allreduce_wait_seconds")
                   .Help(
                       "mean seconds a step waits for the gradient allreduce on this rank "
                       "(exposed communication), recent window")
                   .Register(r);
  auto& rss = BuildGauge()
                  .Name("dpcnn_rank_peak_rss_bytes")
                  .Help("peak resident set size of the rank's process")
                  .Register(r);
  for (const auto& k : s.rank_stats()) {
    const prometheus::Labels l = {{"rank", std::to_string(k.rank())}, {"host", k.host()}};
    auto with = [&](const char* p) {
      prometheus::Labels m = l;
      m["phase"] = p;
      return m;
    };
    step.Add(l).Set(k.step_seconds());
    phase.Add(with("data")).Set(k.data_seconds());
    phase.Add(with("forward_backward")).Set(k.forward_backward_seconds());
    phase.Add(with("allreduce_wait")).Set(k.allreduce_wait_seconds());
    phase.Add(with("optimizer")).Set(k.optimizer_seconds());
    wait.Add(l).Set(k.allreduce_wait_seconds());
    rss.Add(l).Set(static_cast<double>(k.peak_rss_bytes()));
  }
  return prometheus::TextSerializer().Serialize(r.Collect());
}

}  // namespace dpcnn::launcher
