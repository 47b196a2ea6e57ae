// bf16 mixed-precision training in process (one rank): it learns, reruns are
// bit-identical, it stays near the f32 trajectory, and checkpoints move
// between precisions both ways (they hold f32 master weights either way).
// Skipped on a CPU without native bf16 (the product refuses bf16 there).
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>

#include "layers/precision.h"
#include "synthetic_data.h"
#include "train/trainer.h"

namespace dpcnn {
namespace {

namespace fs = std::filesystem;

struct Bf16Training : ::testing::Test {
  void SetUp() override {
    if (!detect_cpu_bf16().isa_bf16) GTEST_SKIP() << "no native bf16 on this CPU";
    runs = fs::temp_directory_path() / ("dpcnn-bf16-test-" + std::to_string(::getpid()));
    dir = testing::synthetic_mnist_dir();
  }
  void TearDown() override { fs::remove_all(runs); }

  struct Out {
    std::vector<float> params;
    std::vector<EpochMetrics> history;
    EvalResult eval;
    int64_t step = 0;
  };
  Out train(Precision p, std::vector<std::string> sets, const std::string& name = "",
            const std::string& resume = "") {
    sets.push_back("data.dir=" + dir);
    sets.push_back("runs_dir=" + runs.string());
    if (!name.empty()) sets.push_back("name=" + name);
    Config cfg = load_config("configs/mnist.yaml", sets);
    auto comm = make_self_communicator();
    const DataSplit data = load_mnist_dir(cfg.data.dir);
    TrainerOptions opts;
    opts.precision = p;
    opts.resume = resume;
    if (!name.empty()) opts.run_dir = (runs / name).string();
    Trainer t(cfg, *comm, data, opts);
    Out o;
    o.eval = t.run();
    o.params.assign(t.model().params(), t.model().params() + t.model().param_count());
    o.history = t.history();
    o.step = t.global_step();
    return o;
  }

  fs::path runs;
  std::string dir;
};

// The seed model in bf16 for 3 epochs of the synthetic digits: the loss falls
// as in f32 (trainer_test's ShortRunLearnsAndWritesMetrics) and the accuracy
// is as high.
TEST_F(Bf16Training, ShortRunLearns) {
  const Out o = train(Precision::kBf16, {"train.epochs=3"});
  ASSERT_EQ(o.history.size(), 3u);
  EXPECT_LT(o.history[2].loss, 0.5 * o.history[0].loss);
  EXPECT_GT(o.eval.accuracy, 0.9);
  EXPECT_EQ(o.eval.count, 203);
}

// Same seed, same precision: the same bits; and bf16 is a different
// computation from f32 (not silently f32).
TEST_F(Bf16Training, RerunsAreBitIdentical) {
  const std::vector<std::string> sets = {"train.max_steps=12", "train.eval=false"};
  const Out a = train(Precision::kBf16, sets), b = train(Precision::kBf16, sets);
  const Out f = train(Precision::kFp32, sets);
  EXPECT_EQ(a.params, b.params);
  EXPECT_NE(a.params, f.params);
}

// A bf16-trained checkpoint resumes in f32 and an f32 one in bf16: both
// continue from the checkpoint's step and end as good as an uninterrupted f32
// run (the weights themselves drift apart, as any change of rounding makes
// them: ReLU kinks and RMSprop's division by small gradients amplify it).
TEST_F(Bf16Training, CheckpointsMoveBetweenPrecisions) {
  auto with = [&](int steps) {
    return std::vector<std::string>{"train.epochs=3", "train.eval=false",
                                    "train.max_steps=" + std::to_string(steps)};
  };
  const Out whole = train(Precision::kFp32, with(24), "whole");
  train(Precision::kBf16, with(12), "b2f");
  const Out b2f = train(Precision::kFp32, with(24), "b2f", "auto");
  train(Precision::kFp32, with(12), "f2b");
  const Out f2b = train(Precision::kBf16, with(24), "f2b", "auto");
  EXPECT_EQ(b2f.step, 24);
  EXPECT_EQ(f2b.step, 24);
  EXPECT_NE(whole.params, b2f.params);  // 12 steps in bf16 left their mark
  std::printf("test accuracy: f32 %.3f, bf16->f32 %.3f, f32->bf16 %.3f\n", whole.eval.accuracy,
              b2f.eval.accuracy, f2b.eval.accuracy);
  EXPECT_GT(whole.eval.accuracy, 0.8);
  EXPECT_GT(b2f.eval.accuracy, whole.eval.accuracy - 0.05);
  EXPECT_GT(f2b.eval.accuracy, whole.eval.accuracy - 0.05);
}

}  // namespace
}  // namespace dpcnn
