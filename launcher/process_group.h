// One mpirun and everything it started, as one unit to watch and to end.
// mpirun runs in a process group of its own, but Open MPI puts every rank in
// a process group of its own too, so ending the job means mpirun's group and
// each of its children's; ranks orphaned by a dead mpirun become the
// launcher's children (it is a child subreaper) and are found the same way.
// Owned and used by one thread (the supervisor's); see supervisor.h for why
// that thread must live as long as the launcher.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace dpcnn::launcher {

class ProcessGroup {
 public:
  // Forks; the child makes itself a group leader, asks to be killed when this
  // thread dies, reads /dev/null, writes to two pipes, and execs `argv[0]` (a
  // path) with `env` added to the environment.
  ProcessGroup(const std::vector<std::string>& argv, const std::vector<std::string>& env);
  ~ProcessGroup();  // terminate(0) if still running
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  pid_t pid() const { return pid_; }
  int stdout_fd() const { return out_; }
  int stderr_fd() const { return err_; }
  // The leader's wait status once it has exited, without reaping it, so its
  // pid (the group id) stays reserved until terminate().
  std::optional<int> exited() const;
  // SIGTERM to the whole group, SIGKILL to what is left after `grace`; reaps
  // the leader (and, as child subreaper, orphaned members). Returns the
  // leader's wait status. Idempotent.
  int terminate(std::chrono::milliseconds grace);

 private:
  pid_t pid_ = -1;
  int out_ = -1, err_ = -1;
  std::optional<int> status_;  // set once reaped
};

}  // namespace dpcnn::launcher
