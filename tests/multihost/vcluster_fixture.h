// The virtual-cluster fixture of the multihost tests: each test brings up a
// private cluster (cluster/vcluster.sh: network namespaces h1..hK with their
// own addresses, hostnames and cores, joined by a bridge; K = `hosts`, 2
// unless a fixture's constructor says otherwise) named dpt<pid>, and always
// removes it; leftovers of dead test processes are removed at start. Skipped
// when not root or `ip netns add` is not permitted. Run these tests under
// `flock /tmp/dpcnn-netns.lock` when others share the machine.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "../integration/process_testing.h"
#include "../integration/synthetic_data.h"

namespace dpcnn::multihost {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

inline const std::string kSrc = DPCNN_SOURCE_DIR;
inline const std::string kBin = DPCNN_BIN_DIR;

using testing::read_floats;
using testing::relative_difference;
using testing::Result;
using testing::sh;
using testing::slurp;

// A command running in the background, in its own process group, output to a file.
class Background {
 public:
  Background(const std::string& cmd, const fs::path& log) : log_(log) {
    pid_ = fork();
    if (pid_ == 0) {
      setpgid(0, 0);
      execl("/bin/sh", "sh", "-c", ("exec >'" + log.string() + "' 2>&1; exec " + cmd).c_str(),
            nullptr);
      _exit(127);
    }
    setpgid(pid_, pid_);
  }
  ~Background() {
    if (pid_ > 0) {
      kill(-pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  void signal(int sig) {
    if (pid_ > 0) kill(pid_, sig);
  }
  // Exit code, or -1 if still running after `timeout`.
  int wait(std::chrono::milliseconds timeout) { return testing::wait_exit(pid_, timeout); }
  // Waits until the log matches `re`; false after `timeout` or if the command ended.
  bool wait_for_log(const std::string& re, std::chrono::seconds timeout) {
    const std::regex r(re);
    const auto until = Clock::now() + timeout;
    while (Clock::now() < until) {
      if (std::regex_search(log(), r)) return true;
      int st;
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        return std::regex_search(log(), r);
      }
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }
  std::string log() const { return slurp(log_); }

 private:
  fs::path log_;
  pid_t pid_ = -1;
};

// Why this machine cannot host a virtual cluster, or "" when it can.
inline std::string why_no_namespaces() {
  static const std::string reason = [] {
    if (geteuid() != 0) return std::string("needs root to create network namespaces");
    const std::string probe = "dpt" + std::to_string(getpid()) + "-probe";
    const Result r = sh("ip netns add " + probe);
    if (r.status != 0) return "'ip netns add' is not permitted here: " + r.output;
    sh("ip netns delete " + probe);
    return std::string();
  }();
  return reason;
}

// Removes the clusters of test processes that died without tearing down.
inline void remove_stale_clusters() {
  const Result r = sh("ip netns list");
  std::istringstream in(r.output);
  std::string line;
  std::smatch m;
  const std::regex re(R"(^dpt(\d+)-)");
  while (std::getline(in, line)) {
    if (!std::regex_search(line, m, re)) continue;
    const pid_t pid = std::stoi(m[1].str());
    if (pid == getpid() || kill(pid, 0) == 0 || errno != ESRCH) continue;
    sh("DPCNN_VC_NAME=dpt" + m[1].str() + " DPCNN_VC_DIR=/nonexistent " + kSrc +
       "/cluster/vcluster.sh down; ip netns delete dpt" + m[1].str() + "-probe");
    fs::remove_all(fs::temp_directory_path() / ("dpcnn-multihost-test-" + m[1].str()));
  }
}

class MultiHost : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string why = why_no_namespaces();
    if (!why.empty()) GTEST_SKIP() << "virtual cluster unavailable: " << why;
    remove_stale_clusters();
    tmp = fs::temp_directory_path() / ("dpcnn-multihost-test-" + std::to_string(getpid()));
    fs::create_directories(tmp);
    data = testing::synthetic_mnist_dir();
    name = "dpt" + std::to_string(getpid());
    // Every script below (and mpirun's rsh agent) finds this cluster through these.
    setenv("DPCNN_VC_NAME", name.c_str(), 1);
    setenv("DPCNN_VC_DIR", (tmp / "vc").c_str(), 1);
    const Result up = sh(kSrc + "/cluster/vcluster.sh up " + std::to_string(hosts));
    ASSERT_EQ(up.status, 0) << up.output;
    up_ = true;
  }
  void TearDown() override {
    if (!up_) return;
    const Result down = sh(kSrc + "/cluster/vcluster.sh down");
    EXPECT_EQ(down.status, 0) << down.output;
    EXPECT_EQ(sh("ip netns list | grep -c '^" + name + "-'").output, "0\n") << "left behind";
    fs::remove_all(tmp);
  }

  std::string vc_mpirun() const { return kSrc + "/cluster/mpirun-vcluster.sh "; }
  std::string vcluster() const { return kSrc + "/cluster/vcluster.sh "; }
  std::string worker(const std::string& config, const std::string& sets) const {
    return kBin + "/dpcnn-train --config " + config + " --set data.dir=" + data +
           " runs_dir=" + tmp.string() + " " + sets;
  }
  // Trains with `mpirun_prefix` (e.g. the cluster's mpirun and -np 2); returns
  // rank 0's final parameters.
  std::vector<float> train(const std::string& mpirun_prefix, const std::string& sets) {
    const fs::path out = tmp / ("params-" + std::to_string(counter++));
    const Result r =
        sh(mpirun_prefix + " " +
           worker(kSrc + "/configs/mnist-small.yaml", sets + " --save-params " + out.string()));
    EXPECT_EQ(r.status, 0) << r.output;
    return read_floats(out);
  }
  int processes_on(int host) {
    const Result r = sh("ip netns pids " + name + "-h" + std::to_string(host) + " | wc -l");
    return std::atoi(r.output.c_str());
  }

  fs::path tmp;
  std::string data, name;
  int hosts = 2;  // a fixture with more sets it in its constructor
  int counter = 0;
  bool up_ = false;
};

}  // namespace dpcnn::multihost
