// The fixture of the end-to-end launcher tests: real dpcnn-launch processes
// (mnist-small, the synthetic dataset, a runs directory of the test's own),
// their logs, the run directory each one announces, and a status stub to it.
// Tests run on the gtest main thread; a test may start several launchers.
#pragma once

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "../integration/process_testing.h"
#include "../integration/synthetic_data.h"
#include "dpcnn/v1/status.grpc.pb.h"

namespace dpcnn::testing {

namespace fs = std::filesystem;
namespace pb = dpcnn::v1;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

inline double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// The living dpcnn-train processes whose command line names `marker` (the
// test's own directory).
inline std::vector<pid_t> workers(const std::string& marker) {
  std::vector<pid_t> out;
  for (const auto& d : fs::directory_iterator("/proc")) {
    const std::string name = d.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmd = slurp(d.path() / "cmdline");
    std::replace(cmd.begin(), cmd.end(), '\0', ' ');
    if (cmd.find("dpcnn-train ") != std::string::npos && cmd.find(marker) != std::string::npos &&
        cmd.find("mpirun") == std::string::npos) {
      const std::string stat = slurp(d.path() / "stat");  // zombies still list
      const auto rp = stat.rfind(')');
      if (rp != std::string::npos && stat.size() > rp + 2 && stat[rp + 2] != 'Z')
        out.push_back(std::stoi(name));
    }
  }
  return out;
}

inline int run_sync(const std::string& cmd, std::string* out = nullptr) {
  const Result r = sh(cmd);
  if (out) *out = r.output;
  return r.status;
}

inline int lines(const std::string& s) {
  return static_cast<int>(std::count(s.begin(), s.end(), '\n'));
}

// A child running `cmd` under sh with stdout and stderr to `log`.
// A self-signed certificate for localhost and 127.0.0.1 (openssl), as a
// user's status.tls_cert / tls_key would be; true when both files exist.
inline bool make_self_signed_cert(const fs::path& key, const fs::path& cert) {
  return std::system(("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
                      "-addext subjectAltName=IP:127.0.0.1 -keyout " +
                      key.string() + " -out " + cert.string() + " 2>/dev/null")
                         .c_str()) == 0;
}

inline pid_t spawn(const std::string& cmd, const fs::path& log) {
  const pid_t pid = fork();
  if (pid == 0) {
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), nullptr);
    _exit(127);
  }
  return pid;
}

class Launch : public ::testing::Test {
 protected:
  void SetUp() override {
    tmp = fs::temp_directory_path() /
          ("dpcnn-launch-test-" + std::to_string(getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(tmp);
    data = synthetic_mnist_dir(4096, 203);
    runs = tmp;
    experiment = tmp / "mnist-small";
  }
  void TearDown() override {
    for (pid_t& p : others) stop_child(p);
    stop_child(pid);
    for (pid_t w : workers(tmp.string())) kill(w, SIGKILL);
    if (std::getenv("DPCNN_KEEP_LOGS") || HasFailure())
      for (const auto& e : fs::directory_iterator(tmp))
        if (e.path().extension() == ".log")
          std::printf("%s:\n%s\n", e.path().filename().c_str(), slurp(e.path()).c_str());
    for (const auto& m : mounts) run_sync("umount -l " + m);
    if (!HasFailure()) fs::remove_all(tmp);
  }
  static void stop_child(pid_t& p) {
    if (p > 0) {
      kill(p, SIGKILL);
      waitpid(p, nullptr, 0);
      p = -1;
    }
  }

  // dpcnn-launch on mnist-small (2 ranks, 1 thread each, the synthetic data,
  // runs under `runs`, a free port) with `sets` and `extra` appended.
  std::string launch_command(const std::string& sets, const std::string& extra = "") const {
    return std::string(DPCNN_BIN_DIR) +
           "/dpcnn-launch --config configs/mnist-small.yaml --np 2 --set data.dir=" + data +
           " --set runs_dir=" + runs.string() +
           " --set distributed.threads_per_rank=1 --set status.listen=127.0.0.1:0 " + sets + " " +
           extra;
  }

  // Starts the test's main launcher, output to `log_name`.
  void start(const std::string& sets, const std::string& extra = "",
             const std::string& log_name = "launch.log") {
    log_path = tmp / log_name;
    // Gone before the child starts: connect() must not read an earlier
    // launcher's log of the same name.
    fs::remove(log_path);
    run_dir.clear();
    addr.clear();
    t0 = Clock::now();
    pid = spawn(launch_command(sets, extra), log_path);
  }

  // Exit code of the main launcher, or -1 after `timeout` (then it is killed).
  int wait_exit(std::chrono::seconds timeout = 120s) { return testing::wait_exit(pid, timeout); }

  std::string log() const { return slurp(log_path); }

  // The run directory a launcher's log announces ("launcher: new run DIR" or
  // "launcher: continuing run DIR from ..."); "" until it does.
  static std::string announced_run(const std::string& log) {
    std::smatch m;
    static const std::regex re("launcher: (?:new|continuing) run ([^\\s,]+)");
    return std::regex_search(log, m, re) ? m[1].str() : "";
  }

  // The address in `dir`/status.addr once it is there (whole, with its newline).
  static std::string wait_addr(const fs::path& dir, std::chrono::seconds timeout = 60s) {
    const auto until = Clock::now() + timeout;
    while (Clock::now() < until) {
      const std::string a = slurp(dir / "status.addr");
      if (!a.empty() && a.back() == '\n') return a.substr(0, a.size() - 1);
      std::this_thread::sleep_for(20ms);
    }
    return "";
  }

  // Connects to the main launcher once it has announced its run and written
  // the run's status.addr.
  void connect() {
    const auto until = Clock::now() + 60s;
    while (run_dir.empty() && Clock::now() < until) {
      run_dir = announced_run(log());
      if (run_dir.empty()) std::this_thread::sleep_for(20ms);
    }
    ASSERT_FALSE(run_dir.empty()) << log();
    addr = wait_addr(run_dir);
    ASSERT_FALSE(addr.empty()) << log();
    stub = pb::Status::NewStub(grpc::CreateChannel(addr, grpc::InsecureChannelCredentials()));
  }

  pb::JobStatus get(bool* ok = nullptr) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    pb::JobStatus s;
    const bool good = stub->GetStatus(&ctx, {}, &s).ok();
    if (ok) *ok = good;
    return s;
  }

  template <class P>
  pb::JobStatus wait_for(P pred, std::chrono::seconds timeout = 60s) {
    const auto until = Clock::now() + timeout;
    for (;;) {
      bool ok = false;
      pb::JobStatus s = get(&ok);
      if ((ok && pred(s)) || Clock::now() >= until) return s;
      std::this_thread::sleep_for(20ms);
    }
  }

  grpc::StatusCode stop_with(const std::string& token) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    pb::StopReply reply;
    return stub->Stop(&ctx, {}, &reply).error_code();
  }

  // Mounts a tmpfs of `bytes` at `dir` (unmounted in TearDown); false if this
  // machine does not let us (not root, no mount namespace rights).
  bool mount_tmpfs(const fs::path& dir, size_t bytes) {
    fs::create_directories(dir);
    if (run_sync("mount -t tmpfs -o size=" + std::to_string(bytes) + " tmpfs " + dir.string()) != 0)
      return false;
    mounts.push_back(dir.string());
    return true;
  }

  fs::path tmp, runs, experiment, log_path, run_dir;
  std::string data, addr;
  pid_t pid = -1;
  std::vector<pid_t> others;  // further launchers a test starts (killed in TearDown)
  std::vector<std::string> mounts;
  Clock::time_point t0;
  std::unique_ptr<pb::Status::Stub> stub;
};

}  // namespace dpcnn::testing
