// dpcnn-train against hostile configs, data, checkpoints and command lines, and
// against faults (a second writer, a full disk, kill -9): every case gets its
// documented exit code and one line naming the culprit, and no earlier run's
// file is created, changed, moved or deleted by a failing command.
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <thread>

#include "../integration/synthetic_data.h"
#include "checkpoint/checkpoint.h"
#include "core/exit_codes.h"
#include "data/idx.h"
#include "robustness_testing.h"

namespace dpcnn {
namespace {

namespace fs = std::filesystem;
using testing::expect_one_line;
using testing::slurp;
using testing::snapshot;

struct Outcome {
  int status = -1;
  std::string out, err;
};

class WorkerRobustness : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("dpcnn-robust-" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
    data_ = testing::synthetic_mnist_dir();
    // An earlier run of the same name that every case must leave untouched.
    const Outcome r = train("train.max_steps=3 train.eval=false");
    ASSERT_EQ(r.status, 0) << r.out << r.err;
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }

  // dpcnn-train on mnist-small with our data and runs dir; stdout and stderr apart.
  static Outcome train(const std::string& sets, const std::string& extra = "",
                       const std::string& config = "configs/mnist-small.yaml",
                       const std::string& runs = "") {
    static int n = 0;
    const std::string out = (root_ / ("out" + std::to_string(n))).string(),
                      err = (root_ / ("err" + std::to_string(n++))).string();
    const std::string cmd = std::string(DPCNN_BIN_DIR) + "/dpcnn-train --config " + config +
                            " --set data.dir=" + data_ +
                            " runs_dir=" + (runs.empty() ? (root_ / "runs").string() : runs) +
                            " distributed.threads_per_rank=1 " + sets + " " + extra + " >" + out +
                            " 2>" + err + " </dev/null";
    const int st = std::system(cmd.c_str());
    Outcome r{WIFEXITED(st) ? WEXITSTATUS(st) : 128, slurp(out), slurp(err)};
    return r;
  }

  // dpcnn-train on mnist-small in the background (its pid is the worker's:
  // the shell execs it), output to `log`.
  static pid_t spawn(const std::string& sets, const std::string& runs, const std::string& log) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      const std::string cmd =
          std::string("exec ") + DPCNN_BIN_DIR +
          "/dpcnn-train --config configs/mnist-small.yaml --set data.dir=" + data_ +
          " runs_dir=" + runs + " distributed.threads_per_rank=1 " + sets + " >" + log + " 2>&1";
      ::execl("/bin/sh", "sh", "-c", cmd.c_str(), nullptr);
      ::_exit(127);
    }
    return pid;
  }

  static std::string runs() { return (root_ / "runs").string(); }
  static std::string newest_checkpoint_of(const std::string& run_dir) {
    return resolve_checkpoint_path(run_dir + "/checkpoints");
  }

  static fs::path root_;
  static std::string data_;
};
fs::path WorkerRobustness::root_;
std::string WorkerRobustness::data_;

// A copy of the synthetic data with one file replaced by `bytes`.
std::string data_with(const fs::path& root, const std::string& data, const std::string& file,
                      const std::string& bytes) {
  const fs::path d = root / ("data-" + file);
  fs::remove_all(d);
  fs::copy(data, d);
  std::ofstream(d / file, std::ios::binary | std::ios::trunc) << bytes;
  return d.string();
}

struct Case {
  const char* name;
  std::string sets, extra, config;
  int code;
  std::string needle;
};

TEST_F(WorkerRobustness, HostileInputsGetOneLineAndChangeNothing) {
  const fs::path cfgs = root_ / "configs";
  fs::create_directories(cfgs);
  std::ofstream(cfgs / "syntax.yaml") << "name: x\ntrain: [1,\n";
  std::ofstream(cfgs / "binary.yaml", std::ios::binary)
      << std::string("\x00\xff\xfe\x01garbage", 11);
  std::ofstream(cfgs / "empty.yaml") << "";
  fs::create_directories(cfgs / "dir.yaml");
  const std::string images = slurp(fs::path(data_) / "train-images-idx3-ubyte");
  const std::string truncated =
      data_with(root_, data_, "train-images-idx3-ubyte", images.substr(0, images.size() / 2));
  std::string labels = slurp(fs::path(data_) / "train-labels-idx1-ubyte");
  labels[8 + 5] = static_cast<char>(200);
  const std::string bad_label = data_with(root_, data_, "train-labels-idx1-ubyte", labels);
  const std::string not_idx = data_with(root_, data_, "t10k-images-idx3-ubyte", "hello");
  // A damaged copy of the earlier run's checkpoint, and one of another model.
  const std::string ckpt = newest_checkpoint_of(runs() + "/mnist-small/version_0");
  std::string bytes = slurp(ckpt);
  bytes[bytes.size() / 2] ^= 0x55;
  std::ofstream(root_ / "damaged.pb", std::ios::binary) << bytes;
  const Outcome other = train("name=other train.max_steps=1 train.eval=false", "",
                              "configs/mnist.yaml", (root_ / "other-runs").string());
  ASSERT_EQ(other.status, 0) << other.err;
  const std::string other_ckpt =
      newest_checkpoint_of((root_ / "other-runs/other/version_0").string());

  const int kBad = exit_code::kBadInput;
  const std::vector<Case> cases = {
      {"yaml syntax", "", "", (cfgs / "syntax.yaml").string(), kBad, "YAML syntax error"},
      {"binary config", "", "", (cfgs / "binary.yaml").string(), kBad, "binary.yaml"},
      {"config is a directory", "", "", (cfgs / "dir.yaml").string(), kBad, "dir.yaml"},
      {"missing config", "", "", (cfgs / "nope.yaml").string(), kBad, "nope.yaml"},
      {"unknown key", "optimizer.lerning_rate=0.1", "", "", kBad, "lerning_rate"},
      {"wrong type", "train.batch_size=sixty", "", "", kBad, "train.batch_size"},
      {"negative epochs", "train.epochs=-1", "", "", kBad, "train.epochs"},
      {"zero batch", "train.batch_size=0", "", "", kBad, "train.batch_size"},
      {"unknown layer", "model.layers[0].type=conv3d", "", "", kBad, "conv3d"},
      {"kernel larger than input", "model.layers[0].kernel=40", "", "", kBad, "kernel"},
      {"input does not match data", "model.input=[1,32,32]", "", "", kBad, "model.input"},
      {"malformed --set", "novalue", "", "", kBad, "key=value"},
      {"layer too large for memory", "model.layers[0].filters=100000000", "", "", kBad,
       "model.layers[0]"},
      {"batch larger than memory", "train.batch_size=4000000000", "", "", kBad, "train.batch_size"},
      {"missing data", "data.dir=" + (root_ / "nodata").string(), "", "", kBad, "missing"},
      {"truncated images", "data.dir=" + truncated, "", "", kBad, "truncated"},
      {"label out of range", "data.dir=" + bad_label, "", "", kBad, "label 200"},
      {"not an IDX file", "data.dir=" + not_idx, "", "", kBad, "t10k-images-idx3-ubyte"},
      {"unknown flag", "", "--bogus", "", kBad, "--bogus"},
      {"bad --progress", "", "--progress fancy", "", kBad, "--progress"},
      {"resume missing file", "", "--resume " + (root_ / "none.pb").string(), "", kBad, "none.pb"},
      {"resume damaged checkpoint", "", "--resume " + (root_ / "damaged.pb").string(), "", kBad,
       "damaged.pb"},
      {"resume another model", "", "--resume " + other_ckpt, "", kBad, "ckpt-"},
      {"resume with another batch", "train.batch_size=16", "--resume auto", "", kBad,
       "train.batch_size"},
      {"resume with another optimizer", "optimizer.type=sgd", "--resume auto", "", kBad,
       "optimizer.type"},
      {"evaluate a run that never ran", "name=never", "--evaluate-only", "", kBad, "no checkpoint"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const auto before = snapshot(root_ / "runs");
    const Outcome r =
        train(c.sets, c.extra, c.config.empty() ? "configs/mnist-small.yaml" : c.config);
    EXPECT_EQ(r.status, c.code) << r.out << r.err;
    expect_one_line(r.err, "dpcnn-train", c.needle);
    EXPECT_EQ(snapshot(root_ / "runs"), before) << "a failing command changed the runs directory";
  }
}

// Three runs of one name and an evaluation: every run keeps every file; the
// evaluation writes nothing and scores the newest run's checkpoint.
TEST_F(WorkerRobustness, RerunsAndEvaluationNeverTouchEarlierRuns) {
  const std::string r = (root_ / "rerun-runs").string();
  std::vector<std::map<std::string, std::string>> done;
  for (int i = 0; i < 3; ++i) {
    const Outcome run = train("train.max_steps=" + std::to_string(2 + i) + " train.eval=false", "",
                              "configs/mnist-small.yaml", r);
    ASSERT_EQ(run.status, 0) << run.err;
    EXPECT_NE(run.out.find("run directory: " + r + "/mnist-small/version_" + std::to_string(i)),
              std::string::npos)
        << run.out;
    for (int j = 0; j < i; ++j)
      EXPECT_EQ(snapshot(r + "/mnist-small/version_" + std::to_string(j)), done[j]) << "run " << j;
    done.push_back(snapshot(r + "/mnist-small/version_" + std::to_string(i)));
  }
  const auto before = snapshot(r);
  const Outcome eval = train("train.eval=false", "--evaluate-only", "configs/mnist-small.yaml", r);
  EXPECT_EQ(eval.status, 0) << eval.err;
  EXPECT_NE(eval.out.find("version_2"), std::string::npos) << eval.out;
  EXPECT_NE(eval.out.find("(4 steps done)"), std::string::npos) << eval.out;
  EXPECT_EQ(snapshot(r), before);
}

// Two writers on one run directory: the second is refused with the holder's
// PID, and the first finishes undisturbed.
TEST_F(WorkerRobustness, SecondWriterIsRefusedWithTheHoldersPid) {
  const std::string r = (root_ / "lock-runs").string();
  ASSERT_EQ(train("train.max_steps=1 train.eval=false", "", "configs/mnist-small.yaml", r).status,
            0);
  const std::string log = (root_ / "first.log").string();
  const pid_t pid = spawn("train.max_steps=150 train.eval=false --resume auto", r, log);
  // Wait until the first one owns the directory.
  for (int i = 0; i < 600 && slurp(log).find("resuming from") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const Outcome second =
      train("train.max_steps=150 train.eval=false", "--resume auto", "configs/mnist-small.yaml", r);
  EXPECT_EQ(second.status, exit_code::kBusy) << second.out << second.err;
  expect_one_line(second.err, "dpcnn-train", "pid " + std::to_string(pid));
  int st = 0;
  ::waitpid(pid, &st, 0);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << slurp(log);  // 5 epochs of 16 steps
  EXPECT_NE(slurp(log).find("ckpt-0000000080.pb"), std::string::npos) << slurp(log);
}

// kill -9 while checkpointing every step: the newest checkpoint loads and
// --resume auto continues from it.
TEST_F(WorkerRobustness, KilledWorkerLeavesALoadableCheckpoint) {
  const std::string r = (root_ / "kill-runs").string();
  const std::string log = (root_ / "kill.log").string();
  const pid_t pid = spawn("train.eval=false checkpoint.every_steps=1", r, log);
  for (int i = 0; i < 600 && slurp(log).find("ckpt-0000000020.pb") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  CheckpointData c;
  std::string path;
  ASSERT_TRUE(
      CheckpointDir(r + "/mnist-small/version_0/checkpoints").load_newest_valid("", &c, &path))
      << slurp(log);
  EXPECT_GE(c.global_step, 20);
  const Outcome resumed =
      train("train.max_steps=" + std::to_string(c.global_step + 2) + " train.eval=false",
            "--resume auto", "configs/mnist-small.yaml", r);
  EXPECT_EQ(resumed.status, 0) << resumed.err;
  EXPECT_NE(resumed.out.find("(" + std::to_string(c.global_step) + " steps done)"),
            std::string::npos)
      << resumed.out;
}

// SIGTERM (scancel, a scheduler's preemption, Ctrl-C through mpirun): the
// worker stops at the next step boundary with a checkpoint of that step, exits
// 0, and --resume auto continues from exactly there.
TEST_F(WorkerRobustness, SigtermStopsWithACheckpointThatResumeContinues) {
  const std::string r = (root_ / "term-runs").string();
  const std::string log = (root_ / "term.log").string();
  const pid_t pid = spawn("train.eval=false train.max_steps=100000", r, log);
  for (int i = 0; i < 600 && slurp(log).find("Epoch 1/") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // a few steps in
  ::kill(pid, SIGTERM);
  int st = 0;
  ::waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFEXITED(st)) << "killed by the signal\n" << slurp(log);
  EXPECT_EQ(WEXITSTATUS(st), 0) << slurp(log);
  std::smatch m;
  const std::string out = slurp(log);
  ASSERT_TRUE(std::regex_search(out, m, std::regex("stopped at step ([0-9]+) \\(SIGTERM"))) << out;
  const int64_t step = std::stoll(m[1].str());
  CheckpointData c;
  std::string path;
  ASSERT_TRUE(
      CheckpointDir(r + "/mnist-small/version_0/checkpoints").load_newest_valid("", &c, &path))
      << out;
  EXPECT_EQ(c.global_step, step);
  const Outcome resumed = train("train.max_steps=" + std::to_string(step + 2) + " train.eval=false",
                                "--resume auto", "configs/mnist-small.yaml", r);
  EXPECT_EQ(resumed.status, 0) << resumed.err;
  EXPECT_NE(resumed.out.find("(" + std::to_string(step) + " steps done)"), std::string::npos)
      << resumed.out;
}

// A full disk (a 12 MB tmpfs; each mnist-small checkpoint with Adam's state is
// about 8 MB): one line naming the file, exit 1, no temp file left, and the
// newest checkpoint on the disk still loads.
TEST_F(WorkerRobustness, FullDiskIsOneLineAndKeepsTheNewestCheckpoint) {
  const fs::path mnt = root_ / "small-disk";
  fs::create_directories(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=12m") != 0)
    GTEST_SKIP() << "cannot mount a tmpfs here (needs root): " << std::strerror(errno);
  const Outcome r = train("train.max_steps=6 train.eval=false checkpoint.every_steps=2", "",
                          "configs/mnist-small.yaml", mnt.string());
  EXPECT_EQ(r.status, exit_code::kFailure) << r.out << r.err;
  expect_one_line(r.err, "dpcnn-train", "No space left on device");
  const std::string ck = (mnt / "mnist-small/version_0/checkpoints").string();
  for (const auto& e : fs::directory_iterator(ck))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
  CheckpointData c;
  std::string path;
  EXPECT_TRUE(CheckpointDir(ck).load_newest_valid("", &c, &path));
  EXPECT_EQ(c.global_step, 2);
  ::umount(mnt.c_str());
}

// max_steps on an epoch boundary ends the run there: no empty epoch is logged.
TEST_F(WorkerRobustness, MaxStepsOnAnEpochBoundaryLogsNoEmptyEpoch) {
  const std::string r = (root_ / "boundary-runs").string();
  const Outcome run =
      train("train.max_steps=32 train.eval=false", "", "configs/mnist-small.yaml", r);
  ASSERT_EQ(run.status, 0) << run.err;  // 512 samples / 32 = 16 steps an epoch
  const std::string metrics = slurp(r + "/mnist-small/version_0/metrics.jsonl");
  EXPECT_EQ(std::count(metrics.begin(), metrics.end(), '\n'), 2) << metrics;
  EXPECT_EQ(run.out.find("Epoch 3/"), std::string::npos) << run.out;
}

// Resuming with a changed setting lists it and uses the new value; resuming a
// complete run says so and trains nothing.
TEST_F(WorkerRobustness, ResumeListsChangedSettingsAndKnowsWhenARunIsComplete) {
  const std::string r = (root_ / "resume-runs").string();
  ASSERT_EQ(train("train.max_steps=3 train.eval=false", "", "configs/mnist-small.yaml", r).status,
            0);
  const Outcome lr = train("train.max_steps=6 train.eval=false optimizer.learning_rate=3e-4",
                           "--resume auto", "configs/mnist-small.yaml", r);
  ASSERT_EQ(lr.status, 0) << lr.err;
  EXPECT_NE(lr.out.find("optimizer.learning_rate differs from the checkpoint's (1.0e-3 -> 3e-4); "
                        "using 3e-4"),
            std::string::npos)
      << lr.out;
  const std::string metrics = slurp(r + "/mnist-small/version_0/metrics.jsonl");
  EXPECT_NE(metrics.find("\"lr\":0.0003"), std::string::npos) << metrics;
  const auto before = snapshot(r);
  const Outcome again = train("train.max_steps=6 train.eval=false optimizer.learning_rate=3e-4",
                              "--resume auto", "configs/mnist-small.yaml", r);
  EXPECT_EQ(again.status, 0) << again.err;
  EXPECT_NE(again.out.find("already complete at step 6 of 6"), std::string::npos) << again.out;
  EXPECT_EQ(snapshot(r), before);
}

}  // namespace
}  // namespace dpcnn
