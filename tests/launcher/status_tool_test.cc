// dpcnn-status, the real binary, against the launcher's real status service
// served in this process over loopback and fed by the real reporter: what
// the text view prints for each part of the status, how the tool finds a run
// (the newest live one under runs/, or the run whose launcher is at --addr,
// for its token), the token errors (bad input, exit 2), --watch to a failed
// end (exit 1), and an unreachable launcher. No training job: fast and exact.
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include "../integration/process_testing.h"
#include "core/exit_codes.h"
#include "launcher/status_service.h"
#include "launcher/status_text.h"
#include "report/reporter.h"
#include "status_fixture.h"

namespace dpcnn::launcher {
namespace {

namespace fs = std::filesystem;
namespace pb = dpcnn::v1;
using namespace std::chrono_literals;

const char* kToken = "00112233445566778899aabbccddeeff";

int lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

class StatusTool : public LoopbackStatusTest {
 protected:
  StatusTool() : LoopbackStatusTest("job-1234", "job", kToken) {}
  void SetUp() override {
    LoopbackStatusTest::SetUp();
    // A run directory as dpcnn-launch leaves it while it runs.
    tmp = fs::temp_directory_path() /
          ("dpcnn-status-tool-" + std::to_string(getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    run = tmp / "runs" / "job";
    fs::create_directories(run);
    std::ofstream(run / "status.addr") << addr << "\n";
    std::ofstream(run / "token") << kToken << "\n";
  }
  void TearDown() override {
    LoopbackStatusTest::TearDown();
    fs::remove_all(tmp);
  }

  // dpcnn-status with `args`, run from `cwd` (default: the temp dir, whose
  // runs/ holds this test's run only).
  testing::Result status(const std::string& args, const fs::path& cwd = {}) {
    return testing::sh("cd " + (cwd.empty() ? tmp : cwd).string() + " && " +
                       std::string(DPCNN_BIN_DIR) + "/dpcnn-status " + args);
  }

  // Reports like rank 0 of a 2-rank run at step 60 of 100, after epoch 1.
  void report_a_run(double images_per_sec) {
    ReporterOptions o;
    o.interval = 20ms;
    o.token = kToken;
    auto r = make_grpc_reporter(addr, "job-1234", o);
    RunInfo info;
    info.name = "job";
    info.ranks = 2;
    info.hosts = {"h0", "h1"};
    info.epochs = 2;
    info.steps_per_epoch = 50;
    info.total_steps = 100;
    r->on_start(info);
    EpochMetrics m;
    m.epoch = 1;
    m.step = 50;
    m.loss = 0.5;
    m.accuracy = 0.8;
    m.val_loss = 0.4;
    m.val_accuracy = 0.9;
    m.test_loss = 0.45;
    m.test_accuracy = 0.88;
    m.best = true;
    m.images_per_sec = 1234;
    r->on_epoch_end(m);
    r->on_checkpoint("runs/job/checkpoints/ckpt-0000000050.pb", 50);
    r->on_best("runs/job/checkpoints/ckpt-0000000050.pb");
    ProgressInfo p;
    p.epoch = 2;
    p.step_in_epoch = 10;
    p.global_step = 60;
    p.total_steps = 100;
    p.loss = 0.25;
    p.accuracy = 0.875;
    p.images_per_sec = images_per_sec;
    p.lr = 5e-4;
    r->on_progress(p);
    r->on_finish({0.3, 0.95, 203, 0, false, "val_loss did not improve (best 0.4 at epoch 1)"});
  }  // the reporter's destructor flushes

  fs::path tmp, run;
};

TEST_F(StatusTool, TextShowsEachPartOfTheStatus) {
  // 40 steps of 32 images left at 10 images/s: 128 s.
  report_a_run(10);
  const testing::Result r = status("--run " + run.string());
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string cwd = fs::current_path().string();
  const std::string want[] = {
      "run         job-1234 (job, " + cwd + "/configs/job.yaml)\n",
      "state       RUNNING, attempt 0, restarts 0/3\n",
      "ranks       2 on h0, h1\n",
      "progress    epoch 2/2, step 60/100 (60.0%)\n",
      "training    loss 0.2500, accuracy 0.8750 (rank 0, running mean of this epoch so far)\n",
      "speed       10 images/s, ETA 2m08s, learning rate 0.0005\n",
      "checkpoint  " + cwd + "/runs/job/checkpoints/ckpt-0000000050.pb (step 50)\n",
      "epochs      (loss/accuracy: mean of the whole epoch, all ranks)\n",
      "epoch 1     loss 0.5000 accuracy 0.8000 val_loss 0.4000 val_accuracy 0.9000 test_loss "
      "0.4500 test_accuracy 0.8800 (1234 img/s) best\n",
      "validation  val_loss 0.4000 val_accuracy 0.9000 (after epoch 1)\n",
      "best        runs/job/checkpoints/ckpt-0000000050.pb\n",
      "early stop  val_loss did not improve (best 0.4 at epoch 1)\n",
      "result      test_loss 0.3000 test_acc 0.9500 (203 samples)\n",
  };
  for (const std::string& line : want)
    EXPECT_NE(r.output.find(line), std::string::npos) << line << r.output;
  EXPECT_TRUE(std::regex_search(r.output, std::regex(R"(started     \S+ \(\d+s ago\)\n)")))
      << r.output;
}

TEST_F(StatusTool, LongEtaIsInHoursAndJsonHasEveryField) {
  // 40 x 32 images at 0.1 images/s: 12,800 s.
  report_a_run(0.1);
  testing::Result r = status("--run " + run.string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("ETA 3h33m, learning rate 0.0005\n"), std::string::npos) << r.output;
  r = status("--json --run " + run.string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("\"state\": \"JOB_STATE_RUNNING\""), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\"testCount\": \"203\""), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\"hosts\": [\n  \"h0\",\n  \"h1\"\n ]"), std::string::npos) << r.output;
}

// With no --run and no --addr, the only live run under ./runs is the one;
// with --addr, the live run served there lends its token to --stop.
TEST_F(StatusTool, FindsTheLiveRunAndItsToken) {
  report_a_run(10);
  testing::Result r = status("");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("run         job-1234"), std::string::npos) << r.output;
  // A finished run's directory (no status.addr) does not count as live.
  fs::create_directories(tmp / "runs" / "old");
  r = status("--json");
  EXPECT_EQ(r.status, 0) << r.output;
  r = status("--stop --addr " + addr);
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("stopping: workers write a checkpoint"), std::string::npos) << r.output;
  EXPECT_TRUE(service->health().stop_requested);
  // Two live runs: the newest one, and the tool says which it took.
  fs::create_directories(tmp / "runs" / "other");
  std::ofstream(tmp / "runs" / "other" / "status.addr") << "127.0.0.1:1\n";
  r = status("--timeout 1");
  EXPECT_NE(r.output.find("dpcnn-status: runs/other (the newest run under ./runs with a "
                          "status.addr)"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("no launcher answers at 127.0.0.1:1 (runs/other)"), std::string::npos)
      << r.output;
}

// Stop and Checkpoint need the token: without one (no token file, no
// DPCNN_RUN_TOKEN) the tool says where it looks and asks nothing; with a
// wrong one the launcher refuses. Both are bad input (exit 2); the job is
// untouched.
TEST_F(StatusTool, TokenProblemsAreBadInput) {
  fs::remove(run / "token");
  testing::Result r = status("--checkpoint --run " + run.string());
  EXPECT_EQ(r.status, exit_code::kBadInput) << r.output;
  EXPECT_NE(r.output.find("no run token (the run directory's token file; pass --run, or set "
                          "DPCNN_RUN_TOKEN)"),
            std::string::npos)
      << r.output;
  std::ofstream(run / "token") << "ffffffffffffffffffffffffffffffff\n";
  r = status("--stop --run " + run.string());
  EXPECT_EQ(r.status, exit_code::kBadInput) << r.output;
  EXPECT_NE(r.output.find("wrong run token"), std::string::npos) << r.output;
  EXPECT_FALSE(service->health().stop_requested);
  // The environment variable is the fallback when the run has no token file.
  fs::remove(run / "token");
  r = testing::sh("cd " + tmp.string() + " && DPCNN_RUN_TOKEN=" + kToken + " " +
                  std::string(DPCNN_BIN_DIR) + "/dpcnn-status --stop --run " + run.string());
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("stopping"), std::string::npos) << r.output;
  EXPECT_TRUE(service->health().stop_requested);
}

// --watch --json prints one JSON object a line and ends with the job; a
// failed job makes it exit 1.
TEST_F(StatusTool, WatchEndsWithTheJobAndExits1WhenItFailed) {
  testing::Result r;
  std::thread watcher([&] { r = status("--watch --json --run " + run.string()); });
  report_a_run(10);
  std::this_thread::sleep_for(700ms);  // a few watch intervals (500 ms)
  service->set_state(pb::JOB_STATE_FAILED, "gave up", "worker died");
  watcher.join();
  EXPECT_EQ(r.status, 1) << r.output;
  std::istringstream lines(r.output);
  int n = 0;
  std::string last;
  for (std::string l; std::getline(lines, l); ++n) {
    EXPECT_EQ(l.front(), '{') << l;
    EXPECT_EQ(l.back(), '}') << l;
    last = l;
  }
  EXPECT_GE(n, 2) << r.output;
  EXPECT_NE(last.find("\"state\":\"JOB_STATE_FAILED\""), std::string::npos) << last;
  EXPECT_NE(last.find("\"error\":\"worker died\""), std::string::npos) << last;
}

// The one-line form (--watch piped) says what its loss averages over and has
// the validation and test accuracy, the learning rate and the last restart's
// reason.
TEST_F(StatusTool, WatchLineHasValTestLrAndRestartReason) {
  report_a_run(10);
  service->count_restart("no progress for 120 s");
  service->set_state(pb::JOB_STATE_FAILED, "gave up", "worker died");
  const testing::Result r = status("--watch --run " + run.string());
  EXPECT_EQ(r.status, exit_code::kFailure) << r.output;
  EXPECT_EQ(r.output,
            "FAILED epoch 2/2 step 60/100 loss 0.2500 acc 0.8750 (epoch so far) val_acc 0.9000 "
            "test_acc 0.9500 lr 0.0005 10 img/s ETA unknown restarts 1 (last: no progress for "
            "120 s)\n");
}

// On a terminal --watch draws one screen, cleared and redrawn in place (like
// top), with the whole text view; `script` gives it a terminal.
TEST_F(StatusTool, WatchOnATerminalRedrawsOneScreen) {
  report_a_run(10);
  testing::Result r;
  std::thread watcher([&] {
    r = testing::sh("cd " + tmp.string() + " && script -qfec '" + std::string(DPCNN_BIN_DIR) +
                    "/dpcnn-status --watch --run " + run.string() + "' /dev/null");
  });
  std::this_thread::sleep_for(1500ms);  // a few 500 ms updates
  service->set_state(pb::JOB_STATE_FINISHED, "finished");
  watcher.join();
  EXPECT_EQ(r.status, 0) << r.output;
  const size_t screens = [&] {
    size_t n = 0;
    for (size_t p = r.output.find("\033[H\033[2J"); p != std::string::npos;
         p = r.output.find("\033[H\033[2J", p + 1))
      ++n;
    return n;
  }();
  EXPECT_GE(screens, 1u) << r.output;
  const std::string last = r.output.substr(r.output.rfind("\033[H\033[2J"));
  EXPECT_NE(last.find("dpcnn-status --watch  " + addr), std::string::npos) << last;
  EXPECT_NE(last.find("state       FINISHED"), std::string::npos) << last;
  EXPECT_NE(last.find("validation  val_loss 0.4000 val_accuracy 0.9000"), std::string::npos)
      << last;
  EXPECT_NE(last.find("ETA done"), std::string::npos) << last;
}

// After the launcher has gone (no status.addr), the run's status.json - the
// launcher's last status - is what --run shows; --watch prints its one line
// and the job's verdict; a control call says the job has ended.
TEST_F(StatusTool, FinalStatusAfterTheLauncherEnded) {
  report_a_run(10);
  service->set_state(pb::JOB_STATE_FINISHED, "finished");
  std::ofstream(run / "status.json") << status_json(service->snapshot(), true) << "\n";
  fs::remove(run / "status.addr");
  service->shutdown();
  server->Shutdown(std::chrono::system_clock::now() + 2s);
  testing::Result r = status("--run " + run.string());
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("state       FINISHED"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("result      test_loss 0.3000 test_acc 0.9500"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("(final status from " + (run / "status.json").string() +
                          ": the launcher has ended)\n"),
            std::string::npos)
      << r.output;
  r = status("--watch --run " + run.string());
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(lines(r.output), 1) << r.output;
  EXPECT_EQ(r.output.rfind("FINISHED epoch 2/2 step 60/100", 0), 0u) << r.output;
  r = status("--json --run " + run.string());
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("\"state\": \"JOB_STATE_FINISHED\""), std::string::npos) << r.output;
  r = status("--stop --run " + run.string());
  EXPECT_EQ(r.status, exit_code::kFailure) << r.output;
  EXPECT_EQ(r.output, "dpcnn-status: the job of " + run.string() +
                          " has ended (FINISHED); its final status is " +
                          (run / "status.json").string() + "\n");
  // A damaged status.json is one line too.
  std::ofstream(run / "status.json") << "{\"state\": 12";
  r = status("--run " + run.string());
  EXPECT_EQ(r.status, exit_code::kFailure) << r.output;
  EXPECT_EQ(lines(r.output), 1) << r.output;
  EXPECT_NE(r.output.find("not a final status"), std::string::npos) << r.output;
}

TEST_F(StatusTool, UnreachableLauncherIsOneLineAndExit1) {
  const testing::Result r = status("--addr 127.0.0.1:1 --timeout 1");
  EXPECT_EQ(r.status, exit_code::kFailure) << r.output;
  EXPECT_EQ(r.output,
            "dpcnn-status: no launcher answers at 127.0.0.1:1: it has ended or not started yet "
            "(--timeout S waits for it)\n");
  const testing::Result gone = status("--run " + (tmp / "runs" / "nothing").string());
  EXPECT_NE(gone.status, 0) << gone.output;
  EXPECT_NE(gone.output.find("no run or experiment directory"), std::string::npos) << gone.output;
}

}  // namespace
}  // namespace dpcnn::launcher
