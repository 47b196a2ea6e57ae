// dpcnn-launch when things go wrong, end to end with the real launcher, real
// mpirun and the real 2-rank worker: a frozen worker (stall timeout), a job
// that keeps failing (max_restarts), SIGTERM, kill -9 of the launcher itself
// (no orphan workers), replicas that diverge (the epoch-end checksum), and
// dpcnn-status --watch / --checkpoint against a live launcher.
//
// The launcher's exit codes and messages are named once below, so a change
// to them is one edit here.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <thread>

#include "checkpoint/checkpoint.h"
#include "core/exit_codes.h"
#include "launch_fixture.h"

namespace dpcnn {
namespace {

using testing::since;
using testing::slurp;
using testing::workers;
namespace fs = std::filesystem;
namespace pb = dpcnn::v1;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr int kExitFinished = 0;                 // finished, or stopped cleanly
constexpr int kExitGaveUp = exit_code::kGaveUp;  // failed again after the last restart

class LaunchFailure : public testing::Launch {
 protected:
  std::string status_bin() const { return std::string(DPCNN_BIN_DIR) + "/dpcnn-status"; }

  // Freezes or thaws this test's workers.
  void signal_workers(int sig) {
    for (pid_t w : workers(tmp.string())) kill(w, sig);
  }
  // mpirun of this test's job (its command line names the test's directory).
  pid_t mpirun() {
    for (const auto& d : fs::directory_iterator("/proc")) {
      const std::string name = d.path().filename();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      std::string cmd = slurp(d.path() / "cmdline");
      std::replace(cmd.begin(), cmd.end(), '\0', ' ');
      if (cmd.rfind("mpirun", 0) != std::string::npos || cmd.find("/mpirun ") != std::string::npos)
        if (cmd.find(tmp.string()) != std::string::npos) return std::stoi(name);
    }
    return -1;
  }

  // Alive and not a zombie.
  static bool running(pid_t p) {
    const std::string stat = slurp("/proc/" + std::to_string(p) + "/stat");
    const auto rp = stat.rfind(')');
    return rp != std::string::npos && stat.size() > rp + 2 && stat[rp + 2] != 'Z';
  }

  // The checkpoints of the run the launcher announced (after connect()).
  fs::path checkpoints() const { return run_dir / "checkpoints"; }

  // The step of a checkpoint file, read and verified by the checkpoint reader.
  static int64_t checkpoint_step(const fs::path& file) { return read_checkpoint(file).global_step; }
};

// A worker that stops making progress (SIGSTOP: alive, holding its sockets,
// doing nothing) is what the stall timeout is for: after
// launcher.stall_timeout_s without a new step the launcher kills the group and
// resumes from the checkpoint, and the job finishes.
TEST_F(LaunchFailure, StalledWorkerIsKilledAndTheJobResumes) {
  start(
      "--set train.epochs=2 --set checkpoint.every_steps=20 --set launcher.stall_timeout_s=4 "
      "--set launcher.max_restarts=1");
  connect();
  const pb::JobStatus s = wait_for(
      [](const pb::JobStatus& s) { return s.step() > 30 && s.last_checkpoint_step() > 0; });
  ASSERT_GT(s.step(), 30) << log();
  const auto w = workers(tmp.string());
  ASSERT_EQ(w.size(), 2u);
  ASSERT_EQ(kill(w[1], SIGSTOP), 0);
  const auto frozen = Clock::now();
  const pb::JobStatus r = wait_for([](const pb::JobStatus& s) { return s.restarts() == 1; }, 60s);
  EXPECT_EQ(r.restarts(), 1) << log();
  // Not before the timeout: 4 s without a new step. The last step the
  // launcher heard of may predate the freeze by up to one report interval
  // (1 s), hence 3 s; on a loaded machine it only takes longer.
  EXPECT_GE(since(frozen), 3.0);
  EXPECT_NE(r.error().find("no progress for 4 s"), std::string::npos) << r.error();
  EXPECT_EQ(wait_exit(), kExitFinished) << log();
  const std::string l = log();
  EXPECT_NE(l.find("no progress for 4 s"), std::string::npos) << l;
  EXPECT_NE(l.find("restart 1/1"), std::string::npos) << l;
  EXPECT_NE(l.find("resuming from"), std::string::npos) << l;
  EXPECT_NE(l.find("Epoch 2/2"), std::string::npos) << l;
  // The frozen worker did not survive: terminate() SIGKILLs what SIGTERM
  // cannot reach (it may linger as a zombie of pid 1 here: dead all the same).
  EXPECT_FALSE(running(w[1]));
  EXPECT_TRUE(workers(tmp.string()).empty());
}

// A job that fails again after its last allowed restart is given up: exit
// code 5 (kGaveUp), one line saying so, FAILED in the final status (dpcnn-status
// --watch, following it to the end, exits 1 on it).
TEST_F(LaunchFailure, GivesUpAfterMaxRestarts) {
  start("--set train.epochs=20 --set checkpoint.every_steps=20 --set launcher.max_restarts=1");
  connect();
  std::string watch_out;
  int watch_code = -1;
  std::thread watcher([&] {
    const testing::Result r = testing::sh(status_bin() + " --watch --run " + run_dir.string());
    watch_out = r.output, watch_code = r.status;
  });
  for (int attempt = 1; attempt <= 2; ++attempt) {
    const pb::JobStatus s = wait_for([&](const pb::JobStatus& s) {
      return s.attempt() == attempt && s.state() == pb::JOB_STATE_RUNNING && s.step() > 0 &&
             s.step() > s.last_checkpoint_step() + 2;
    });
    ASSERT_EQ(s.attempt(), attempt) << log();
    const auto w = workers(tmp.string());
    ASSERT_EQ(w.size(), 2u) << log();
    kill(w[0], SIGKILL);
    if (attempt == 1) wait_for([](const pb::JobStatus& s) { return s.attempt() == 2; });
  }
  EXPECT_EQ(wait_exit(), kExitGaveUp) << log();
  watcher.join();
  const std::string l = log();
  EXPECT_NE(l.find("restart 1/1"), std::string::npos) << l;
  EXPECT_NE(l.find("giving up after 1 restart(s)"), std::string::npos) << l;
  EXPECT_EQ(l.find("attempt 3"), std::string::npos) << l;
  EXPECT_EQ(watch_code, 1) << watch_out;
  EXPECT_NE(watch_out.find("FAILED"), std::string::npos) << watch_out;
  EXPECT_TRUE(workers(tmp.string()).empty());
}

// SIGTERM (what a scheduler or `kill` sends) is a clean stop as Ctrl-C is:
// the workers write a checkpoint at their next step, the launcher exits 0.
// The checkpoint is the last word: no step after it was trained.
TEST_F(LaunchFailure, SigtermStopsCleanlyWithAFinalCheckpoint) {
  start("--set train.epochs=50");
  connect();
  const pb::JobStatus s = wait_for([](const pb::JobStatus& s) { return s.step() > 20; });
  ASSERT_GT(s.step(), 20) << log();
  ASSERT_EQ(kill(pid, SIGTERM), 0);
  EXPECT_EQ(wait_exit(60s), kExitFinished) << log();
  const std::string l = log();
  EXPECT_NE(l.find("Terminated: stopping after a checkpoint"), std::string::npos) << l;
  EXPECT_NE(l.find("stopped cleanly"), std::string::npos) << l;
  const fs::path latest = resolve_checkpoint_path(checkpoints().string());
  const int64_t step = checkpoint_step(latest);
  EXPECT_GE(step, s.step());  // written after the signal, not an old one
  EXPECT_LT(step, 50 * 128);
  EXPECT_TRUE(workers(tmp.string()).empty());
}

// Stop asked of a job whose workers hang (frozen, they cannot act on it):
// the launcher still ends the job, by its stall timeout, and does not
// restart it, since a stop was asked; nothing is left running, and the exit
// code says no checkpoint holds the stop step (4).
TEST_F(LaunchFailure, StopOfAHungJobEndsItWithoutRestart) {
  start("--set train.epochs=50 --set launcher.stall_timeout_s=3");
  connect();
  wait_for([](const pb::JobStatus& s) { return s.step() > 5; });
  // Frozen for good: mpirun too, or its SIGCONT before SIGTERM would wake the
  // ranks and they would checkpoint at the stop after all (workers stop
  // cleanly on SIGTERM).
  const pid_t launcher_mpirun = mpirun();
  ASSERT_GT(launcher_mpirun, 0) << log();
  kill(launcher_mpirun, SIGSTOP);
  signal_workers(SIGSTOP);
  EXPECT_EQ(testing::sh(status_bin() + " --stop --run " + run_dir.string()).status, 0);
  EXPECT_EQ(wait_exit(60s), exit_code::kStoppedNoCheckpoint) << log();
  const std::string l = log();
  EXPECT_NE(l.find("stopped (no progress for 3 s)"), std::string::npos) << l;
  EXPECT_EQ(l.find("attempt 2"), std::string::npos) << l;
  EXPECT_TRUE(workers(tmp.string()).empty());
}

// Stop with mpirun unable to end by itself (frozen here; under Slurm's
// scancel it sleeps odls_base_sigkill_timeout twice): the workers write and
// report the final checkpoint, and the launcher ends mpirun a few seconds
// later instead of waiting for its stop deadline (30 s): a clean stop, exit 0.
TEST_F(LaunchFailure, StopEndsAStarterThatLingersAfterTheFinalCheckpoint) {
  start("--set train.epochs=50");
  connect();
  wait_for([](const pb::JobStatus& s) { return s.step() > 5; });
  const pid_t launcher_mpirun = mpirun();
  ASSERT_GT(launcher_mpirun, 0) << log();
  ASSERT_EQ(kill(launcher_mpirun, SIGSTOP), 0);
  EXPECT_EQ(testing::sh(status_bin() + " --stop --run " + run_dir.string()).status, 0);
  EXPECT_EQ(wait_exit(60s), kExitFinished) << log();
  const std::string l = log();
  EXPECT_NE(l.find("launcher: mpirun still running 3 s after the workers' final checkpoint: "
                   "ending it"),
            std::string::npos)
      << l;
  EXPECT_TRUE(std::regex_search(
      l, std::regex("launcher: stopped cleanly at step [0-9]+: checkpoint \\S+ verified")))
      << l;
  EXPECT_EQ(l.find("did not stop in time"), std::string::npos) << l;
  EXPECT_EQ(l.find("attempt 2"), std::string::npos) << l;
  EXPECT_FALSE(running(launcher_mpirun));
  EXPECT_TRUE(workers(tmp.string()).empty());
}

// kill -9 of dpcnn-launch: it cannot clean up, yet no worker may keep
// training on its own. mpirun dies with it (PR_SET_PDEATHSIG) and takes its
// ranks along; bounded by 20 s, which is far more than it takes.
TEST_F(LaunchFailure, LauncherKilledLeavesNoOrphanWorkers) {
  start("--set train.epochs=50");
  connect();
  wait_for([](const pb::JobStatus& s) { return s.step() > 5; });
  ASSERT_EQ(workers(tmp.string()).size(), 2u) << log();
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  ASSERT_EQ(wait_exit(10s), 128 + SIGKILL);
  const auto killed = Clock::now();
  while (!workers(tmp.string()).empty() && since(killed) < 20) std::this_thread::sleep_for(50ms);
  std::printf("[measure] launcher killed to no workers left: %.2f s\n", since(killed));
  EXPECT_TRUE(workers(tmp.string()).empty()) << "orphan workers still running after 20 s";
}

// dpcnn-status --watch follows a whole run: one line per update with growing
// steps, the states in order, the last line FINISHED, exit 0 when the job ends;
// afterwards it shows the run's final status.json.
TEST_F(LaunchFailure, StatusWatchFollowsARunToItsEnd) {
  start("--set train.epochs=2");
  connect();
  const testing::Result r = testing::sh(status_bin() + " --watch --run " + run_dir.string());
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(wait_exit(), kExitFinished) << log();
  const std::regex line(R"(^(\w+) epoch \d+/\d+ step (\d+)/(\d+) loss .* restarts 0$)");
  std::vector<int64_t> steps;
  std::vector<std::string> states;
  std::istringstream in(r.output);
  for (std::string l; std::getline(in, l);) {
    std::smatch m;
    ASSERT_TRUE(std::regex_match(l, m, line)) << l;
    if (states.empty() || states.back() != m[1]) states.push_back(m[1]);
    steps.push_back(std::stoll(m[2]));
  }
  ASSERT_GE(steps.size(), 3u) << r.output;
  EXPECT_TRUE(std::is_sorted(steps.begin(), steps.end())) << r.output;
  EXPECT_EQ(steps.back(), 2 * 128);
  EXPECT_EQ(states.back(), "FINISHED") << r.output;
  EXPECT_NE(std::find(states.begin(), states.end(), "RUNNING"), states.end()) << r.output;
  // --json: one protobuf JSON object a line, from a launcher that is gone now.
  // The launcher has gone; its final status.json is what --watch shows.
  const testing::Result gone =
      testing::sh(status_bin() + " --watch --json --run " + run_dir.string());
  EXPECT_EQ(gone.status, 0) << gone.output;
  EXPECT_EQ(testing::lines(gone.output), 1) << gone.output;
  EXPECT_NE(gone.output.find("\"state\":\"JOB_STATE_FINISHED\""), std::string::npos) << gone.output;
}

// dpcnn-status --checkpoint makes rank 0 write a checkpoint now, and is
// refused without the right token. Epoch ends write checkpoints too and
// every_steps is off, so the requested one is the one whose step is not a
// multiple of the epoch's 2,048 steps (batch 2: long epochs, so a request is
// served well before an epoch end would serve it anyway); checkpoint.keep is
// large enough to keep them all.
TEST_F(LaunchFailure, StatusCheckpointWritesOneNow) {
  start("--set train.epochs=50 --set train.batch_size=2 --set checkpoint.keep=1000");
  connect();
  wait_for([](const pb::JobStatus& s) { return s.step() > 10; });
  auto mid_epoch = [&] {
    std::vector<int64_t> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(checkpoints(), ec)) {
      const std::string n = e.path().filename();
      if (n.rfind("ckpt-", 0) == 0 && n.size() == 18 && std::stoll(n.substr(5, 10)) % 2048 != 0)
        out.push_back(std::stoll(n.substr(5, 10)));
    }
    return out;
  };
  // A wrong token in the run directory: refused, and nothing is written.
  const std::string token = slurp(run_dir / "token");
  std::ofstream(run_dir / "token") << "0123456789abcdef0123456789abcdef\n";
  testing::Result r = testing::sh(status_bin() + " --checkpoint --run " + run_dir.string());
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("wrong run token"), std::string::npos) << r.output;
  std::ofstream(run_dir / "token") << token;
  std::this_thread::sleep_for(2s);  // two report rounds: a wrongly accepted request would show
  EXPECT_TRUE(mid_epoch().empty());

  const int64_t before = get().step();
  r = testing::sh(status_bin() + " --checkpoint --run " + run_dir.string());
  EXPECT_EQ(r.status, 0) << r.output;
  // It waits for rank 0 to write it and says at which step and where.
  std::smatch m;
  ASSERT_TRUE(
      std::regex_match(r.output, m, std::regex(R"(checkpoint written at step (\d+): (/\S+)\n)")))
      << r.output;
  const int64_t said = std::stoll(m[1]);
  EXPECT_TRUE(fs::exists(m[2].str())) << m[2];
  const std::vector<int64_t> got = mid_epoch();  // there already: no waiting
  ASSERT_EQ(got.size(), 1u) << log();
  EXPECT_EQ(got[0], said);
  EXPECT_EQ(fs::path(m[2].str()),
            fs::absolute(checkpoints() / CheckpointDir::file_name(said)).lexically_normal());
  EXPECT_GE(got[0], before);
  EXPECT_EQ(checkpoint_step(checkpoints() / CheckpointDir::file_name(got[0])), got[0]);
  EXPECT_EQ(testing::sh(status_bin() + " --stop --run " + run_dir.string()).status, 0);
  EXPECT_EQ(wait_exit(60s), kExitFinished) << log();
}

// The epoch-end replica check. Replicas can only diverge when ranks do not
// run the same update; an honest way to get there is a heterogeneous launch
// (mpirun's "A : B" form) in which rank 1 is given another learning rate. The
// initial weights are broadcast and the gradients averaged, so nothing else
// notices; at the end of epoch 1 the checksums differ and the job stops,
// naming rank 1, before evaluating.
TEST(Replicas, DivergedReplicasStopTheJobAtTheEpochEnd) {
  const std::string data = testing::synthetic_mnist_dir(512, 203);
  const fs::path runs = fs::temp_directory_path() / ("dpcnn-diverge-" + std::to_string(getpid()));
  const std::string common = std::string(DPCNN_BIN_DIR) +
                             "/dpcnn-train --config configs/mnist-small.yaml --set train.epochs=2 "
                             "--set distributed.threads_per_rank=1 --set data.dir=" +
                             data + " --set runs_dir=" + runs.string();
  const testing::Result same = testing::sh("scripts/mpirun.sh -np 1 " + common +
                                           " --set optimizer.learning_rate=1e-3 : -np 1 " + common +
                                           " --set optimizer.learning_rate=1e-3");
  EXPECT_EQ(same.status, 0) << same.output;  // the same form, agreeing ranks: no false alarm
  const testing::Result r = testing::sh("scripts/mpirun.sh -np 1 " + common +
                                        " --set optimizer.learning_rate=1e-3 : -np 1 " + common +
                                        " --set optimizer.learning_rate=2e-3");
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_TRUE(std::regex_search(
      r.output, std::regex(R"(rank \d on [^:]+: after epoch 1 the weights of rank\(s\) 1 differ )"
                           R"(from rank 0's: replicas diverged)")))
      << r.output;
  EXPECT_EQ(r.output.find("Epoch 2/2"), std::string::npos) << r.output;
  fs::remove_all(runs);
}

}  // namespace
}  // namespace dpcnn
