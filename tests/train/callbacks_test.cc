// The trainer's epoch-end evaluation and callbacks on real (synthetic) data:
// held-out validation named val_*, the per-epoch test set named test_*,
// early stopping, checkpoints/best, and resuming after an early stop.
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "checkpoint/checkpoint.h"
#include "checkpoint/saved_model.h"
#include "core/error.h"
#include "synthetic_data.h"
#include "train/load_data.h"
#include "train/trainer.h"

namespace dpcnn {
namespace {

namespace fs = std::filesystem;

struct CallbacksTest : ::testing::Test {
  void SetUp() override {
    runs = fs::temp_directory_path() / ("dpcnn-callbacks-test-" + std::to_string(::getpid()));
  }
  void TearDown() override { fs::remove_all(runs); }

  // Trains configs/mnist-small.yaml on the synthetic set with `sets`.
  std::unique_ptr<Trainer> train(std::vector<std::string> sets, const std::string& resume = "") {
    sets.push_back("data.dir=" + testing::synthetic_mnist_dir());
    sets.push_back("runs_dir=" + runs.string());
    sets.push_back("name=t");
    cfg = std::make_unique<Config>(load_config("configs/mnist-small.yaml", sets));
    comm = make_self_communicator();
    data = std::make_unique<DataSplit>(load_job_data(*cfg, *comm));
    TrainerOptions opts;
    opts.run_dir = (runs / "t").string();
    opts.resume = resume;
    auto t = std::make_unique<Trainer>(*cfg, *comm, *data, opts);
    t->run();
    return t;
  }

  std::vector<std::string> metrics_lines() {
    std::ifstream f(runs / "t" / "metrics.jsonl");
    std::vector<std::string> out;
    for (std::string line; std::getline(f, line);) out.push_back(line);
    return out;
  }

  fs::path runs;
  std::unique_ptr<Config> cfg;
  std::unique_ptr<Communicator> comm;
  std::unique_ptr<DataSplit> data;
};

bool has(const std::string& s, const std::string& what) {
  return s.find(what) != std::string::npos;
}

TEST_F(CallbacksTest, ValidationIsHeldOutAndNamedValTestIsNamedTest) {
  auto t = train({"train.epochs=2", "train.validation_split=0.25"});
  EXPECT_EQ(data->val.count, 128);  // of 512
  EXPECT_EQ(data->train.count, 384);
  EXPECT_EQ(t->global_step(), 2 * 12);  // 384 / 32 a step
  ASSERT_EQ(t->history().size(), 2u);
  EXPECT_GE(t->history()[1].val_accuracy, 0);
  EXPECT_LT(t->history()[1].test_accuracy, 0);  // not asked for
  for (const auto& line : metrics_lines()) {
    EXPECT_TRUE(has(line, "\"val_loss\"") && has(line, "\"val_accuracy\"")) << line;
    EXPECT_FALSE(has(line, "test_")) << line;
  }
  // The per-epoch validation score is exactly evaluate_validation's.
  EXPECT_EQ(t->evaluate_validation().accuracy, t->history()[1].val_accuracy);

  fs::remove_all(runs);
  t = train({"train.epochs=1", "train.test_each_epoch=true"});
  EXPECT_EQ(data->val.count, 0);
  EXPECT_LT(t->history()[0].val_accuracy, 0);
  EXPECT_EQ(t->history()[0].test_accuracy, t->evaluate().accuracy);
  for (const auto& line : metrics_lines()) {
    EXPECT_TRUE(has(line, "\"test_loss\"") && has(line, "\"test_accuracy\"")) << line;
    EXPECT_FALSE(has(line, "val_")) << line;
  }

  fs::remove_all(runs);
  t = train({"train.epochs=1"});  // as the seed's fit(): no per-epoch evaluation
  for (const auto& line : metrics_lines())
    EXPECT_FALSE(has(line, "val_") || has(line, "test_")) << line;
}

// A learning rate of 1e-30 leaves every weight as it is, so val_loss is the
// same each epoch: epoch 1 is the best and, with patience 2, training stops
// after epoch 3 - as Keras's EarlyStopping would.
TEST_F(CallbacksTest, EarlyStoppingStopsAtTheRightEpochAndBestSurvivesRotation) {
  const std::vector<std::string> sets = {"train.epochs=10", "train.validation_split=0.2",
                                         "optimizer.learning_rate=1e-30", "checkpoint.keep=1",
                                         "train.early_stopping.patience=2"};
  auto t = train(sets);
  EXPECT_TRUE(t->early_stopped());
  ASSERT_EQ(t->history().size(), 3u);
  const int64_t per_epoch = (512 - 102 + 31) / 32;  // 410 training samples
  EXPECT_EQ(t->global_step(), 3 * per_epoch);
  EXPECT_TRUE(t->history()[0].best);
  EXPECT_FALSE(t->history()[1].best);
  const std::string dir = (runs / "t" / "checkpoints").string();
  // keep=1: only the final checkpoint and the best one (epoch 1) are left.
  EXPECT_EQ(CheckpointDir(dir).best_name(), CheckpointDir::file_name(per_epoch));
  EXPECT_EQ(CheckpointDir(dir).list(),
            (std::vector<std::string>{dir + "/" + CheckpointDir::file_name(3 * per_epoch),
                                      dir + "/" + CheckpointDir::file_name(per_epoch)}));
  const auto lines = metrics_lines();
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_TRUE(has(lines[0], "\"best\":true"));
  // dpcnn-predict and dpcnn-export read best, and say so.
  const SavedModel m = open_saved_model((runs / "t").string());
  EXPECT_EQ(m.path, dir + "/" + CheckpointDir::file_name(per_epoch));
  EXPECT_TRUE(has(m.note, "best"));
  EXPECT_EQ(m.global_step, per_epoch);

  // Resuming the stopped run trains nothing: it stays stopped.
  t = train(sets, "auto");
  EXPECT_TRUE(t->early_stopped());
  EXPECT_EQ(t->global_step(), 3 * per_epoch);
  EXPECT_EQ(t->history().size(), 3u);

  // With more patience it trains on, until patience 4 runs out after epoch 5.
  std::vector<std::string> more = sets;
  more.back() = "train.early_stopping.patience=4";
  t = train(more, "auto");
  EXPECT_TRUE(t->early_stopped());
  EXPECT_EQ(t->history().size(), 5u);
  EXPECT_EQ(t->global_step(), 5 * per_epoch);
  EXPECT_EQ(CheckpointDir(dir).best_name(), CheckpointDir::file_name(per_epoch));
  EXPECT_TRUE(fs::exists(dir + "/" + CheckpointDir::file_name(per_epoch)));
}

TEST_F(CallbacksTest, MonitoringAMetricNobodyComputesIsAConfigError) {
  try {
    load_config("configs/mnist-small.yaml", {"train.early_stopping.patience=2"});
    FAIL();
  } catch (const Error& e) {
    EXPECT_TRUE(has(e.what(), "train.early_stopping")) << e.what();
    EXPECT_TRUE(has(e.what(), "validation_split")) << e.what();
  }
  EXPECT_THROW(load_config("configs/mnist-small.yaml", {"train.early_stopping.monitor=test_loss"}),
               Error);
  EXPECT_NO_THROW(load_config("configs/mnist-small.yaml", {"train.early_stopping.monitor=test_loss",
                                                           "train.test_each_epoch=true"}));
  EXPECT_THROW(load_config("configs/mnist-small.yaml", {"train.validation_split=1"}), Error);
}

}  // namespace
}  // namespace dpcnn
