#include "train/early_stopping.h"

#include <gtest/gtest.h>

#include <vector>

namespace dpcnn {
namespace {

EpochMetrics epoch(int e, double val_loss, double val_acc = -1) {
  EpochMetrics m;
  m.epoch = e;
  m.val_loss = val_loss;
  m.val_accuracy = val_acc;
  return m;
}

// The epoch after which it stops (0: never), feeding `losses` as val_loss.
int stop_epoch(EarlyStoppingConfig c, const std::vector<double>& values, bool accuracy = false) {
  c.enabled = true;
  EarlyStopping es(c);
  for (size_t i = 0; i < values.size(); ++i) {
    const int e = static_cast<int>(i) + 1;
    if (es.on_epoch_end(accuracy ? epoch(e, -1, values[i]) : epoch(e, values[i]))) return e;
  }
  return 0;
}

// Expected epochs are what keras.callbacks.EarlyStopping (2.11) gives on the
// same sequences: wait counts epochs since the best, stop once wait >= patience.
TEST(EarlyStopping, StopsAsKerasDoes) {
  EarlyStoppingConfig c;
  c.patience = 2;
  EXPECT_EQ(stop_epoch(c, {1.0, 0.9, 0.95, 0.91, 0.8}), 4);
  EXPECT_EQ(stop_epoch(c, {1.0, 0.9, 0.95, 0.85, 0.86, 0.87, 0.1}), 6);
  EXPECT_EQ(stop_epoch(c, {1.0, 0.9, 0.8, 0.7}), 0);
  c.patience = 0;  // the first epoch that does not improve
  EXPECT_EQ(stop_epoch(c, {1.0, 0.9, 0.9}), 3);
  EXPECT_EQ(stop_epoch(c, {1.0, 1.0}), 2);
  // min_delta: improving by 0.005 < 0.01 does not count.
  c.patience = 1;
  c.min_delta = 0.01f;
  EXPECT_EQ(stop_epoch(c, {1.0, 0.995, 0.9}), 2);
  EXPECT_EQ(stop_epoch(c, {1.0, 0.98, 0.9}), 0);
}

TEST(EarlyStopping, AccuracyIsMaximisedInAutoMode) {
  EarlyStoppingConfig c;
  c.monitor = "val_accuracy";
  c.patience = 1;
  EXPECT_EQ(stop_epoch(c, {0.5, 0.6, 0.7, 0.8}, true), 0);
  EXPECT_EQ(stop_epoch(c, {0.5, 0.6, 0.55, 0.8}, true), 3);
  c.mode = "min";  // explicit mode wins
  EXPECT_EQ(stop_epoch(c, {0.5, 0.6, 0.7}, true), 2);
}

TEST(EarlyStopping, EpochsWithoutTheMetricAreIgnoredAndTheReasonNamesTheBest) {
  EarlyStoppingConfig c;
  c.enabled = true;
  c.patience = 1;
  EarlyStopping es(c);
  EXPECT_FALSE(es.on_epoch_end(epoch(1, 0.5)));
  EXPECT_FALSE(es.on_epoch_end(epoch(2, -1)));  // not evaluated
  EXPECT_TRUE(es.on_epoch_end(epoch(3, 0.6)));
  EXPECT_EQ(es.stopped_epoch(), 3);
  EXPECT_NE(es.reason().find("best 0.5000 at epoch 1"), std::string::npos) << es.reason();
  EarlyStopping off(EarlyStoppingConfig{});
  EXPECT_FALSE(off.on_epoch_end(epoch(1, 1)));
  EXPECT_FALSE(off.on_epoch_end(epoch(2, 2)));
}

TEST(BestTracker, StrictImprovementLikeModelCheckpointSaveBestOnly) {
  BestTracker b("val_loss", "auto");
  EXPECT_TRUE(b.improves(epoch(1, 0.5)));
  EXPECT_FALSE(b.improves(epoch(2, 0.5)));
  EXPECT_TRUE(b.improves(epoch(3, 0.4)));
  EXPECT_FALSE(b.improves(epoch(4, -1)));
  EXPECT_EQ(b.best_epoch(), 3);
  BestTracker none("", "auto");
  EXPECT_FALSE(none.improves(epoch(1, 0.1)));
}

TEST(BestMonitor, AutoFollowsEarlyStoppingThenTheValidationSplit) {
  Config c;
  EXPECT_EQ(best_monitor(c), "");
  c.train.validation_split = 0.1f;
  EXPECT_EQ(best_monitor(c), "val_loss");
  c.train.early_stopping.enabled = true;
  c.train.early_stopping.monitor = "val_accuracy";
  EXPECT_EQ(best_monitor(c), "val_accuracy");
  c.checkpoint.best_monitor = "none";
  EXPECT_EQ(best_monitor(c), "");
}

}  // namespace
}  // namespace dpcnn
