#include "launcher/elastic.h"

#include <unistd.h>

#include <algorithm>

#include "launcher/files.h"

namespace dpcnn::launcher {

namespace pb = dpcnn::v1;
using Clock = std::chrono::steady_clock;

namespace {

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out.empty() ? "none" : out;
}

bool ready(const std::future<std::vector<std::string>>& f) {
  return f.valid() && f.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
}

}  // namespace

Elastic::Elastic(ElasticOptions options, StatusService& service, Console& console)
    : opt_(std::move(options)), service_(service), console_(console), pool_(opt_.hosts) {
  service_.set_hosts(pool_.live_hosts(), pool_.lost_hosts(), opt_.min_ranks);
}

Elastic::~Elastic() {
  if (probing_.valid()) probing_.wait();  // at most one probe's timeout
}

std::string Elastic::probe(const std::string& host) const {
  return probe_host(host, opt_.probe_port, opt_.host_timeout);
}

std::string Elastic::prepare_attempt(int& np) {
  write_file_checked(opt_.hostfile_out, pool_.hostfile_text());
  np = pool_.live_ranks();
  service_.set_hosts(pool_.live_hosts(), pool_.lost_hosts(), opt_.min_ranks);
  return opt_.hostfile_out;
}

void Elastic::record(const std::vector<HostEvent>& events) {
  for (const auto& e : events) {
    pb::HostChange c;
    c.set_host(e.host);
    c.set_lost(e.lost);
    c.set_reason(e.reason);
    c.set_ranks_after(pool_.live_ranks());
    service_.add_host_change(c);
    console_.say("elastic: host " + e.host + (e.lost ? " left out (" : " taken back (") + e.reason +
                 "); next attempt: " + std::to_string(pool_.live_ranks()) + " rank(s) on " +
                 join(pool_.live_hosts()) + ", global batch " + std::to_string(opt_.batch_size) +
                 " unchanged");
  }
  service_.set_hosts(pool_.live_hosts(), pool_.lost_hosts(), opt_.min_ranks);
}

std::string Elastic::check_start(const std::function<bool()>& interrupted) {
  record(pool_.after_failure({}, [this](const std::string& h) { return probe(h); }));
  // No host at all, the launcher's own included: more likely the probe's
  // port is filtered everywhere (no sshd, another rsh agent) than a cluster
  // that is all down.
  if (pool_.live_ranks() == 0)
    console_.say("elastic: no host answers on TCP port " + std::to_string(opt_.probe_port) +
                 ": if a firewall drops that port (hosts reached without ssh, or ssh on "
                 "another port), set launcher.probe_port to one they let through (open or "
                 "closed: a refusal counts as an answer)");
  return ensure_min_ranks(interrupted);
}

// Below min_ranks: probe the hosts that may come back, once a second, until
// enough answer or wait_for_hosts is over.
std::string Elastic::ensure_min_ranks(const std::function<bool()>& interrupted) {
  if (pool_.live_ranks() >= opt_.min_ranks) return "";
  const std::string short_of = std::to_string(pool_.live_ranks()) +
                               " rank(s) on the hosts that answer (" + join(pool_.live_hosts()) +
                               "), launcher.min_ranks is " + std::to_string(opt_.min_ranks);
  if (!pool_.any_retryable()) return short_of + " and no lost host can come back";
  const std::string waiting = "elastic: " + short_of + ": waiting up to " +
                              std::to_string(opt_.wait_for_hosts.count()) + " s for " +
                              join(pool_.retryable_lost()) + " to answer";
  console_.say(waiting);
  service_.set_state(service_.snapshot().state(), waiting);
  const auto until = Clock::now() + opt_.wait_for_hosts;
  while (Clock::now() < until) {
    if (interrupted()) return "interrupted while waiting for hosts";
    const std::vector<std::string> lost = pool_.retryable_lost();
    const std::vector<std::string> answers =
        probe_all(lost, [this](const std::string& h) { return probe(h); });
    std::vector<std::string> back;
    for (size_t i = 0; i < lost.size(); ++i)
      if (answers[i].empty()) back.push_back(lost[i]);
    record(pool_.take_back(back));
    if (pool_.live_ranks() >= opt_.min_ranks) return "";
    usleep(1000000);
  }
  return short_of + ", and no host came back within " +
         std::to_string(opt_.wait_for_hosts.count()) + " s";
}

void Elastic::tick(const pb::JobStatus& s) {
  if (!rejoining_.empty()) {
    // The host is taken back at a checkpoint boundary: the first checkpoint
    // written after it answered; the workers end right after it (their stop
    // writes one more, at the next step, and loses nothing).
    if (!restart_asked_ && s.last_checkpoint_step() > rejoin_after_step_) {
      restart_asked_ = true;
      const std::string why = "taking back " + join(rejoining_) + " after the checkpoint of step " +
                              std::to_string(s.last_checkpoint_step());
      console_.say("elastic: " + why + ": the workers end and restart");
      service_.request_restart(why);
    }
    return;
  }
  if (ready(probing_)) {
    const std::vector<std::string> answers = probing_.get();
    const std::vector<std::string> lost = pool_.retryable_lost();  // a restart may have taken it
    for (size_t i = 0; i < probing_hosts_.size(); ++i)
      if (answers[i].empty() &&
          std::find(lost.begin(), lost.end(), probing_hosts_[i]) != lost.end())
        rejoining_.push_back(probing_hosts_[i]);
    if (!rejoining_.empty()) {
      rejoin_after_step_ = s.last_checkpoint_step();
      restart_asked_ = false;
      console_.say("elastic: " + join(rejoining_) +
                   " answers again: taking it back after the next checkpoint (the newest is of "
                   "step " +
                   std::to_string(rejoin_after_step_) + ")");
    }
    return;
  }
  if (probing_.valid() || Clock::now() < next_probe_ || !pool_.any_retryable()) return;
  next_probe_ = Clock::now() + opt_.probe_every;
  probing_hosts_ = pool_.retryable_lost();
  probing_ = std::async(std::launch::async, [this, hosts = probing_hosts_] {
    return probe_all(hosts, [this](const std::string& h) { return probe(h); });
  });
}

void Elastic::take_back() {
  record(pool_.take_back(rejoining_));
  rejoining_.clear();
  restart_asked_ = false;
}

std::string Elastic::after_failure(const std::vector<std::string>& lines,
                                   const std::function<bool()>& interrupted) {
  // Hosts that answered while the failed attempt ran join the restart (a
  // restart starts from a checkpoint anyway); the probe below re-checks them.
  take_back();
  record(pool_.after_failure(lines, [this](const std::string& h) { return probe(h); }));
  return ensure_min_ranks(interrupted);
}

}  // namespace dpcnn::launcher
