// dpcnn-launch and its runs, end to end with the real binaries: a run
// directory per launch (version_<N>), --resume continuing a stopped job at its
// stop step without touching the earlier files, one owner per run directory
// (the run lock), one job per port, the exit codes of a stop with and without
// its checkpoint, checked writes of status.addr on a full disk, and
// dpcnn-status finding (and waiting for) a launcher through its run directory.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/statvfs.h>

#include <set>

#include "launch_fixture.h"

namespace dpcnn {
namespace {

using namespace testing;

const std::string kStatus = std::string(DPCNN_BIN_DIR) + "/dpcnn-status";

std::set<std::string> files_in(const fs::path& dir) {
  std::set<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) out.insert(e.path().filename().string());
  return out;
}

std::string ckpt_name(int64_t step) {
  char b[32];
  std::snprintf(b, sizeof b, "ckpt-%010lld.pb", static_cast<long long>(step));
  return b;
}

// "stopped at step N" in a launcher's log (the worker's own line); -1 if none.
int64_t stop_step(const std::string& log) {
  std::smatch m;
  return std::regex_search(log, m, std::regex("stopped at step ([0-9]+)")) ? std::stoll(m[1]) : -1;
}

// A TCP port bound and listening on loopback (no SO_REUSEPORT) until closed.
struct TakenPort {
  TakenPort() {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && listen(fd, 1) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
      port = ntohs(a.sin_port);
  }
  ~TakenPort() { close(fd); }
  int fd = -1, port = 0;
};

// A port in use is one line of ours (no gRPC log line), exit 3, and nothing
// created: the port is checked before the run directory exists.
TEST_F(Launch, TakenPortIsOneLineAndExit3) {
  TakenPort taken;
  ASSERT_GT(taken.port, 0);
  start("--set status.listen=127.0.0.1:" + std::to_string(taken.port));
  EXPECT_EQ(wait_exit(), 3) << log();
  const std::string out = log();
  EXPECT_EQ(lines(out), 1) << out;
  EXPECT_NE(out.find("in use"), std::string::npos) << out;
  EXPECT_EQ(out.find("chttp2"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(experiment)) << out;
}

// Two launchers of one config at once: each its own run directory and port,
// both train to the end, neither's reports reach the other.
TEST_F(Launch, TwoLaunchersOfOneConfigGetTheirOwnRunsAndPorts) {
  const std::string sets = "--set train.max_steps=60 --set train.eval=false";
  start(sets);
  others.push_back(spawn(launch_command(sets), tmp / "second.log"));
  connect();
  const std::string first_addr = addr, first_run = run_dir.string();
  std::string second_run;
  const auto until = Clock::now() + 60s;
  while (second_run.empty() && Clock::now() < until) {
    second_run = announced_run(slurp(tmp / "second.log"));
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_FALSE(second_run.empty()) << slurp(tmp / "second.log");
  const std::string second_addr = wait_addr(second_run);
  EXPECT_NE(first_run, second_run);
  EXPECT_EQ(
      std::set<std::string>({fs::path(first_run).filename(), fs::path(second_run).filename()}),
      std::set<std::string>({"version_0", "version_1"}));
  EXPECT_NE(first_addr, second_addr);
  EXPECT_EQ(wait_exit(), 0) << log();
  EXPECT_EQ(testing::wait_exit(others[0], 120s), 0) << slurp(tmp / "second.log");
  for (const std::string& l : {log(), slurp(tmp / "second.log")})
    EXPECT_EQ(l.find("wrong run token"), std::string::npos) << l;
  for (const std::string& r : {first_run, second_run})
    EXPECT_TRUE(fs::exists(fs::path(r) / "checkpoints" / ckpt_name(60))) << r;
  // `latest` names the newer of the two.
  EXPECT_EQ(fs::read_symlink(experiment / "latest").filename(), "version_1");
}

// Stop, then `--resume auto`: the same run directory, the workers resume at
// the stop step (their own report says so), every file of the stopped launch
// is still there, and a second launcher on that run directory is refused with
// the first one's PID. The time from `--resume auto` to the first step is
// printed for the README.
TEST_F(Launch, StopThenResumeAutoContinuesAtTheStopStep) {
  const std::string sets =
      "--set train.epochs=50 --set checkpoint.every_steps=25 --set checkpoint.keep=1000";
  start(sets);
  connect();
  const fs::path first_run = run_dir;
  EXPECT_EQ(first_run.filename(), "version_0");
  ASSERT_GT(wait_for([](const pb::JobStatus& s) { return s.step() > 60; }).step(), 60) << log();
  std::string out;
  ASSERT_EQ(run_sync(kStatus + " --stop --run " + experiment.string(), &out), 0) << out;
  ASSERT_EQ(wait_exit(60s), 0) << log();
  const int64_t stopped = stop_step(log());
  ASSERT_GT(stopped, 60) << log();
  EXPECT_NE(log().find("verified"), std::string::npos) << log();
  const std::set<std::string> before = files_in(first_run / "checkpoints");
  EXPECT_TRUE(before.count(ckpt_name(stopped))) << log();
  EXPECT_FALSE(fs::exists(first_run / "status.addr"));

  // A launch that fails before its first checkpoint leaves a newer run
  // without one; --resume auto passes over it, as the worker's own would.
  start(sets + " --set data.dir=" + (tmp / "no-such-data").string(), "", "failed.log");
  EXPECT_EQ(wait_exit(), 2) << log();
  EXPECT_EQ(fs::path(announced_run(log())).filename(), "version_1") << log();

  start(sets, "--resume auto", "resume.log");
  connect();
  EXPECT_EQ(fs::canonical(run_dir), fs::canonical(first_run)) << log();
  const pb::JobStatus s = wait_for([&](const pb::JobStatus& s) { return s.step() > stopped; });
  std::printf("[measure] dpcnn-launch --resume auto to the first step: %.2f s\n", since(t0));
  EXPECT_EQ(s.resumed_from_step(), stopped) << log();  // from the worker's own start report
  EXPECT_GT(s.step(), stopped);
  EXPECT_EQ(s.run_dir(), run_dir.string());
  std::string text;
  EXPECT_EQ(run_sync(kStatus + " --run " + run_dir.string(), &text), 0) << text;
  EXPECT_NE(text.find("resumed     from step " + std::to_string(stopped)), std::string::npos)
      << text;

  // A second launcher on the same run: one line naming the holder, exit 3.
  others.push_back(spawn(launch_command(sets, "--resume auto"), tmp / "second.log"));
  EXPECT_EQ(testing::wait_exit(others[0], 60s), 3);
  const std::string refused = slurp(tmp / "second.log");
  EXPECT_EQ(lines(refused), 1) << refused;
  EXPECT_NE(refused.find(std::to_string(pid)), std::string::npos) << refused;
  EXPECT_NE(refused.find("dpcnn-launch"), std::string::npos) << refused;
  // So is a worker started by hand on it.
  EXPECT_EQ(run_sync(std::string(DPCNN_BIN_DIR) +
                         "/dpcnn-train --config configs/mnist-small.yaml --set data.dir=" + data +
                         " --run-dir " + run_dir.string(),
                     &out),
            3)
      << out;
  EXPECT_NE(out.find(std::to_string(pid)), std::string::npos) << out;

  ASSERT_EQ(run_sync(kStatus + " --stop --run " + run_dir.string(), &out), 0) << out;
  EXPECT_EQ(wait_exit(60s), 0) << log();
  const std::set<std::string> after = files_in(first_run / "checkpoints");
  for (const auto& f : before)
    if (f.rfind("ckpt-", 0) == 0) {
      EXPECT_TRUE(after.count(f)) << f << " is gone";
    }
  EXPECT_TRUE(after.count(ckpt_name(stop_step(log())))) << log();
  EXPECT_FALSE(fs::exists(first_run / "checkpoints.prev"));
  EXPECT_EQ(files_in(experiment), std::set<std::string>({"version_0", "version_1", "latest"}));
}

// The stop's checkpoint cannot be written (the run directory is on a full
// tmpfs): the workers end, and the launcher says so and exits 4, not 0.
TEST_F(Launch, StopWithoutItsCheckpointExits4) {
  runs = tmp / "small-disk";
  // Room for the run's small files and the synthetic data's first epoch's
  // metrics, not for a checkpoint (mnist-small's weights and Adam state are
  // about 8 MB).
  if (!mount_tmpfs(runs, 1 << 20)) GTEST_SKIP() << "cannot mount a tmpfs here";
  experiment = runs / "mnist-small";
  start("--set train.epochs=50");
  connect();
  ASSERT_GT(wait_for([](const pb::JobStatus& s) { return s.step() > 20; }).step(), 20) << log();
  std::string out;
  ASSERT_EQ(run_sync(kStatus + " --stop --run " + run_dir.string(), &out), 0) << out;
  EXPECT_EQ(wait_exit(60s), 4) << log();
  const std::string l = log();
  EXPECT_NE(l.find("without a checkpoint"), std::string::npos) << l;
  EXPECT_NE(l.find("the newest is none"), std::string::npos) << l;
  EXPECT_TRUE(workers(tmp.string()).empty());
}

// The job fails after the last restart (here: none allowed): exit 5, and
// no worker left.
TEST_F(Launch, FailureAfterTheLastRestartExits5) {
  start("--set train.epochs=50 --set launcher.max_restarts=0");
  connect();
  ASSERT_GT(wait_for([](const pb::JobStatus& s) { return s.step() > 10; }).step(), 10) << log();
  const auto w = workers(tmp.string());
  ASSERT_EQ(w.size(), 2u);
  ASSERT_EQ(kill(w[1], SIGKILL), 0);
  EXPECT_EQ(wait_exit(60s), 5) << log();
  EXPECT_NE(log().find("giving up after 0 restart(s)"), std::string::npos) << log();
  EXPECT_TRUE(workers(tmp.string()).empty());
}

// A full disk when status.addr is written: an error naming the file, exit 1,
// and no empty status.addr left in place. The tmpfs has room for the token
// and nothing more (the run directory and its lock file exist already).
TEST_F(Launch, StatusAddrOnAFullDiskIsAnErrorAndNoEmptyFile) {
  runs = tmp / "full-disk";
  if (!mount_tmpfs(runs, 1 << 20)) GTEST_SKIP() << "cannot mount a tmpfs here";
  experiment = runs / "mnist-small";
  const fs::path run = experiment / "version_0";
  fs::create_directories(run);
  // A lock file a killed launcher left behind: no lock, and rewriting it
  // takes no new page.
  { std::ofstream(run / "run.lock") << "pid 999999 dpcnn-launch (killed)\n"; }
  struct statvfs v;
  ASSERT_EQ(statvfs(runs.c_str(), &v), 0);
  const uint64_t used = (v.f_blocks - v.f_bfree) * v.f_frsize;
  ASSERT_EQ(run_sync("mount -o remount,size=" + std::to_string(used + 4096) + " " + runs.string()),
            0);
  start("", "--resume " + run.string());  // this run, named: it has no checkpoint
  EXPECT_EQ(wait_exit(), 1) << log();
  const std::string out = log();
  EXPECT_NE(out.find("status.addr"), std::string::npos) << out;
  EXPECT_NE(out.find("No space left on device"), std::string::npos) << out;
  EXPECT_EQ(out.find("chttp2"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(run / "status.addr")) << out;
  for (const auto& f : files_in(run)) EXPECT_EQ(f.find(".tmp"), std::string::npos) << f;
  EXPECT_EQ(slurp(run / "token").size(), 33u);  // the write before it is whole
  EXPECT_TRUE(workers(tmp.string()).empty());
}

// dpcnn-status started before the launcher: --timeout waits for the run's
// status.addr and the server; without a launcher it is one line and exit 1.
TEST_F(Launch, StatusWaitsForALateLauncher) {
  runs = tmp / "runs";
  experiment = runs / "mnist-small";
  std::string out;
  const auto t = Clock::now();
  EXPECT_EQ(run_sync(kStatus + " --timeout 1 --run " + experiment.string(), &out), 2) << out;
  EXPECT_GE(since(t), 1.0);  // it waited for the directory to appear
  EXPECT_EQ(lines(out), 1) << out;
  fs::create_directories(experiment / "version_0");
  EXPECT_EQ(run_sync(kStatus + " --run " + experiment.string(), &out), 1) << out;
  EXPECT_EQ(lines(out), 1) << out;
  EXPECT_NE(out.find("version_0"), std::string::npos) << out;

  others.push_back(
      spawn(kStatus + " --json --timeout 120 --run " + experiment.string(), tmp / "status.log"));
  // The status tool is polling now; the launcher comes after it.
  std::this_thread::sleep_for(500ms);
  start("--set train.epochs=1 --set train.eval=false");
  EXPECT_EQ(testing::wait_exit(others[0], 120s), 0) << slurp(tmp / "status.log");
  const std::string json = slurp(tmp / "status.log");
  EXPECT_NE(json.find("\"runDir\": \"" + (experiment / "version_1").string()), std::string::npos)
      << json;
  EXPECT_EQ(wait_exit(), 0) << log();

  // In the directory holding ./runs, with neither --run nor --addr: the newest
  // run with a status.addr, and it says which it chose.
  start("--set train.epochs=50");
  connect();
  EXPECT_EQ(run_sync("cd " + tmp.string() + " && " + kStatus + " --json", &out), 0) << out;
  EXPECT_NE(out.find("runs/mnist-small/version_2 (the newest run under ./runs with a status.addr)"),
            std::string::npos)
      << out;
  ASSERT_GT(wait_for([](const pb::JobStatus& s) { return s.step() > 0; }).step(), 0) << log();
  kill(pid, SIGINT);  // after a step: its checkpoint makes the stop clean
  EXPECT_EQ(wait_exit(60s), 0) << log();
}

// Without --np the launcher starts the config's distributed.ranks (1 unless
// set), says so, and --help shows that default; its log then reports the
// job's real rank and step counts.
TEST_F(Launch, RanksDefaultToTheConfigAndTheLogSaysThem) {
  std::string help;
  EXPECT_EQ(run_sync(std::string(DPCNN_BIN_DIR) + "/dpcnn-launch --help", &help), 0);
  EXPECT_NE(help.find("default: the config's distributed.ranks, which defaults to 1"),
            std::string::npos)
      << help;
  std::string cmd = launch_command(
      "--set distributed.ranks=2 --set train.max_steps=20 "
      "--set train.eval=false");
  const size_t np = cmd.find(" --np 2 ");
  ASSERT_NE(np, std::string::npos) << cmd;
  cmd = cmd.substr(0, np) + cmd.substr(np + 7);  // keeps one of the two spaces
  log_path = tmp / "launch.log";
  pid = spawn(cmd, log_path);
  EXPECT_EQ(wait_exit(), 0) << log();
  const std::string l = log();
  EXPECT_NE(l.find("launcher: 2 rank(s) (the config's distributed.ranks; --np N overrides)\n"),
            std::string::npos)
      << l;
  EXPECT_NE(l.find(" -np 2 "), std::string::npos) << l;
  EXPECT_NE(l.find("launcher: rank 0 reporting: 2 rank(s), 20 steps\n"), std::string::npos) << l;
  // The epoch that max_steps ends early ends its progress line at 20/20.
  EXPECT_NE(l.find("\n20/20 ["), std::string::npos) << l;
}

}  // namespace
}  // namespace dpcnn
