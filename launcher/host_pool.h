// The hosts of an elastic job (launcher.elastic: true): which hostfile entries
// the next attempt runs on, which were left out and why, and who is to blame
// for a failed attempt. The contract users rely on:
//   - the hosts and their slots come from the Open MPI hostfile (--hostfile);
//   - an attempt runs sum(slots of the live hosts) ranks, in hostfile order
//     (mpirun's default by-slot mapping: rank 0 on the first live host);
//   - the global batch (train.batch_size) never changes: each rank's slice of
//     it does (the worker already handles uneven and empty slices);
//   - a host is left out when it does not answer a TCP probe within
//     launcher.host_timeout_s (it is probed again and taken back when it
//     answers), or when its ranks are blamed for two failed attempts in a row
//     (left out for the rest of the job: it answers, so probing cannot tell);
//   - fewer live ranks than launcher.min_ranks: the job does not run.
// Plain data and logic, no threads: the supervisor owns one and calls it from
// its thread; probes are passed in (probe_host below is the real one).
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace dpcnn::launcher {

struct HostSpec {
  std::string name;   // as the hostfile writes it (a name or an address)
  int slots = 1;      // slots=N (1 when absent, as Open MPI counts it)
  std::string extra;  // the rest of the line (max_slots=...), passed on as is
};

// Reads an Open MPI hostfile (`host [slots=N] [max_slots=M]`, '#' comments).
// Throws InputError naming the file and line for anything else, and for a
// hostfile without hosts or naming a host twice.
std::vector<HostSpec> read_hostfile(const std::string& path);

// "" when `host` answers on TCP `port` within `timeout` (a connection, or a
// refusal: something is there to refuse), else why not ("No route to host on
// TCP port 22 (launcher.probe_port)", "no answer on TCP port 22
// (launcher.probe_port) within 5 s", "name does not resolve (...)").
std::string probe_host(const std::string& host, int port, std::chrono::milliseconds timeout);

// One decision about a host, for the log and the status.
struct HostEvent {
  std::string host;
  bool lost = true;  // false: taken back
  std::string reason;
};

class HostPool {
 public:
  // Ranks of a host blamed in this many failed attempts in a row: left out.
  static constexpr int kFailuresToLeaveOut = 2;
  using Probe = std::function<std::string(const std::string& host)>;  // "" = answers

  explicit HostPool(std::vector<HostSpec> hosts);

  int live_ranks() const;
  int total_ranks() const;
  std::vector<std::string> live_hosts() const;
  std::vector<std::string> lost_hosts() const;
  bool any_retryable() const;  // a lost host that probing may bring back
  // The hostfile of the next attempt: the live hosts only, in their order.
  std::string hostfile_text() const;

  // The live host that runs `rank` under by-slot mapping; -1 past the end.
  int host_of_rank(int rank) const;
  // Hosts (indices into the hostfile) named by the output of a failed
  // attempt: "rank N on HOST: ..." (the worker's own line), "mpirun noticed
  // that process rank N ... on node HOST" and "Remote daemon: ... on node
  // HOST". A HOST that is a hostfile entry is taken as is; otherwise (a
  // hostname where the hostfile has addresses) the rank says which.
  std::vector<int> blame(const std::vector<std::string>& lines) const;

  // After a failed attempt: probes every live host (all at once); those that
  // do not answer are lost. If all answer, the hosts blamed by `lines` count
  // a failure, and one at kFailuresToLeaveOut is lost. Returns the changes.
  std::vector<HostEvent> after_failure(const std::vector<std::string>& lines, const Probe& probe);
  // The lost hosts that may come back (to probe; they stay lost until
  // take_back).
  std::vector<std::string> retryable_lost() const;
  // Marks `hosts` live again.
  std::vector<HostEvent> take_back(const std::vector<std::string>& hosts);

 private:
  struct Host {
    HostSpec spec;
    bool live = true;
    bool retryable = true;  // lost for not answering: probe it again
    int failures = 0;       // failed attempts in a row blamed on it
  };
  int index_of(const std::string& name) const;
  std::vector<Host> hosts_;
};

// Runs `probe` on every host of `hosts` at once; the answers, in order.
std::vector<std::string> probe_all(const std::vector<std::string>& hosts,
                                   const HostPool::Probe& probe);

}  // namespace dpcnn::launcher
