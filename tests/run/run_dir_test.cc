// Run directories: versions never collide or get reused, and the run lock is a
// real flock (held across processes, released by a killed holder).
#include "run/run_dir.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "core/error.h"

namespace fs = std::filesystem;
using namespace dpcnn;

namespace {

std::string scratch(const std::string& name) {
  const fs::path d =
      fs::temp_directory_path() / ("dpcnn-run-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

}  // namespace

TEST(RunDir, VersionsCountUpAndLatestFollows) {
  const std::string exp = scratch("versions") + "/mnist";
  EXPECT_EQ(newest_run(exp), "");  // the experiment does not exist yet
  const std::string v0 = create_run(exp);
  EXPECT_EQ(v0, exp + "/version_0");
  std::ofstream(v0 + "/metrics.jsonl") << "{}\n";
  const std::string v1 = create_run(exp);
  EXPECT_EQ(v1, exp + "/version_1");
  EXPECT_EQ(newest_run(exp), v1);
  EXPECT_EQ(fs::read_symlink(exp + "/latest").string(), "version_1");
  EXPECT_TRUE(fs::exists(v0 + "/metrics.jsonl"));  // the earlier run is untouched
  // Other names and files are not versions; numbers compare as numbers.
  fs::create_directories(exp + "/version_x");
  fs::create_directories(exp + "/version_10");
  std::ofstream(exp + "/version_20") << "a file";
  EXPECT_EQ(newest_run(exp), exp + "/version_10");
  EXPECT_EQ(create_run(exp), exp + "/version_11");
}

TEST(RunDir, ConcurrentCreatorsGetDistinctVersions) {
  const std::string exp = scratch("concurrent") + "/e";
  fs::create_directories(exp);
  constexpr int kProcs = 8;
  std::vector<pid_t> kids;
  for (int i = 0; i < kProcs; ++i) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      try {
        create_run(exp);
        ::_exit(0);
      } catch (...) {
        ::_exit(1);
      }
    }
    kids.push_back(pid);
  }
  for (pid_t pid : kids) {
    int st = 0;
    ::waitpid(pid, &st, 0);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  }
  std::set<std::string> versions;
  for (const auto& e : fs::directory_iterator(exp))
    if (e.is_directory() && !e.is_symlink()) versions.insert(e.path().filename());
  EXPECT_EQ(versions.size(), static_cast<size_t>(kProcs));
  EXPECT_EQ(newest_run(exp), exp + "/version_" + std::to_string(kProcs - 1));
  // Whatever order the creators renamed their links in, `latest` names the newest.
  EXPECT_EQ(fs::read_symlink(exp + "/latest").string(), "version_" + std::to_string(kProcs - 1));
}

TEST(RunDir, RunOfFindsTheVersionAboveAPath) {
  const std::string exp = scratch("runof") + "/e";
  const std::string v = create_run(exp);
  fs::create_directories(v + "/checkpoints");
  std::ofstream(v + "/checkpoints/ckpt-0000000010.pb") << "x";
  EXPECT_EQ(run_of(v + "/checkpoints/ckpt-0000000010.pb"), fs::canonical(v).string());
  EXPECT_EQ(run_of(v + "/checkpoints"), fs::canonical(v).string());
  EXPECT_EQ(run_of(exp + "/latest/checkpoints"), fs::canonical(v).string());
  EXPECT_EQ(run_of(exp), "");
}

TEST(RunLock, SecondOwnerIsToldWhoHoldsIt) {
  const std::string dir = scratch("lock");
  RunLock a = RunLock::acquire(dir, "dpcnn-train --config a.yaml");
  EXPECT_TRUE(a.held());
  // flock is per open file: a second acquire in this process conflicts too, as
  // another process would.
  try {
    RunLock::acquire(dir, "second");
    FAIL() << "a held lock was acquired twice";
  } catch (const BusyError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("pid " + std::to_string(::getpid())), std::string::npos) << msg;
    EXPECT_NE(msg.find("dpcnn-train --config a.yaml"), std::string::npos) << msg;
    EXPECT_EQ(e.exit_code(), exit_code::kBusy);
  }
  a = RunLock();  // released
  EXPECT_TRUE(RunLock::acquire(dir, "third").held());
}

TEST(RunLock, AKilledHolderLeavesNoLock) {
  const std::string dir = scratch("killed");
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    RunLock l = RunLock::acquire(dir, "child");
    (void)!::write(ready[1], "x", 1);
    ::pause();
    ::_exit(0);
  }
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  EXPECT_THROW(RunLock::acquire(dir, "parent"), BusyError);
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  EXPECT_TRUE(fs::exists(dir + "/run.lock"));           // the file stays behind...
  EXPECT_TRUE(RunLock::acquire(dir, "parent").held());  // ...and is no lock
  EXPECT_NE(RunLock::holder(dir).find("parent"), std::string::npos);
}
