// Held-out validation and augmentation under real mpirun: 1, 2 and 4 ranks
// hold out the same samples and see the same augmented images (so they train
// the same model), and a rerun is bit-identical.
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <regex>

#include "process_testing.h"
#include "synthetic_data.h"

namespace dpcnn {
namespace {

namespace fs = std::filesystem;

using testing::read_floats;
using testing::relative_difference;
using testing::Result;
using testing::sh;

class TrainMpiAugment : public testing::WorkerTest {
 protected:
  TrainMpiAugment() : WorkerTest("dpcnn-mpi-augment-test") {}
  void SetUp() override {
    WorkerTest::SetUp();
    data = testing::synthetic_mnist_dir();
  }

  Result train(int np, const std::string& sets, std::vector<float>* params) {
    return WorkerTest::train(np, "configs/mnist-small.yaml", "data.dir=" + data + " " + sets,
                             params);
  }

  std::string data;
};

// The last "val_accuracy: x" of a run's output.
std::string last_val_accuracy(const std::string& out) {
  std::string v;
  const std::regex re("val_accuracy: ([0-9.]+)");
  for (std::sregex_iterator it(out.begin(), out.end(), re), end; it != end; ++it) v = (*it)[1];
  return v;
}

// SGD as in TrainMpi.OneTwoFourRanksTrainTheSameModel (see there why), with
// shifts, rotations and zoom on every training image and 20% held out.
const char* kSets =
    "train.epochs=2 train.validation_split=0.2 optimizer.type=sgd optimizer.learning_rate=0.05 "
    "optimizer.momentum=0.9 data.augment.shift=2.5 data.augment.rotation=10 "
    "data.augment.scale=0.1 train.precision=fp32";  // fp32: equal across rank counts

TEST_F(TrainMpiAugment, OneTwoFourRanksHoldOutAndAugmentAlikeAndRerunsAreBitIdentical) {
  std::vector<float> p1, p2, p4, again, plain;
  const Result r1 = train(1, kSets, &p1);
  ASSERT_EQ(r1.status, 0) << r1.output;
  const Result r2 = train(2, kSets, &p2);
  ASSERT_EQ(r2.status, 0) << r2.output;
  const Result r4 = train(4, kSets, &p4);
  ASSERT_EQ(r4.status, 0) << r4.output;
  // Same held-out set: each run says which, and scores it alike.
  for (const Result* r : {&r1, &r2, &r4})
    EXPECT_NE(r->output.find("validation: 102 of 512 training images held out"), std::string::npos)
        << r->output;
  EXPECT_FALSE(last_val_accuracy(r1.output).empty()) << r1.output;
  EXPECT_EQ(last_val_accuracy(r1.output), last_val_accuracy(r2.output));
  EXPECT_EQ(last_val_accuracy(r1.output), last_val_accuracy(r4.output));
  // Same augmented images: the same model up to summation order (26 steps of
  // SGD with momentum drift to ~1.5e-5; one rank seeing other images than
  // another moves the weights by ~1e-2, see the end).
  ASSERT_EQ(p1.size(), p2.size());
  ASSERT_EQ(p1.size(), p4.size());
  EXPECT_LT(relative_difference(p1, p2), 1e-4);
  EXPECT_LT(relative_difference(p1, p4), 1e-4);
  // A rerun is bit-identical.
  ASSERT_EQ(train(2, kSets, &again).status, 0);
  EXPECT_EQ(again, p2);
  // And augmentation does change what is trained on.
  ASSERT_EQ(train(2,
                  std::string(kSets) + " data.augment.shift=0 data.augment.rotation=0 "
                                       "data.augment.scale=0",
                  &plain)
                .status,
            0);
  EXPECT_GT(relative_difference(p2, plain), 1e-2);
}

}  // namespace
}  // namespace dpcnn
