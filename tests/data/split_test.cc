#include "data/split.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "core/error.h"
#include "core/rng.h"

namespace dpcnn {
namespace {

// Labels with uneven class sizes (class c has 20 + 7c samples), interleaved.
Dataset uneven(int classes = 10) {
  Dataset d;
  d.height = d.width = 2;
  for (int c = 0; c < classes; ++c)
    for (int k = 0; k < 20 + 7 * c; ++k) d.labels.push_back(static_cast<uint8_t>(c));
  Rng rng(3);
  for (size_t i = d.labels.size(); i > 1; --i) std::swap(d.labels[i - 1], d.labels[rng.below(i)]);
  d.count = static_cast<int>(d.labels.size());
  for (int i = 0; i < d.count; ++i)
    for (int p = 0; p < 4; ++p) d.images.push_back(static_cast<uint8_t>((i * 4 + p) % 251));
  return d;
}

TEST(ValidationSplit, StratifiedExactTotalSortedAndSeeded) {
  const Dataset d = uneven();  // 515 samples
  const auto v = validation_indices(d, 0.2, 42);
  EXPECT_EQ(static_cast<int64_t>(v.size()), std::llround(0.2 * d.count));
  EXPECT_TRUE(std::is_sorted(v.begin(), v.end()));
  EXPECT_EQ(std::adjacent_find(v.begin(), v.end()), v.end());  // no duplicates
  std::map<int, int> all, held;
  for (int i = 0; i < d.count; ++i) ++all[d.labels[i]];
  for (int64_t i : v) ++held[d.labels[i]];
  for (const auto& [c, n] : all) {
    // Within one sample of the class's exact share (largest remainder).
    EXPECT_LE(std::abs(held[c] - 0.2 * n), 1.0) << "class " << c;
  }
  EXPECT_EQ(validation_indices(d, 0.2, 42), v);  // the seed alone decides
  EXPECT_NE(validation_indices(d, 0.2, 43), v);
  EXPECT_TRUE(validation_indices(d, 0.0, 42).empty());
}

TEST(ValidationSplit, SplitOffIsDisjointAndCoversTheTrainingSet) {
  Dataset train = uneven();
  const Dataset whole = train;
  const auto v = validation_indices(train, 0.25, 7);
  Dataset val;
  const uint8_t* buffer = train.images.data();
  split_off(train, v, &val);
  // In place: the training set is never held twice (peak memory per rank).
  EXPECT_EQ(train.images.data(), buffer);
  ASSERT_EQ(val.count, static_cast<int>(v.size()));
  ASSERT_EQ(train.count + val.count, whole.count);
  ASSERT_EQ(train.images.size(), static_cast<size_t>(train.count) * 4);
  // Every original sample is in exactly one of them (images are unique by
  // their first pixels here), held-out ones in val, in order.
  std::vector<int> where(whole.count, 0);
  size_t t = 0, h = 0;
  for (int i = 0; i < whole.count; ++i) {
    const bool held_out = h < v.size() && v[h] == i;
    const Dataset& d = held_out ? val : train;
    const size_t k = held_out ? h++ : t++;
    EXPECT_TRUE(std::equal(d.images.begin() + k * 4, d.images.begin() + k * 4 + 4,
                           whole.images.begin() + i * 4));
    EXPECT_EQ(d.labels[k], whole.labels[i]);
  }
  EXPECT_EQ(t, static_cast<size_t>(train.count));
  EXPECT_EQ(h, v.size());
}

TEST(ValidationSplit, NothingHeldOutLeavesTheTrainingSetAsItIs) {
  Dataset train = uneven();
  const Dataset whole = train;
  Dataset val;
  val.count = 3;
  val.labels = {1, 2, 3};
  split_off(train, {}, &val);
  EXPECT_EQ(val.count, 0);
  EXPECT_TRUE(val.labels.empty() && val.images.empty());
  EXPECT_EQ(val.height, 2);
  EXPECT_EQ(train.count, whole.count);
  EXPECT_EQ(train.images, whole.images);
  EXPECT_EQ(train.labels, whole.labels);
}

TEST(ValidationSplit, AFractionThatLeavesNothingToTrainIsAnError) {
  Dataset d = uneven(1);  // 20 samples
  EXPECT_THROW(validation_indices(d, 0.99, 1), InputError);
}

}  // namespace
}  // namespace dpcnn
