// A real Slurm (Debian's slurm-wlm 22.05 and munge) on this machine:
// cluster/slurm/minicluster.sh starts munged, slurmctld and one slurmd per
// network-namespace host (h1, h2), and cluster/slurm/dpcnn.sbatch runs on it
// as a user would submit it. Checked: a 2-node job under dpcnn-launch runs to
// COMPLETED on nodes h1 and h2 and prints its accuracy; the same job with
// `srun --mpi=pmix` (the script's default) gives the same accuracy line;
// scancel of a running job leaves a checkpoint and the job leaves the queue
// well before Slurm's KillWait (30 s here: the job ends when its workers
// have checkpointed, not when Slurm SIGKILLs what is left), and a job
// resubmitted with `--resume auto` continues from it to the same final
// accuracy as the uninterrupted job (checkpoints hold everything:
// bit-identical).
//
// Skipped (saying why) only where Slurm cannot start: not root, or a binary
// missing. The cluster has its own names (per test process) and is always
// torn down; every command has a timeout, so nothing can hang.
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <regex>
#include <string>
#include <thread>

#include "../integration/process_testing.h"
#include "../integration/synthetic_data.h"

namespace dpcnn {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
using testing::Result;
using testing::sh;
using testing::slurp;

// Slurm's KillWait on the test cluster: seconds from scancel's SIGTERM to
// its SIGKILL. The job must be gone long before (kScancelBound).
constexpr int kKillWait = 30;
constexpr double kScancelBound = 20;

const std::string kSrc = DPCNN_SOURCE_DIR;
const std::string kBin = DPCNN_BIN_DIR;

std::string why_no_slurm() {
  if (geteuid() != 0) return "needs root (slurmd, munged, network namespaces)";
  for (const char* b : {"munged", "slurmctld", "slurmd", "sbatch", "scancel", "ip", "unshare"})
    if (sh(std::string("PATH=$PATH:/usr/sbin command -v ") + b).status != 0)
      return std::string(b) + " not found (apt-get install slurm-wlm munge iproute2)";
  return "";
}

// Text of the first match of `re`'s group 1 in `s`, or "".
std::string find(const std::string& s, const std::string& re) {
  std::smatch m;
  return std::regex_search(s, m, std::regex(re)) ? m[1].str() : "";
}

class Slurm : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const std::string why = why_no_slurm(); !why.empty()) GTEST_SKIP() << why;
    const std::string id = std::to_string(getpid());
    state_ = fs::temp_directory_path() / ("dpcnn-slurm-t" + id);
    work_ = fs::temp_directory_path() / ("dpcnn-slurm-work" + id);
    fs::remove_all(work_);
    fs::create_directories(work_);
    env_ = "DPCNN_SLURM_DIR='" + state_.string() + "' DPCNN_VC_NAME=dps" + id +
           " DPCNN_SLURM_KILLWAIT=" + std::to_string(kKillWait) + " ";
    data_ = testing::synthetic_mnist_dir(2048, 400);
    const Result r = mc("up 2", 120);
    up_ = true;
    ASSERT_EQ(r.status, 0) << r.output << slurp(state_ / "log" / "slurmctld.log");
  }
  void TearDown() override {
    if (up_) {
      const Result r = mc("down", 90);
      EXPECT_EQ(r.status, 0) << r.output;
    }
    fs::remove_all(work_);
  }

  Result mc(const std::string& args, int timeout_s) {
    return sh("cd '" + kSrc + "' && " + env_ + "timeout -k 5 " + std::to_string(timeout_s) +
              " cluster/slurm/minicluster.sh " + args);
  }

  // sbatch of cluster/slurm/dpcnn.sbatch from the source checkout; the job id.
  std::string submit(bool launcher, const std::string& extra) {
    const std::string cmd =
        "run env DPCNN_LAUNCH=" + std::string(launcher ? "1" : "0") + " DPCNN_BIN='" + kBin +
        "' sbatch --parsable --cpus-per-task=1 --time=5 --output='" + work_.string() +
        "/job-%j.out' cluster/slurm/dpcnn.sbatch configs/mnist-small.yaml --set data.dir=" + data_ +
        " --set runs_dir=" + work_.string() + "/runs-" + (launcher ? "l" : "s") +
        " --set train.max_steps=240 --set checkpoint.every_steps=0 " + extra;
    const Result r = mc(cmd, 30);
    EXPECT_EQ(r.status, 0) << r.output;
    return find(r.output, "^([0-9]+)");
  }

  // Waits until the job has left the queue; its final state (COMPLETED, ...).
  std::string wait_done(const std::string& job, int timeout_s) {
    const auto until = Clock::now() + std::chrono::seconds(timeout_s);
    while (Clock::now() < until) {
      const Result q = mc("run squeue -h -j " + job + " -o %T", 15);
      if (q.status == 0 && q.output.find_first_not_of(" \n") == std::string::npos) break;
      std::this_thread::sleep_for(500ms);
    }
    return find(mc("run scontrol show job " + job, 15).output, "JobState=([A-Z_]+)");
  }

  std::string output(const std::string& job) { return slurp(work_ / ("job-" + job + ".out")); }
  std::string logs() {
    return "\n--- slurmctld.log ---\n" + slurp(state_ / "log" / "slurmctld.log") +
           "\n--- slurmd-h2.log ---\n" + slurp(state_ / "log" / "slurmd-h2.log");
  }

  fs::path state_, work_;
  std::string env_, data_;
  bool up_ = false;
};

TEST_F(Slurm, SbatchRunsToTheEndAndScancelLeavesACheckpointThatResumeContinues) {
  // 1. Under dpcnn-launch, to the end, on both nodes.
  const std::string a = submit(true, "");
  ASSERT_FALSE(a.empty());
  ASSERT_EQ(wait_done(a, 100), "COMPLETED") << output(a) << logs();
  const std::string out_a = output(a);
  EXPECT_NE(find(mc("run scontrol show job " + a, 15).output, "(NodeList=h\\[1-2\\])"), "");
  EXPECT_NE(out_a.find("dpcnn: 2 node(s) x 1 rank(s) x 1 thread(s): h[1-2]"), std::string::npos)
      << out_a;
  EXPECT_NE(out_a.find("ckpt-0000000240.pb (step 240"), std::string::npos) << out_a;
  EXPECT_NE(out_a.find("launcher: finished"), std::string::npos) << out_a;
  // The launcher has srun start the ranks (--starter srun, the script's choice).
  EXPECT_TRUE(std::regex_search(out_a, std::regex("launcher: attempt 1: \\S*srun --mpi=pmix ")))
      << out_a;
  const std::string acc = find(out_a, "(test_loss [0-9.]+ test_acc [0-9.]+ \\([0-9]+/400\\))");
  ASSERT_FALSE(acc.empty()) << out_a;

  // 2. The script's default: srun --mpi=pmix starts the ranks, no launcher.
  const std::string b = submit(false, "");
  ASSERT_EQ(wait_done(b, 100), "COMPLETED") << output(b) << logs();
  EXPECT_NE(output(b).find(acc), std::string::npos) << "launcher job: " << acc << "\n" << output(b);

  // 3. scancel mid-run: Slurm sends SIGTERM (then SIGKILL after KillWait); the
  // workers stop at the next step and write a checkpoint, the launcher
  // verifies it and exits, and the job leaves the queue: long before
  // KillWait, which would otherwise end it.
  // A checkpoint every step (~0.1 s each) keeps this job running for tens
  // of seconds however fast the machine trains, so the scancel lands
  // mid-run; checkpoints do not change the model.
  const std::string c = submit(true, "--set checkpoint.every_steps=1");
  const auto until = Clock::now() + 60s;
  while (Clock::now() < until && output(c).find("first step") == std::string::npos)
    std::this_thread::sleep_for(200ms);
  ASSERT_NE(output(c).find("first step"), std::string::npos) << output(c) << logs();
  std::this_thread::sleep_for(2s);
  const auto cancelled = Clock::now();
  ASSERT_EQ(mc("run scancel " + c, 15).status, 0);
  EXPECT_EQ(wait_done(c, 60), "CANCELLED") << output(c);
  const double gone = std::chrono::duration<double>(Clock::now() - cancelled).count();
  std::printf("scancel to out of the queue: %.1f s (KillWait %d s)\n", gone, kKillWait);
  RecordProperty("seconds_scancel_to_out_of_queue", std::to_string(gone));
  const std::string out_c = output(c);
  EXPECT_LT(gone, kScancelBound) << out_c << logs();
  EXPECT_EQ(out_c.find("launcher: finished"), std::string::npos) << "not cancelled in time\n"
                                                                 << out_c;
  // The launcher ended by itself (not by Slurm's SIGKILL): it verified the
  // checkpoint and wrote the final status.
  EXPECT_TRUE(std::regex_search(out_c, std::regex("launcher: stopped cleanly at step [0-9]+: "
                                                  "checkpoint \\S+ verified")))
      << out_c;
  EXPECT_TRUE(fs::exists(work_ / "runs-l" / "mnist-small" / "version_1" / "status.json")) << out_c;
  const fs::path ckpts = work_ / "runs-l" / "mnist-small" / "version_1" / "checkpoints";
  int64_t saved = -1;
  if (fs::exists(ckpts))
    for (const auto& e : fs::directory_iterator(ckpts)) {
      const std::string s = find(e.path().filename().string(), "^ckpt-([0-9]+)\\.pb$");
      if (!s.empty()) saved = std::max<int64_t>(saved, std::stoll(s));
    }
  ASSERT_GT(saved, 0) << "no checkpoint in " << ckpts << "\n" << out_c;
  ASSERT_LT(saved, 240) << out_c;

  // 4. Resubmitted with --resume auto: continues from that checkpoint, to the
  // accuracy of the uninterrupted job.
  const std::string d = submit(true, "--resume auto");
  ASSERT_EQ(wait_done(d, 100), "COMPLETED") << output(d) << logs();
  const std::string out_d = output(d);
  // "resuming from ...ckpt-N.pb: epoch E, step S (N steps done)": S counts
  // within the epoch, so only the total names the checkpoint's step wherever
  // the scancel landed.
  const std::regex resumed("resuming from \\S*ckpt-0*" + std::to_string(saved) +
                           "\\.pb: epoch \\d+, step \\d+ \\(" + std::to_string(saved) +
                           " steps done\\)");
  EXPECT_TRUE(std::regex_search(out_d, resumed)) << out_d;
  EXPECT_NE(out_d.find(acc), std::string::npos) << "uninterrupted: " << acc << "\n" << out_d;
}

}  // namespace
}  // namespace dpcnn
