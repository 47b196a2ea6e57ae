// Helpers for tests that run the real binaries: a shell command with its
// output, exit status and duration; whole files as text or floats; the
// equivalence metric for parameter vectors.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace dpcnn::testing {

struct Result {
  int status = -1;     // exit code; 128 when killed by a signal
  std::string output;  // stdout and stderr
  double seconds = 0;
};

inline Result sh(const std::string& cmd) {
  const auto t0 = std::chrono::steady_clock::now();
  Result r;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

// Exit code of child `pid` (128 + signal when killed), or -1 if it is still
// running after `timeout`. Clears `pid` once it is reaped.
inline int wait_exit(pid_t& pid, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  int st = 0;
  while (std::chrono::steady_clock::now() < until) {
    if (waitpid(pid, &st, WNOHANG) == pid) {
      pid = -1;
      return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return -1;
}

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A raw float32 file (dpcnn-train --save-params).
inline std::vector<float> read_floats(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), {});
  std::vector<float> v(bytes.size() / sizeof(float));
  std::memcpy(v.data(), bytes.data(), v.size() * sizeof(float));
  return v;
}

// max |a - b| / max |a|: the project's equivalence metric across rank counts.
inline double relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double maxdiff = 0, maxabs = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    maxdiff = std::max(maxdiff, std::abs(double(a[i]) - b[i]));
    maxabs = std::max(maxabs, std::abs(double(a[i])));
  }
  return a.size() == b.size() ? maxdiff / maxabs : INFINITY;
}

// A scratch directory for tests that run the real worker, and the run: the
// fixtures of the integration tests derive from it.
class WorkerTest : public ::testing::Test {
 protected:
  explicit WorkerTest(const std::string& name)
      : tmp(std::filesystem::temp_directory_path() / (name + "-" + std::to_string(::getpid()))) {}
  void SetUp() override { std::filesystem::create_directories(tmp); }
  void TearDown() override { std::filesystem::remove_all(tmp); }

  // dpcnn-train --config `config` under scripts/mpirun.sh -np `np` (alone
  // when np is 0), one thread a rank, its runs in the scratch directory,
  // `sets` after --set, then `extra` arguments; `prefix` goes before the
  // command (environment, timeout). Returns the run and, if asked, the
  // parameters it saved (--save-params).
  Result train(int np, const std::string& config, const std::string& sets,
               std::vector<float>* params = nullptr, const std::string& extra = "",
               const std::string& prefix = "") {
    const std::string out = (tmp / ("params-" + std::to_string(counter_++))).string();
    std::string cmd = prefix + " ";
    if (np > 0)
      cmd += std::string(DPCNN_SOURCE_DIR) + "/scripts/mpirun.sh -np " + std::to_string(np) + " ";
    cmd += std::string(DPCNN_BIN_DIR) + "/dpcnn-train --config " + config +
           " --set runs_dir=" + tmp.string() + " distributed.threads_per_rank=1 " + sets +
           " --save-params " + out + " " + extra;
    Result r = sh(cmd);
    if (params) *params = read_floats(out);
    return r;
  }

  const std::filesystem::path tmp;

 private:
  int counter_ = 0;
};

}  // namespace dpcnn::testing
