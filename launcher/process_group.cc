#include "launcher/process_group.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

extern char** environ;

namespace dpcnn::launcher {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

// The processes whose parent is `parent` (field 4 of /proc/<pid>/stat).
std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& d : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = d.path().filename();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream f(d.path() / "stat");
    std::string stat;
    std::getline(f, stat);
    const auto rp = stat.rfind(')');  // the command name may hold spaces and ')'
    if (rp == std::string::npos) continue;
    char state = 0;
    long ppid = 0;
    if (std::sscanf(stat.c_str() + rp + 1, " %c %ld", &state, &ppid) == 2 && ppid == parent)
      out.push_back(static_cast<pid_t>(std::stol(name)));
  }
  return out;
}

}  // namespace

ProcessGroup::ProcessGroup(const std::vector<std::string>& argv,
                           const std::vector<std::string>& env) {
  // Everything the child needs is built before fork: after fork, in a process
  // with gRPC's threads, only async-signal-safe calls are allowed.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    const std::string kv = *e;
    bool replaced = false;
    for (const auto& add : env)
      if (kv.compare(0, add.find('=') + 1, add, 0, add.find('=') + 1) == 0) replaced = true;
    if (!replaced) env_strings.push_back(kv);
  }
  for (const auto& add : env) env_strings.push_back(add);
  std::vector<char*> cargv, cenv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  for (const auto& e : env_strings) cenv.push_back(const_cast<char*>(e.c_str()));
  cenv.push_back(nullptr);

  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe: ") + strerror(errno));
  if (pipe2(err, O_CLOEXEC) != 0) {
    close(out[0]), close(out[1]);
    throw std::runtime_error(std::string("pipe: ") + strerror(errno));
  }
  const int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    const int e = errno;
    for (int fd : {out[0], out[1], err[0], err[1], devnull}) close(fd);
    throw std::runtime_error(std::string("fork: ") + strerror(e));
  }
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the launcher died before prctl
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);  // exec keeps the mask; the launcher blocks some
    signal(SIGPIPE, SIG_DFL);
    // Its own process group keeps the terminal's Ctrl-C away from the workers
    // (the launcher turns it into a clean stop) and lets one kill() reach them
    // all; stdin from /dev/null because a background group reading the TTY
    // would be stopped.
    dup2(devnull >= 0 ? devnull : 0, 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    execve(cargv[0], cargv.data(), cenv.data());
    const char msg[] = "dpcnn-launch: cannot exec mpirun\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(127);
  }
  setpgid(pid, pid);  // also here: no race with the first kill(-pid)
  close(out[1]);
  close(err[1]);
  if (devnull >= 0) close(devnull);
  pid_ = pid;
  out_ = out[0];
  err_ = err[0];
}

ProcessGroup::~ProcessGroup() {
  terminate(milliseconds(0));
  if (out_ >= 0) close(out_);
  if (err_ >= 0) close(err_);
}

std::optional<int> ProcessGroup::exited() const {
  if (status_) return status_;
  siginfo_t info{};
  if (waitid(P_PID, pid_, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid != pid_)
    return std::nullopt;
  return info.si_code == CLD_EXITED ? W_EXITCODE(info.si_status, 0) : W_EXITCODE(0, info.si_status);
}

int ProcessGroup::terminate(milliseconds grace) {
  if (pid_ <= 0) return 0;
  // Every process group of the job: mpirun's, and each rank's (Open MPI makes
  // every rank a group leader), found as mpirun's children or, once mpirun
  // is dead, as ours. Looked up again on every round: ranks reparent to us
  // the moment mpirun dies.
  std::vector<pid_t> groups = {pid_};
  auto find_groups = [&] {
    for (pid_t parent : {pid_, getpid()})
      for (pid_t c : children_of(parent))
        if (c != pid_ && std::find(groups.begin(), groups.end(), c) == groups.end())
          groups.push_back(c);
  };
  auto signal_all = [&](int sig) {
    find_groups();
    for (pid_t g : groups) kill(getpgid(g) == g ? -g : g, sig);
  };
  auto reap = [&] {
    // As child subreaper the launcher also inherits the members whose parent
    // died; it has no other children to leave alone.
    int st = 0;
    pid_t p;
    while ((p = waitpid(-1, &st, WNOHANG)) > 0)
      if (p == pid_) status_ = st;
  };
  auto anyone_left = [&] {
    find_groups();
    for (pid_t g : groups)
      if (kill(-g, 0) == 0 || kill(g, 0) == 0) return true;
    return false;
  };
  signal_all(SIGTERM);
  const auto deadline = Clock::now() + grace;
  for (;;) {
    reap();
    if (!anyone_left()) break;
    if (Clock::now() >= deadline) {
      signal_all(SIGKILL);
      for (int i = 0; i < 100; ++i) {  // 5 s at most: never hang the launcher
        reap();
        if (!anyone_left()) break;
        signal_all(SIGKILL);  // a rank that was reparented meanwhile
        usleep(50000);
      }
      break;
    }
    usleep(20000);
  }
  if (!status_) {
    int st = 0;
    if (waitpid(pid_, &st, WNOHANG) == pid_) status_ = st;
  }
  return status_.value_or(W_EXITCODE(0, SIGKILL));
}

}  // namespace dpcnn::launcher
