// Run directories: where one training run keeps its outputs, and who owns it.
//
// <runs_dir>/<name>/ is an experiment; each run of it lives in its own
// <runs_dir>/<name>/version_<N>/ (PyTorch Lightning's convention, N = 0, 1, ...)
// with checkpoints/, metrics.jsonl, curves.svg and, under dpcnn-launch,
// status.addr. <runs_dir>/<name>/latest is a symlink to the newest version.
// Nothing here deletes or moves an existing run: a new run gets a new version,
// a resumed run continues in its own.
//
// A run directory has one writer at a time: RunLock holds an advisory flock on
// <run_dir>/run.lock, so a lock file left behind by a killed process is no lock.
// Used by dpcnn-train (rank 0) and dpcnn-launch; no oneDNN, no MPI.
// Functions are safe to call from any thread; a RunLock belongs to one owner.
#pragma once

#include <string>

namespace dpcnn {

// "version_<N>" directories under an experiment directory: the one with the
// highest N, or "" when there is none (or the directory does not exist).
std::string newest_run(const std::string& experiment_dir);

// version_<N> runs of `experiment_dir` from the highest N down, then the
// layout before versions (the experiment directory itself): the first whose
// checkpoints/ holds a ckpt-*.pb file; "" when none does. What --resume auto
// and --evaluate-only continue or read, in the worker and the launcher alike.
std::string newest_run_with_checkpoint(const std::string& experiment_dir);

// Creates the next version_<N> (one more than the highest, never reusing a
// number even when two processes create at once: mkdir is the arbiter) and
// points <experiment_dir>/latest at it. Returns its path.
std::string create_run(const std::string& experiment_dir);

// The version directory that holds `path` (a checkpoint file, a checkpoints
// directory or a run directory), or "" when it is not inside one.
std::string run_of(const std::string& path);

// Env variable by which dpcnn-launch tells its workers that it holds the lock
// of their run directory (its value: the launcher's PID).
inline constexpr const char* kRunLockHolderEnv = "DPCNN_RUN_LOCK_HOLDER";

class RunLock {
 public:
  RunLock() = default;
  // Takes the lock of `run_dir` (creating run.lock) and records this process's
  // PID and `command` in it. A lock held by another process throws BusyError
  // naming that process's PID and command.
  static RunLock acquire(const std::string& run_dir, const std::string& command);
  // What run.lock says about its holder ("pid 123 dpcnn-launch ..."), or "".
  static std::string holder(const std::string& run_dir);
  RunLock(RunLock&& other) noexcept;
  RunLock& operator=(RunLock&& other) noexcept;
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;
  ~RunLock();  // releases the lock (the file stays: it is no lock by itself)
  bool held() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

}  // namespace dpcnn
