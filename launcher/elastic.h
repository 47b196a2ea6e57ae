// Elastic restarts (launcher.elastic: true): the supervisor's side of the
// host pool (host_pool.h). Before each attempt it writes the hostfile of the
// live hosts and sets the rank count; after a failed attempt it leaves out the
// hosts that do not answer (or whose ranks keep failing) and, below
// launcher.min_ranks, waits for one to come back or gives up; while a job
// runs it probes the hosts left out, and when one answers it waits for the
// next checkpoint and has the workers end there, so that the next attempt
// takes the host back. Every decision is one console line and a HostChange in
// the status.
//
// Owned and called by the supervisor's thread only; probes of lost hosts run
// on a thread of their own and touch nothing but their result.
#pragma once

#include <chrono>
#include <functional>
#include <future>
#include <string>
#include <vector>

#include "launcher/console.h"
#include "launcher/host_pool.h"
#include "launcher/status_service.h"

namespace dpcnn::launcher {

struct ElasticOptions {
  std::vector<HostSpec> hosts;  // the whole hostfile
  int min_ranks = 1;
  std::chrono::milliseconds host_timeout{10000};  // one probe
  int probe_port = 22;                            // launcher.probe_port (ssh's by default)
  std::chrono::milliseconds probe_every{2000};    // lost hosts, while a job runs
  std::chrono::seconds wait_for_hosts{120};       // below min_ranks, before giving up
  int batch_size = 0;                             // global, for the log
  std::string hostfile_out;                       // where each attempt's hostfile goes
};

class Elastic {
 public:
  Elastic(ElasticOptions options, StatusService& service, Console& console);
  ~Elastic();

  // Before an attempt: writes the live hosts' hostfile; returns its path and
  // sets `np` to their slots.
  std::string prepare_attempt(int& np);
  // Leaves out the hosts that do not answer before the first attempt; "" to
  // go on, else why the job cannot run (fewer than min_ranks, none came back).
  std::string check_start(const std::function<bool()>& interrupted);
  // While an attempt runs, every few hundred ms: probes lost hosts, and once
  // one answered and a checkpoint newer than that moment is reported, asks
  // the workers to end (StatusService::request_restart).
  void tick(const v1::JobStatus& status);
  // After an attempt that ended on request_restart: the answering hosts are live.
  void take_back();
  // After a failed attempt (its stderr lines): "" to restart, else why not.
  std::string after_failure(const std::vector<std::string>& lines,
                            const std::function<bool()>& interrupted);

 private:
  void record(const std::vector<HostEvent>& events);
  std::string ensure_min_ranks(const std::function<bool()>& interrupted);
  std::string probe(const std::string& host) const;

  const ElasticOptions opt_;
  StatusService& service_;
  Console& console_;
  HostPool pool_;
  std::future<std::vector<std::string>> probing_;  // answers for probing_hosts_
  std::vector<std::string> probing_hosts_;
  std::chrono::steady_clock::time_point next_probe_{};
  std::vector<std::string> rejoining_;  // answered; taken back at the next checkpoint
  int64_t rejoin_after_step_ = 0;
  bool restart_asked_ = false;
};

}  // namespace dpcnn::launcher
