#include "train/trainer.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "synthetic_data.h"

namespace dpcnn {
namespace {

namespace fs = std::filesystem;

TEST(RankSlice, ContiguousCoveringAndBalanced) {
  for (int total : {1, 7, 64, 65, 203}) {
    for (int ranks = 1; ranks <= 5 && ranks <= total; ++ranks) {
      int64_t next = 0;
      int lo = total, hi = 0;
      for (int r = 0; r < ranks; ++r) {
        Slice s = rank_slice(total, r, ranks);
        EXPECT_EQ(s.begin, next);
        next += s.n;
        lo = std::min(lo, s.n);
        hi = std::max(hi, s.n);
      }
      EXPECT_EQ(next, total);
      EXPECT_LE(hi - lo, 1);
    }
  }
}

struct TrainerTest : ::testing::Test {
  void SetUp() override {
    runs = fs::temp_directory_path() / ("dpcnn-trainer-test-" + std::to_string(::getpid()));
  }
  void TearDown() override { fs::remove_all(runs); }
  fs::path runs;
};

// A short end-to-end run of the seed model: the loss falls, the test accuracy
// is far above chance, and the run directory gets its metrics and plot.
TEST_F(TrainerTest, ShortRunLearnsAndWritesMetrics) {
  const std::string dir = testing::synthetic_mnist_dir();
  Config cfg = load_config("configs/mnist.yaml",
                           {"data.dir=" + dir, "train.epochs=3", "train.test_each_epoch=true",
                            "runs_dir=" + runs.string(), "name=t"});
  auto comm = make_self_communicator();
  const DataSplit data = load_mnist_dir(cfg.data.dir);
  TrainerOptions opts;
  opts.run_dir = (runs / "t").string();
  Trainer t(cfg, *comm, data, opts);
  const EvalResult r = t.run();
  ASSERT_EQ(t.history().size(), 3u);
  EXPECT_LT(t.history()[2].loss, 0.5 * t.history()[0].loss);
  EXPECT_GT(r.accuracy, 0.9);
  EXPECT_EQ(r.count, 203);
  EXPECT_EQ(t.global_step(), 3 * 8);  // 512 samples / 64 a step
  std::ifstream metrics(runs / "t" / "metrics.jsonl");
  std::string line;
  int lines = 0;
  while (std::getline(metrics, line)) {
    ++lines;
    EXPECT_NE(line.find("\"test_accuracy\""), std::string::npos);  // no validation split
    EXPECT_EQ(line.find("\"val_accuracy\""), std::string::npos);
  }
  EXPECT_EQ(lines, 3);
  std::ifstream svg(runs / "t" / "curves.svg");
  std::string text((std::istreambuf_iterator<char>(svg)), {});
  EXPECT_NE(text.find("<polyline"), std::string::npos);
}

// max_steps that ends the first epoch early (10 of its 16 steps): the
// epoch's progress line ends at 10/10, not at the epoch's 16.
TEST_F(TrainerTest, MaxStepsEndsTheProgressBarAtTheTrueCount) {
  const std::string dir = testing::synthetic_mnist_dir();
  Config cfg = load_config(
      "configs/mnist-small.yaml",
      {"data.dir=" + dir, "train.max_steps=10", "train.eval=false", "runs_dir=" + runs.string()});
  auto comm = make_self_communicator();
  const DataSplit data = load_mnist_dir(cfg.data.dir);
  TrainerOptions opts;
  opts.run_dir = (runs / "bar").string();
  Trainer t(cfg, *comm, data, opts);
  ::testing::internal::CaptureStdout();
  t.run();
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(t.global_step(), 10);
  EXPECT_NE(out.find("Epoch 1/5\n10/10 [==============================] - "), std::string::npos)
      << out;
  EXPECT_EQ(out.find("/16"), std::string::npos) << out;
  EXPECT_EQ(out.find("Epoch 2/5"), std::string::npos) << out;
}

TEST_F(TrainerTest, SameSeedSameWeightsOtherSeedOtherWeights) {
  const std::string dir = testing::synthetic_mnist_dir();
  auto run = [&](int seed) {
    Config cfg = load_config("configs/mnist-small.yaml",
                             {"data.dir=" + dir, "train.max_steps=10", "train.eval=false",
                              "runs_dir=" + runs.string(), "seed=" + std::to_string(seed)});
    auto comm = make_self_communicator();
    const DataSplit data = load_mnist_dir(cfg.data.dir);
    Trainer t(cfg, *comm, data);
    t.run();
    return std::vector<float>(t.model().params(), t.model().params() + t.model().param_count());
  };
  const auto a = run(1), b = run(1), c = run(2);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST_F(TrainerTest, LastPartialBatchIsTrainedNotDropped) {
  const std::string dir = testing::synthetic_mnist_dir(100, 10);
  Config cfg = load_config("configs/mnist-small.yaml",
                           {"data.dir=" + dir, "train.epochs=1", "train.batch_size=32",
                            "train.eval=false", "runs_dir=" + runs.string()});
  auto comm = make_self_communicator();
  const DataSplit data = load_mnist_dir(cfg.data.dir);
  Trainer t(cfg, *comm, data);
  t.run();
  EXPECT_EQ(t.global_step(), 4);  // 32 + 32 + 32 + 4
}

// Stop after step k (here: max_steps, which checkpoints where it ends), resume,
// and finish: the weights are bit-identical to an uninterrupted run. k falls
// mid-epoch, so the resumed run must restart inside the epoch's order.
TEST_F(TrainerTest, ResumeMidEpochIsBitIdentical) {
  const std::string dir = testing::synthetic_mnist_dir();
  auto run = [&](const std::string& name, int max_steps, const std::string& resume) {
    Config cfg =
        load_config("configs/mnist.yaml", {"data.dir=" + dir, "train.epochs=3", "train.eval=false",
                                           "runs_dir=" + runs.string(), "name=" + name,
                                           "train.max_steps=" + std::to_string(max_steps)});
    auto comm = make_self_communicator();
    const DataSplit data = load_mnist_dir(cfg.data.dir);
    TrainerOptions opts;
    opts.resume = resume;
    opts.run_dir = (runs / name).string();
    Trainer t(cfg, *comm, data, opts);
    t.run();
    return std::vector<float>(t.model().params(), t.model().params() + t.model().param_count());
  };
  const auto whole = run("whole", 20, "");
  run("split", 11, "");  // 11 = one epoch of 8 steps + 3
  EXPECT_TRUE(fs::exists(runs / "split" / "checkpoints" / "ckpt-0000000011.pb"));
  const auto resumed = run("split", 20, "auto");
  EXPECT_EQ(whole, resumed);
  // The metrics log holds the history up to the checkpoint, then the rest.
  std::ifstream metrics(runs / "split" / "metrics.jsonl");
  int lines = 0;
  for (std::string line; std::getline(metrics, line);) ++lines;
  EXPECT_EQ(lines, 4);  // epoch 1, the partial epoch 2 of the first run, then 2 and 3
}

TEST_F(TrainerTest, ResumeFromDamagedExplicitPathIsAnError) {
  const std::string dir = testing::synthetic_mnist_dir();
  fs::create_directories(runs);
  const std::string bad = (runs / "bad.pb").string();
  std::ofstream(bad) << "not a checkpoint";
  Config cfg = load_config("configs/mnist.yaml", {"data.dir=" + dir, "runs_dir=" + runs.string()});
  auto comm = make_self_communicator();
  const DataSplit data = load_mnist_dir(cfg.data.dir);
  TrainerOptions opts;
  opts.resume = bad;
  try {
    Trainer t(cfg, *comm, data, opts);
    FAIL() << "a damaged checkpoint was loaded";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("bad.pb"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace dpcnn
