#include "launcher/supervisor.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <sstream>
#include <stdexcept>

#include "checkpoint/checkpoint.h"
#include "core/exit_codes.h"
#include "launcher/checkpoint_check.h"
#include "launcher/status_text.h"

namespace dpcnn::launcher {

namespace pb = dpcnn::v1;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string describe_wait_status(int st) {
  if (WIFEXITED(st)) return "exited with status " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st)) return std::string("killed by ") + strsignal(WTERMSIG(st));
  return "ended (wait status " + std::to_string(st) + ")";
}

// "mpirun" of "/usr/bin/mpirun".
std::string fs_name(const std::string& path) { return std::filesystem::path(path).filename(); }

// mpirun ends a failed job with a framed explanation; the worker's own line
// ("dpcnn-train: ..." or "rank N on HOST: ...") is the one a user needs.
bool is_worker_error(const std::string& l) {
  return l.rfind("dpcnn-train: ", 0) == 0 ||
         (l.rfind("rank ", 0) == 0 && l.find(" on ") != std::string::npos) ||
         l.rfind("mpirun noticed that process", 0) == 0;
}

// Reads the group's two pipes until both close (or `stop` is set and nothing
// has come for a while), line by line into the console.
class OutputPump {
 public:
  OutputPump(int out, int err, Console& console) : console_(console) {
    thread_ = std::thread([this, out, err] { loop(out, err); });
  }
  ~OutputPump() { finish(); }
  // Waits for the pipes to drain; gives up after ~2 s (a process that escaped
  // the group could hold them open).
  void finish() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::string worker_error() {
    std::lock_guard lock(mu_);
    return !error_.empty() ? error_ : last_err_;
  }
  std::vector<std::string> error_lines() {
    std::lock_guard lock(mu_);
    return lines_;
  }

 private:
  void loop(int out, int err) {
    pollfd fds[2] = {{out, POLLIN, 0}, {err, POLLIN, 0}};
    std::string buf[2];
    int open_fds = 2;
    auto quiet_since = Clock::now();
    while (open_fds > 0) {
      const int n = poll(fds, 2, 100);
      if (n < 0 && errno != EINTR) break;
      if (n <= 0) {
        if (stop_ && seconds_since(quiet_since) > 2) break;
        continue;
      }
      quiet_since = Clock::now();
      for (int i = 0; i < 2; ++i) {
        if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        char chunk[4096];
        const ssize_t r = read(fds[i].fd, chunk, sizeof chunk);
        if (r <= 0) {
          if (r < 0 && errno == EINTR) continue;
          fds[i].fd = -1;
          --open_fds;
          continue;
        }
        buf[i].append(chunk, static_cast<size_t>(r));
        size_t nl;
        while ((nl = buf[i].find('\n')) != std::string::npos) {
          emit(i, buf[i].substr(0, nl));
          buf[i].erase(0, nl + 1);
        }
      }
    }
    for (int i = 0; i < 2; ++i)
      if (!buf[i].empty()) emit(i, buf[i]);
  }

  void emit(int which, std::string l) {
    if (!l.empty() && l.back() == '\r') l.pop_back();
    console_.line(which == 0 ? stdout : stderr, l);
    if (which == 1 && !l.empty() && l.find_first_not_of("-* ") != std::string::npos) {
      std::lock_guard lock(mu_);
      if (lines_.size() < 400) lines_.push_back(l);
      if (is_worker_error(l))
        error_ = l;
      else if (last_err_.empty())
        last_err_ = l;  // mpirun's own first complaint, when no worker spoke
    }
  }

  Console& console_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::string error_, last_err_;
  std::vector<std::string> lines_;  // stderr, the first few hundred lines
  std::thread thread_;
};

}  // namespace

// ---- Supervisor ----

std::string find_executable(const std::string& name) {
  if (name.find('/') != std::string::npos) return access(name.c_str(), X_OK) == 0 ? name : "";
  const char* path = std::getenv("PATH");
  std::stringstream ss(path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    const std::string p = (dir.empty() ? "." : dir) + "/" + name;
    struct stat sb;
    if (stat(p.c_str(), &sb) == 0 && S_ISREG(sb.st_mode) && access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

std::vector<std::string> mpirun_command(const LaunchOptions& o, const std::string& resume) {
  std::vector<std::string> a;
  if (o.srun) {
    // Slurm's PMIx starts the ranks (as cluster/slurm/dpcnn.sbatch's srun
    // line); one rank failing ends the step, as under mpirun, so the others
    // do not wait in a collective until the stall timeout.
    a = {o.mpirun, "--mpi=pmix", "--kill-on-bad-exit=1"};
    a.insert(a.end(), o.mpirun_args.begin(), o.mpirun_args.end());
    a.insert(a.end(), {"-n", std::to_string(o.np)});
  } else {
    // The flags of scripts/mpirun.sh: Open MPI refuses root without
    // --allow-run-as-root, and more ranks than cores need --oversubscribe.
    a = {o.mpirun, "--oversubscribe"};
    if (geteuid() == 0) a.push_back("--allow-run-as-root");
    if (!o.hostfile.empty()) a.insert(a.end(), {"--hostfile", o.hostfile});
    a.insert(a.end(), o.mpirun_args.begin(), o.mpirun_args.end());
    a.insert(a.end(), {"-np", std::to_string(o.np)});
  }
  a.insert(a.end(), {o.train_bin, "--config", o.config_path});
  for (const auto& s : o.sets) a.insert(a.end(), {"--set", s});
  a.insert(a.end(), {"--report-to", o.report_to, "--run-id", o.run_id});
  if (!o.run_dir.empty()) a.insert(a.end(), {"--run-dir", o.run_dir});
  if (!resume.empty()) a.insert(a.end(), {"--resume", resume});
  return a;
}

Supervisor::Supervisor(LaunchOptions options, StatusService& service, Console& console)
    : opt_(std::move(options)), service_(service), console_(console) {
  if (opt_.elastic) elastic_ = std::make_unique<Elastic>(*opt_.elastic, service_, console_);
}

void Supervisor::on_signal(int) { signals_.fetch_add(1); }

void Supervisor::show(const pb::JobStatus& s, bool started, pb::JobStatus& shown) {
  // Once per attempt, from rank 0's start report: its first report may be a
  // bare heartbeat that knows no ranks or steps yet.
  if (!start_said_ && started && s.ranks() > 0) {
    start_said_ = true;
    console_.say("rank 0 reporting: " + std::to_string(s.ranks()) + " rank(s), " +
                 std::to_string(s.total_steps()) + " steps" +
                 (s.resumed_from_step() > 0
                      ? " (from step " + std::to_string(s.resumed_from_step()) + ")"
                      : ""));
  }
  // A step beyond where the workers resumed: their start report alone (which
  // moves the step to the checkpoint's) is not training yet.
  if (s.step() > s.resumed_from_step() && s.step() != shown.step()) {
    if (!first_step_seen_) {
      first_step_seen_ = true;
      char b[128];
      std::snprintf(b, sizeof b, "first step %.1f s after start", seconds_since(t0_));
      console_.say(b);
    }
    if (failed_at_) {
      char b[128];
      std::snprintf(b, sizeof b, "training again (step %lld) %.1f s after the failure",
                    static_cast<long long>(s.step()), seconds_since(*failed_at_));
      console_.say(b);
      failed_at_.reset();
    }
  }
  if (console_.tty() && s.total_steps() > 0) console_.live("launcher: " + status_line(s));
  shown = s;
}

void Supervisor::show_now(pb::JobStatus& shown) {
  const bool started = service_.health().started;  // before the snapshot: it then has the start
  show(service_.snapshot(), started, shown);
}

Supervisor::Attempt Supervisor::run_attempt(int attempt, const std::string& resume) {
  service_.begin_attempt(attempt);
  LaunchOptions o = opt_;
  if (elastic_) o.hostfile = elastic_->prepare_attempt(o.np);
  const auto argv = mpirun_command(o, resume);
  std::string cmd;
  for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
  console_.say("attempt " + std::to_string(attempt) + ": " + cmd);
  std::vector<std::string> env = opt_.env;
  env.push_back("DPCNN_RUN_TOKEN=" + opt_.token);
  if (!opt_.tls_ca.empty()) env.push_back("DPCNN_TLS_CA=" + opt_.tls_ca);
  ProcessGroup group(argv, env);
  OutputPump pump(group.stdout_fd(), group.stderr_fd(), console_);
  Attempt a;
  pb::JobStatus shown = service_.snapshot();
  start_said_ = false;
  std::optional<Clock::time_point> stop_deadline, final_report_at;
  auto last_live = Clock::now();
  for (;;) {
    if (auto st = group.exited()) {
      a.status = *st;
      break;
    }
    const int sigs = signals_.load();
    if (sigs >= 2) {
      a.killed = true;
      a.stalled = "second signal: killed at once";
      group.terminate(milliseconds(0));
      break;
    }
    if (sigs == 1) service_.request_stop("signal to the launcher");
    const AttemptHealth h = service_.health();
    if (h.stop_requested && !stop_deadline) {
      // Workers that never reported cannot hear STOP and have nothing to save.
      stop_deadline =
          Clock::now() + (h.reported ? std::chrono::seconds(std::max(30, opt_.stall_timeout_s))
                                     : std::chrono::seconds(0));
      console_.say(h.reported
                       ? "stopping (" + h.stop_reason + "): workers checkpoint and end"
                       : "stopping (" + h.stop_reason + ") before the first report: killing");
    }
    // The stop's final checkpoint is written and reported: the workers have
    // nothing left to save. The starter should end on its own within a
    // moment; when it got the signal too (scancel signals every process of
    // the job), Open MPI's mpirun and orted instead sleep
    // odls_base_sigkill_timeout twice before they look again, and would hold
    // the job that long. A few seconds, then it is ended.
    if (h.stop_requested && h.finished && h.finish_stopped) {
      if (!final_report_at) final_report_at = Clock::now();
      if (Clock::now() - *final_report_at >= opt_.linger_after_stop) {
        console_.say(fs_name(opt_.mpirun) + " still running " +
                     std::to_string(opt_.linger_after_stop.count() / 1000) +
                     " s after the workers' final checkpoint: ending it");
        a.ended_after_final_checkpoint = true;
        group.terminate(opt_.kill_grace);
        break;
      }
    }
    if (stop_deadline && Clock::now() >= *stop_deadline) {
      a.killed = true;
      a.stalled = "did not stop in time";
      group.terminate(opt_.kill_grace);
      break;
    }
    if (!h.finished && seconds_since(h.last_progress) > opt_.stall_timeout_s) {
      a.killed = true;
      a.stalled = "no progress for " + std::to_string(opt_.stall_timeout_s) + " s";
      group.terminate(opt_.kill_grace);
      break;
    }
    if (Clock::now() - last_live >= milliseconds(250)) {
      if (elastic_) elastic_->tick(service_.snapshot());
      show_now(shown);
      last_live = Clock::now();
    }
    usleep(50000);
  }
  // Every exit path: nothing of this attempt survives it.
  const int st = group.terminate(opt_.kill_grace);
  if (!a.killed) a.status = st;
  pump.finish();
  show_now(shown);
  console_.clear_live();
  a.worker_error = pump.worker_error();
  a.error_lines = pump.error_lines();
  return a;
}

// After a stop: exit_code::kOk only when the checkpoint of the step the job reached reads
// back cleanly from the run directory. The workers' exit status alone cannot
// say so: a stop whose checkpoint failed (a full disk) ends them too.
int Supervisor::stopped(bool workers_ok, const std::string& how) {
  const pb::JobStatus s = service_.snapshot();
  const StopCheck check = verify_checkpoint_at(opt_.run_dir, s.step());
  if (check.ok) {
    service_.set_state(pb::JOB_STATE_FINISHED,
                       how + " at step " + std::to_string(s.step()) + ": " + check.path);
    console_.say(how + " at step " + std::to_string(s.step()) + ": checkpoint " + check.path +
                 " verified");
    return exit_code::kOk;
  }
  const std::string why = "no checkpoint of step " + std::to_string(s.step()) + " (" +
                          check.problem + (workers_ok ? "" : "; the workers failed") +
                          "); the newest is " + newest_good_checkpoint(opt_.run_dir);
  service_.set_state(pb::JOB_STATE_FAILED, how + " without a checkpoint", why);
  console_.say(how + " without a checkpoint: " + why);
  return exit_code::kStoppedNoCheckpoint;
}

// The worker's --resume for the next attempt: the first continues what the
// user asked for; a restart continues the run's own newest checkpoint, or the
// user's --resume PATH while this run has none of its own yet.
static std::string next_resume(const LaunchOptions& o, int attempt) {
  if (attempt == 1) return o.resume;
  const bool own = !CheckpointDir(o.run_dir + "/checkpoints").list().empty();
  return own || o.resume.empty() ? "auto" : o.resume;
}

int Supervisor::run() {
  const auto interrupted = [this] { return signals_.load() > 0; };
  if (elastic_) {
    if (const std::string why = elastic_->check_start(interrupted); !why.empty()) {
      service_.set_state(pb::JOB_STATE_FAILED, "not started (launcher.elastic)", why);
      console_.say("not starting: " + why);
      return exit_code::kFailure;
    }
  }
  for (int attempt = 1;; ++attempt) {
    const Attempt a = run_attempt(attempt, next_resume(opt_, attempt));
    const AttemptHealth h = service_.health();
    const bool ok = (a.stalled.empty() && WIFEXITED(a.status) && WEXITSTATUS(a.status) == 0) ||
                    a.ended_after_final_checkpoint;
    if (signals_.load() >= 2) {
      service_.set_state(pb::JOB_STATE_FAILED, "killed by a second signal",
                         "killed without a final checkpoint");
      console_.say("killed by a second signal (no final checkpoint)");
      return exit_code::kInterrupted;
    }
    if (h.stop_requested && !(ok && h.finished && !h.finish_stopped)) {
      const std::string how =
          ok ? "stopped cleanly"
             : "stopped (" + (a.stalled.empty() ? describe_wait_status(a.status) : a.stalled) + ")";
      return stopped(ok, how);
    }
    if (elastic_ && h.restart_requested && ok && !(h.finished && !h.finish_stopped)) {
      elastic_->take_back();  // a planned restart: not counted against max_restarts
      continue;
    }
    if (ok) {
      service_.set_state(pb::JOB_STATE_FINISHED, "finished");
      console_.say("finished");
      return exit_code::kOk;
    }
    const std::string why = !a.stalled.empty()
                                ? a.stalled
                                : fs_name(opt_.mpirun) + " " + describe_wait_status(a.status);
    const std::string detail = why + (a.worker_error.empty() ? "" : ": " + a.worker_error);
    if (!h.ever_stepped) {
      service_.set_state(pb::JOB_STATE_FAILED, "failed before the first step (not retried)",
                         detail);
      console_.say("failed before the first step, not retrying: " + detail);
      // The workers' own verdict on their input (config, data, checkpoint).
      return a.stalled.empty() && WIFEXITED(a.status) &&
                     WEXITSTATUS(a.status) == exit_code::kBadInput
                 ? exit_code::kBadInput
                 : exit_code::kFailure;
    }
    const int restarts = service_.snapshot().restarts();
    if (restarts >= opt_.max_restarts) {
      service_.set_state(pb::JOB_STATE_FAILED,
                         "gave up after " + std::to_string(restarts) + " restart(s)", detail);
      console_.say("giving up after " + std::to_string(restarts) + " restart(s): " + detail);
      return exit_code::kGaveUp;
    }
    failed_at_ = Clock::now();
    service_.count_restart(detail);
    console_.say("job failed (" + detail + "); restart " + std::to_string(restarts + 1) + "/" +
                 std::to_string(opt_.max_restarts) + " from the last checkpoint");
    if (elastic_) {
      if (const std::string why = elastic_->after_failure(a.error_lines, interrupted);
          !why.empty()) {
        if (signals_.load() > 0) {
          service_.request_stop("signal to the launcher");
          return stopped(false, "stopped while restarting");
        }
        service_.set_state(pb::JOB_STATE_FAILED, "gave up (launcher.elastic)", why);
        console_.say("giving up: " + why);
        return exit_code::kGaveUp;
      }
    }
    const auto until = Clock::now() + opt_.restart_delay;
    while (Clock::now() < until && signals_.load() == 0) usleep(20000);
    if (signals_.load() > 0) {
      service_.request_stop("signal to the launcher");
      return stopped(false, "stopped while restarting");
    }
  }
}

}  // namespace dpcnn::launcher
