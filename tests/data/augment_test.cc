#include "data/augment.h"

#include <omp.h>

#include <gtest/gtest.h>

#include <cmath>

#include "core/rng.h"

namespace dpcnn {
namespace {

Dataset random_images(int n, int h = 28, int w = 28) {
  Dataset d;
  d.count = n;
  d.height = h;
  d.width = w;
  Rng rng(5);
  for (size_t i = 0; i < static_cast<size_t>(n) * h * w; ++i)
    d.images.push_back(static_cast<uint8_t>(rng.below(256)));
  for (int i = 0; i < n; ++i) d.labels.push_back(static_cast<uint8_t>(i % 10));
  return d;
}

AugmentConfig digits() {
  AugmentConfig a;
  a.shift = 2.5f;
  a.rotation = 10;
  a.scale = 0.1f;
  return a;
}

TEST(Augment, IdentityTransformReproducesThePixels) {
  const Dataset d = random_images(1);
  std::vector<float> out(784);
  warp_image(d.images.data(), 1, 28, 28, Affine{}, out.data());
  for (int p = 0; p < 784; ++p) EXPECT_EQ(out[p], d.images[p] * (1.0f / 255.0f));
  // An all-zero config draws the identity (up to rounding of the centre).
  const Affine t = draw_affine(AugmentConfig{}, 42, 3, 17, 28, 28);
  EXPECT_FLOAT_EQ(t.a, 1);
  EXPECT_FLOAT_EQ(t.b, 0);
  EXPECT_NEAR(t.tx, 0, 1e-5);
  EXPECT_NEAR(t.ty, 0, 1e-5);
}

TEST(Augment, WholePixelShiftMovesTheImageAndFillsZero) {
  const Dataset d = random_images(1);
  Affine t;
  t.tx = -2;  // output x samples source x - 2: the picture moves 2 right
  t.ty = 1;   // and 1 up
  std::vector<float> out(784);
  warp_image(d.images.data(), 1, 28, 28, t, out.data());
  for (int y = 0; y < 28; ++y)
    for (int x = 0; x < 28; ++x) {
      const int sx = x - 2, sy = y + 1;
      const float want =
          sx >= 0 && sy < 28 ? d.images[static_cast<size_t>(sy) * 28 + sx] / 255.0f : 0.0f;
      EXPECT_FLOAT_EQ(out[y * 28 + x], want) << x << "," << y;
    }
}

TEST(Augment, DrawsStayInRangeAndDependOnSeedEpochAndIndex) {
  const AugmentConfig a = digits();
  for (int64_t i = 0; i < 200; ++i) {
    const Affine t = draw_affine(a, 42, 0, i, 28, 28);
    const float s = 1.0f / std::sqrt(t.a * t.d - t.b * t.c);  // forward scale
    EXPECT_GE(s, 0.9f - 1e-5f);
    EXPECT_LE(s, 1.1f + 1e-5f);
    const float angle = std::atan2(t.b, t.a) * 180.0f / 3.14159265f;
    EXPECT_LE(std::fabs(angle), 10.0f + 1e-3f);
  }
  auto same = [](const Affine& x, const Affine& y) {
    return x.a == y.a && x.b == y.b && x.tx == y.tx && x.c == y.c && x.d == y.d && x.ty == y.ty;
  };
  EXPECT_TRUE(same(draw_affine(a, 42, 1, 9, 28, 28), draw_affine(a, 42, 1, 9, 28, 28)));
  EXPECT_FALSE(same(draw_affine(a, 42, 1, 9, 28, 28), draw_affine(a, 42, 2, 9, 28, 28)));
  EXPECT_FALSE(same(draw_affine(a, 42, 1, 9, 28, 28), draw_affine(a, 42, 1, 10, 28, 28)));
  EXPECT_FALSE(same(draw_affine(a, 42, 1, 9, 28, 28), draw_affine(a, 43, 1, 9, 28, 28)));
}

TEST(Augment, FlipMirrorsLeftRight) {
  AugmentConfig a;
  a.hflip = true;
  const Dataset d = random_images(64);
  int flipped = 0;
  for (int64_t i = 0; i < 64; ++i) {
    const Affine t = draw_affine(a, 1, 0, i, 28, 28);
    std::vector<float> out(784);
    warp_image(d.images.data(), 1, 28, 28, t, out.data());
    if (t.a < 0) {
      ++flipped;
      for (int x = 0; x < 28; ++x) EXPECT_FLOAT_EQ(out[x], d.images[27 - x] / 255.0f);
    }
  }
  EXPECT_GT(flipped, 16);  // about half
  EXPECT_LT(flipped, 48);
}

// What each rank computes for its slice of a global batch equals that part of
// the batch one rank computes, bit for bit, whatever the thread count: the
// draw depends on the sample, never on the position or the rank.
TEST(Augment, SlicesForOneTwoFourRanksEqualTheWholeBatch) {
  const Dataset d = random_images(100);
  const AugmentConfig a = digits();
  std::vector<int64_t> order;
  for (int i = 0; i < 64; ++i) order.push_back((i * 37) % 100);
  std::vector<float> whole(64 * 784);
  std::vector<int32_t> labels(64);
  omp_set_num_threads(1);
  fill_batch_augmented(d, order.data(), 64, whole.data(), labels.data(), a, 42, 3);
  for (int ranks : {2, 4}) {
    for (int threads : {1, 2, 3}) {
      omp_set_num_threads(threads);
      std::vector<float> joined;
      for (int r = 0; r < ranks; ++r) {
        const int n = 64 / ranks;
        std::vector<float> part(static_cast<size_t>(n) * 784);
        std::vector<int32_t> l(n);
        fill_batch_augmented(d, order.data() + r * n, n, part.data(), l.data(), a, 42, 3);
        joined.insert(joined.end(), part.begin(), part.end());
        for (int k = 0; k < n; ++k) EXPECT_EQ(l[k], labels[r * n + k]);
      }
      EXPECT_EQ(joined, whole) << ranks << " ranks, " << threads << " threads";
    }
  }
  // And it does augment: another epoch gives other images.
  std::vector<float> other(64 * 784);
  fill_batch_augmented(d, order.data(), 64, other.data(), labels.data(), a, 42, 4);
  EXPECT_NE(other, whole);
}

TEST(Augment, GridHasTheDocumentedSize) {
  const Dataset d = random_images(30);
  int w = 0, h = 0;
  const auto px = augment_grid(d, digits(), 42, 10, 11, 2, &w, &h);
  EXPECT_EQ(w, 11 * (56 + 2) + 2);
  EXPECT_EQ(h, 10 * (56 + 2) + 2);
  EXPECT_EQ(px.size(), static_cast<size_t>(w) * h);
}

}  // namespace
}  // namespace dpcnn
