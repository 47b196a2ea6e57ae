#include "launcher/status_text.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>

#include <cstdarg>
#include <cstdio>

namespace dpcnn::launcher {
namespace {

namespace pb = dpcnn::v1;

const char* state_name(pb::JobState s) {
  const std::string& n = pb::JobState_Name(s);
  return n.size() > 10 ? n.c_str() + 10 : n.c_str();  // drop "JOB_STATE_"
}

std::string duration(double s) {
  char b[64];
  if (s < 60)
    std::snprintf(b, sizeof b, "%.0fs", s);
  else if (s < 3600)
    std::snprintf(b, sizeof b, "%dm%02ds", int(s) / 60, int(s) % 60);
  else
    std::snprintf(b, sizeof b, "%dh%02dm", int(s) / 3600, int(s) / 60 % 60);
  return b;
}

__attribute__((format(printf, 2, 3))) void append(std::string& out, const char* fmt, ...) {
  char b[4096];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(b, sizeof b, fmt, ap);
  va_end(ap);
  out += b;
}

}  // namespace

std::string status_line(const pb::JobStatus& s) {
  std::string out;
  append(out, "%s epoch %d/%d step %lld/%lld loss %.4f acc %.4f %.0f img/s ETA %s restarts %d",
         state_name(s.state()), s.epoch(), s.epochs(), static_cast<long long>(s.step()),
         static_cast<long long>(s.total_steps()), s.loss(), s.accuracy(), s.images_per_sec(),
         duration(s.eta_seconds()).c_str(), s.restarts());
  return out;
}

std::string status_text(const pb::JobStatus& s) {
  using google::protobuf::util::TimeUtil;
  std::string out;
  append(out, "run         %s (%s, %s)\n", s.run_id().c_str(), s.config_name().c_str(),
         s.config_path().c_str());
  if (!s.run_dir().empty()) append(out, "directory   %s\n", s.run_dir().c_str());
  append(out, "state       %s, attempt %d, restarts %d/%d\n", state_name(s.state()), s.attempt(),
         s.restarts(), s.max_restarts());
  std::string hosts;
  for (const auto& h : s.hosts()) hosts += (hosts.empty() ? "" : ", ") + h;
  append(out, "ranks       %d%s%s\n", s.ranks(), hosts.empty() ? "" : " on ", hosts.c_str());
  if (s.elastic()) {
    std::string live, lost;
    for (const auto& h : s.live_hosts()) live += (live.empty() ? "" : ", ") + h;
    for (const auto& h : s.lost_hosts()) lost += (lost.empty() ? "" : ", ") + h;
    append(out, "elastic     hosts %s; left out %s; min_ranks %d\n", live.c_str(),
           lost.empty() ? "none" : lost.c_str(), s.min_ranks());
    for (const auto& c : s.host_changes())
      out += "host        " + c.host() + (c.lost() ? " left out" : " taken back") + " at step " +
             std::to_string(c.step()) + " (" + c.reason() + "), then " +
             std::to_string(c.ranks_after()) + " rank(s)\n";
  }
  const double pct = s.total_steps() > 0 ? 100.0 * s.step() / s.total_steps() : 0;
  append(out, "progress    epoch %d/%d, step %lld/%lld (%.1f%%), loss %.4f, accuracy %.4f\n",
         s.epoch(), s.epochs(), static_cast<long long>(s.step()),
         static_cast<long long>(s.total_steps()), pct, s.loss(), s.accuracy());
  if (s.resumed_from_step() > 0)
    append(out, "resumed     from step %lld\n", static_cast<long long>(s.resumed_from_step()));
  append(out, "speed       %.0f images/s, ETA %s\n", s.images_per_sec(),
         duration(s.eta_seconds()).c_str());
  if (!s.last_checkpoint().empty())
    append(out, "checkpoint  %s (step %lld)\n", s.last_checkpoint().c_str(),
           static_cast<long long>(s.last_checkpoint_step()));
  for (const auto& e : s.history()) {
    append(out, "epoch %-5d loss %.4f accuracy %.4f", e.epoch(), e.loss(), e.accuracy());
    if (e.val_loss() >= 0)
      append(out, " val_loss %.4f val_accuracy %.4f", e.val_loss(), e.val_accuracy());
    append(out, " (%.0f img/s)\n", e.images_per_sec());
  }
  if (s.has_result())
    append(out, "result      test_loss %.4f test_acc %.4f (%lld samples)\n", s.test_loss(),
           s.test_accuracy(), static_cast<long long>(s.test_count()));
  const auto started = s.start_time();
  const double ago = double(TimeUtil::TimestampToMilliseconds(TimeUtil::GetCurrentTime()) -
                            TimeUtil::TimestampToMilliseconds(started)) /
                     1000;
  append(out, "started     %s (%s ago)\n", TimeUtil::ToString(started).c_str(),
         duration(ago).c_str());
  // Whole, however long (a worker's error line can be).
  if (!s.message().empty()) out += "message     " + s.message() + "\n";
  if (!s.error().empty()) out += "error       " + s.error() + "\n";
  return out;
}

std::string status_json(const pb::JobStatus& s, bool pretty) {
  google::protobuf::util::JsonPrintOptions o;
  o.add_whitespace = pretty;
  o.always_print_primitive_fields = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(s, &out, o);
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace dpcnn::launcher
