#include "data/dataset.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/idx.h"

namespace dpcnn {
namespace {

namespace fs = std::filesystem;

IdxArray images(uint32_t n, uint32_t h, uint32_t w, uint8_t base) {
  IdxArray a;
  a.dims = {n, h, w};
  for (uint32_t i = 0; i < n * h * w; ++i) a.data.push_back(static_cast<uint8_t>(base + i));
  return a;
}

IdxArray labels(uint32_t n, uint8_t classes) {
  IdxArray a;
  a.dims = {n};
  for (uint32_t i = 0; i < n; ++i) a.data.push_back(static_cast<uint8_t>(i % classes));
  return a;
}

class DatasetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("dpcnn_dataset_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // A valid 6-train / 4-test dataset of 3x2 images; `gz` picks the file form.
  void write_good(bool gz) const {
    const std::string ext = gz ? ".gz" : "";
    write_idx(path("train-images-idx3-ubyte" + ext), images(6, 3, 2, 0));
    write_idx(path("train-labels-idx1-ubyte" + ext), labels(6, 10));
    write_idx(path("t10k-images-idx3-ubyte" + ext), images(4, 3, 2, 100));
    write_idx(path("t10k-labels-idx1-ubyte" + ext), labels(4, 3));
  }

  std::string load_error(int num_classes = 10) const {
    try {
      load_mnist_dir(dir_.string(), num_classes);
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  }

  fs::path dir_;
};

TEST_F(DatasetTest, LoadsRaw) {
  write_good(false);
  const DataSplit s = load_mnist_dir(dir_.string());
  EXPECT_EQ(s.train.count, 6);
  EXPECT_EQ(s.test.count, 4);
  EXPECT_EQ(s.train.channels, 1);
  EXPECT_EQ(s.train.height, 3);
  EXPECT_EQ(s.train.width, 2);
  EXPECT_EQ(s.train.image_size(), 6);
  EXPECT_EQ(s.train.images.size(), 36u);
  EXPECT_EQ(s.test.images[0], 100);
  EXPECT_EQ(s.train.labels, (std::vector<uint8_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(s.test.labels, (std::vector<uint8_t>{0, 1, 2, 0}));
}

TEST_F(DatasetTest, LoadsGzAndPrefersRaw) {
  write_good(true);
  EXPECT_EQ(load_mnist_dir(dir_.string()).train.count, 6);
  // A raw file next to the .gz wins.
  write_idx(path("train-images-idx3-ubyte"), images(2, 3, 2, 50));
  write_idx(path("train-labels-idx1-ubyte"), labels(2, 10));
  const DataSplit s = load_mnist_dir(dir_.string());
  EXPECT_EQ(s.train.count, 2);
  EXPECT_EQ(s.train.images[0], 50);
}

TEST_F(DatasetTest, MissingFileNamesPathAndFetchScript) {
  write_good(false);
  fs::remove(path("t10k-labels-idx1-ubyte"));
  const std::string e = load_error();
  EXPECT_NE(e.find(path("t10k-labels-idx1-ubyte")), std::string::npos) << e;
  EXPECT_NE(e.find("scripts/fetch-data.sh"), std::string::npos) << e;
}

TEST_F(DatasetTest, EmptyDirectory) {
  EXPECT_NE(load_error().find("train-images-idx3-ubyte"), std::string::npos) << load_error();
}

TEST_F(DatasetTest, MismatchedCounts) {
  write_good(false);
  write_idx(path("train-labels-idx1-ubyte"), labels(5, 10));
  const std::string e = load_error();
  EXPECT_NE(e.find(path("train-labels-idx1-ubyte")), std::string::npos) << e;
  EXPECT_NE(e.find("5 labels"), std::string::npos) << e;
  EXPECT_NE(e.find("6 images"), std::string::npos) << e;
}

TEST_F(DatasetTest, BadLabel) {
  write_good(false);
  IdxArray l = labels(4, 3);
  l.data[2] = 10;
  write_idx(path("t10k-labels-idx1-ubyte"), l);
  const std::string e = load_error();
  EXPECT_NE(e.find(path("t10k-labels-idx1-ubyte")), std::string::npos) << e;
  EXPECT_NE(e.find("label 10 at index 2"), std::string::npos) << e;
  // The same files are fine for 11 classes, and train labels 0..5 fail for 5.
  EXPECT_EQ(load_error(11), "(no error)");
  EXPECT_NE(load_error(5).find("label 5 at index 5"), std::string::npos) << load_error(5);
}

TEST_F(DatasetTest, WrongRanks) {
  write_good(false);
  write_idx(path("train-images-idx3-ubyte"), labels(6, 10));
  EXPECT_NE(load_error().find("rank 3"), std::string::npos) << load_error();
  write_good(false);
  write_idx(path("train-labels-idx1-ubyte"), images(6, 1, 1, 0));
  EXPECT_NE(load_error().find("rank 1"), std::string::npos) << load_error();
}

TEST_F(DatasetTest, TrainTestSizeMismatch) {
  write_good(false);
  write_idx(path("t10k-images-idx3-ubyte"), images(4, 2, 3, 0));
  EXPECT_NE(load_error().find("3x2"), std::string::npos) << load_error();
}

TEST_F(DatasetTest, CorruptFileNamesIt) {
  write_good(false);
  fs::resize_file(path("t10k-images-idx3-ubyte"),
                  fs::file_size(path("t10k-images-idx3-ubyte")) - 1);
  const std::string e = load_error();
  EXPECT_NE(e.find(path("t10k-images-idx3-ubyte")), std::string::npos) << e;
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
}

TEST(EpochOrder, IsPermutation) {
  for (int count : {0, 1, 2, 7, 1000}) {
    std::vector<int64_t> o = epoch_order(42, 3, count);
    ASSERT_EQ(o.size(), static_cast<size_t>(count));
    std::sort(o.begin(), o.end());
    for (int i = 0; i < count; ++i) EXPECT_EQ(o[static_cast<size_t>(i)], i);
  }
}

TEST(EpochOrder, DeterministicForSeedAndEpoch) {
  EXPECT_EQ(epoch_order(7, 0, 500), epoch_order(7, 0, 500));
  EXPECT_EQ(epoch_order(7, 4, 500), epoch_order(7, 4, 500));
}

TEST(EpochOrder, DiffersAcrossEpochsAndSeeds) {
  const std::vector<int64_t> a = epoch_order(7, 0, 500);
  EXPECT_NE(a, epoch_order(7, 1, 500));
  EXPECT_NE(a, epoch_order(8, 0, 500));
  std::vector<int64_t> identity(500);
  for (int i = 0; i < 500; ++i) identity[static_cast<size_t>(i)] = i;
  EXPECT_NE(a, identity);
}

TEST(EpochOrder, FixedValues) {
  // Pins the shuffle to Rng's algorithm: a change here changes every run's
  // sample order (and so breaks bit-identical resumption of old checkpoints).
  EXPECT_EQ(epoch_order(1234, 2, 10), (std::vector<int64_t>{7, 3, 1, 8, 5, 4, 6, 2, 0, 9}));
}

TEST(FillBatch, ScalesPixelsAndCopiesLabels) {
  Dataset d;
  d.count = 3;
  d.channels = 1;
  d.height = 2;
  d.width = 2;
  d.images = {0, 255, 51, 102, 1, 2, 3, 4, 128, 64, 32, 16};
  d.labels = {7, 8, 9};
  std::vector<float> out(8, -1.0f);
  std::vector<int32_t> lab(2, -1);
  const int64_t idx[2] = {2, 0};
  fill_batch(d, idx, 2, out.data(), lab.data());
  EXPECT_FLOAT_EQ(out[0], 128.0f / 255.0f);
  EXPECT_FLOAT_EQ(out[1], 64.0f / 255.0f);
  EXPECT_FLOAT_EQ(out[3], 16.0f / 255.0f);
  EXPECT_EQ(out[4], 0.0f);
  EXPECT_EQ(out[5], 1.0f);
  EXPECT_FLOAT_EQ(out[6], 0.2f);
  EXPECT_FLOAT_EQ(out[7], 0.4f);
  EXPECT_EQ(lab, (std::vector<int32_t>{9, 7}));

  std::vector<float> seq(8);
  fill_batch(d, nullptr, 2, seq.data(), lab.data());
  EXPECT_EQ(seq[1], 1.0f);
  EXPECT_FLOAT_EQ(seq[4], 1.0f / 255.0f);
  EXPECT_EQ(lab, (std::vector<int32_t>{7, 8}));
}

TEST(FillBatch, RejectsOutOfRangeIndex) {
  Dataset d;
  d.count = 1;
  d.height = d.width = 1;
  d.images = {1};
  d.labels = {0};
  float out[1];
  int32_t lab[1];
  const int64_t bad[1] = {1};
  EXPECT_THROW(fill_batch(d, bad, 1, out, lab), Error);
}

}  // namespace
}  // namespace dpcnn
