// Supervision of one training job: starts mpirun in its own process group
// (process_group.h), passes the workers' output through, restarts the job
// from its last checkpoint when it fails or stalls, and stops it on request.
//
// Supervisor::run() is called once, from the main thread: PR_SET_PDEATHSIG
// fires when the thread that forked ends, so the forking thread must live as
// long as the launcher. on_signal() may be called from any thread (the
// launcher's signal thread).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "launcher/console.h"
#include "launcher/elastic.h"
#include "launcher/process_group.h"
#include "launcher/status_service.h"

namespace dpcnn::launcher {

struct LaunchOptions {
  // What starts the ranks: mpirun (the default), or srun (--starter srun,
  // inside a Slurm allocation: Slurm starts, signals and accounts each rank).
  std::string mpirun;  // full path of mpirun or srun
  bool srun = false;
  int np = 1;  // --np, else the config's distributed.ranks
  std::string hostfile;
  std::vector<std::string> mpirun_args;  // passed through (e.g. --mca btl_tcp_if_include ...)
  std::string train_bin;                 // full path of dpcnn-train
  std::string config_path;
  std::vector<std::string> sets;
  std::string run_dir;  // absolute; every worker start gets `--run-dir` with it
  // The first attempt's `--resume` ("" none, "auto", or a checkpoint path);
  // restarts continue from the run's own newest checkpoint.
  std::string resume;
  std::vector<std::string> env;  // added to the workers' environment
  std::string report_to, run_id, token;
  std::string tls_ca;  // certificate the workers trust when the service serves TLS
  int max_restarts = 3;
  int stall_timeout_s = 120;
  std::chrono::milliseconds kill_grace{3000};
  std::chrono::milliseconds restart_delay{1000};
  // After a stop's final checkpoint is reported, how long the starter may
  // take to end by itself before it is ended.
  std::chrono::milliseconds linger_after_stop{3000};
  // launcher.elastic: the hosts come from `hostfile` (elastic.h); each
  // attempt runs on the live ones with their slots as ranks (np unused).
  std::optional<ElasticOptions> elastic;
};

// The starter's (mpirun's or srun's) argument vector for one attempt
// (exposed for tests); `resume` is the worker's --resume value ("" for none).
std::vector<std::string> mpirun_command(const LaunchOptions& o, const std::string& resume);

class Supervisor {
 public:
  Supervisor(LaunchOptions options, StatusService& service, Console& console);
  // Runs attempts until the job finishes, is stopped, or fails for good.
  // Returns the launcher's exit code (src/core/exit_codes.h): kOk finished, or
  // stopped with a checkpoint of the stop step that reads back cleanly;
  // kStoppedNoCheckpoint stopped without one; kFailure failed before the first
  // step (kBadInput when the workers said their input is bad); kGaveUp failed
  // after the last restart; 130 killed by a second signal.
  int run();
  // First SIGINT/SIGTERM: stop cleanly (checkpoint, exit 0). Second: kill now.
  void on_signal(int sig);

 private:
  struct Attempt {
    int status = 0;       // mpirun's wait status
    std::string stalled;  // why we killed it ("" = it exited by itself)
    bool killed = false;
    std::string worker_error;
    std::vector<std::string> error_lines;  // mpirun's stderr, for elastic's blame
    // The workers had reported their stop's final checkpoint, and the
    // starter, still running a while later, was ended by us.
    bool ended_after_final_checkpoint = false;
  };
  Attempt run_attempt(int attempt, const std::string& resume);
  int stopped(bool workers_ok, const std::string& how);
  void show(const v1::JobStatus& s, bool started, v1::JobStatus& shown);
  void show_now(v1::JobStatus& shown);

  const LaunchOptions opt_;
  StatusService& service_;
  Console& console_;
  std::atomic<int> signals_{0};
  const std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
  std::optional<std::chrono::steady_clock::time_point> failed_at_;
  bool first_step_seen_ = false;
  bool start_said_ = false;           // this attempt's "rank 0 reporting" line
  std::unique_ptr<Elastic> elastic_;  // null unless launcher.elastic
};

// Finds `name` on $PATH (or returns it if it has a '/'); "" if not found.
std::string find_executable(const std::string& name);

}  // namespace dpcnn::launcher
