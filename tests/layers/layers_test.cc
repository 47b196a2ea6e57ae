// Each layer: a reference-value check and a finite-difference gradient check
// (tiny-dnn's gradient_check tests, llm.c's test_gpt2.c).
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "layer_testing.h"
#include "layers/layers_impl.h"
#include "layers/softmax_xent.h"

namespace dpcnn {
namespace {

using testing::conv;
using testing::expect_matches_fd;
using testing::Harness;
using testing::plain_md;
using testing::random_vec;
using testing::simple;

// The seed article's example. The article prints a 4x4 result of -6..-25, but
// the operation it describes (cross-correlation with [[1,0],[0,-1]], which is
// what Conv2D computes in Keras and here) gives x[i][j] - x[i+1][j+1] = 1 - 7 = -6
// at EVERY position of the 1..25 ramp: the article's matrix is wrong.
TEST(Conv2D, SeedArticleRampGivesAllMinusSix) {
  Harness h(conv(1, 2, "none", "valid", 1, /*bias=*/false), {1, 1, 5, 5}, false);
  std::iota(h.x.begin(), h.x.end(), 1.0f);
  h.params = {1, 0, 0, -1};
  auto y = h.forward();
  ASSERT_EQ(y.size(), 16u);
  for (float v : y) EXPECT_FLOAT_EQ(v, -6.0f);
}

TEST(Conv2D, GradientsMatchFiniteDifferences) {
  Harness h(conv(4, 3, "relu"), {2, 3, 6, 6});
  auto r = random_vec(h.dst_plain.get_size() / 4, 99);
  h.forward();
  auto dx = h.backward(r);
  auto dw = h.grads;
  expect_matches_fd(h, h.params, dw, r, "conv dW");
  expect_matches_fd(h, h.x, dx, r, "conv dX");
}

// The first layer of the seed model: one input channel, where oneDNN picks a
// different kernel than for deeper layers.
TEST(Conv2D, SingleInputChannelFirstLayerGradients) {
  Harness h(conv(32, 3, "none"), {3, 1, 12, 12});
  auto r = random_vec(h.dst_plain.get_size() / 4, 17);
  h.forward();
  h.backward(r);
  auto dw = h.grads;
  expect_matches_fd(h, h.params, dw, r, "conv ic=1 dW", 1e-3f, 1, 2e-2f);
}

TEST(Conv2D, SamePaddingWithStrideMatchesKerasShapeAndGradients) {
  Harness h(conv(3, 3, "none", "same", 2), {2, 2, 7, 7});
  EXPECT_EQ(h.layer->dst_md().dims(), (memory::dims{2, 3, 4, 4}));  // ceil(7/2)
  auto r = random_vec(h.dst_plain.get_size() / 4, 5);
  h.forward();
  auto dx = h.backward(r);
  auto dw = h.grads;
  expect_matches_fd(h, h.params, dw, r, "conv same dW");
  expect_matches_fd(h, h.x, dx, r, "conv same dX");
}

TEST(Conv2D, GlorotUniformInitWithinLimitAndZeroBias) {
  Harness h(conv(8, 3), {1, 4, 8, 8});
  const float limit = std::sqrt(6.0f / (4 * 9 + 8 * 9));
  float maxabs = 0;
  for (size_t i = 0; i < 8 * 4 * 9; ++i) maxabs = std::max(maxabs, std::abs(h.params[i]));
  EXPECT_LE(maxabs, limit);
  EXPECT_GT(maxabs, 0.8f * limit);
  for (size_t i = 8 * 4 * 9; i < h.params.size(); ++i) EXPECT_EQ(h.params[i], 0.0f);
}

TEST(Dense, ReferenceValue) {
  LayerSpec s = simple("dense");
  s.units = 2;
  Harness h(s, {1, 3}, false);
  h.x = {1, 2, 3};
  h.params = {1, 0, -1, 0.5f, 0.5f, 0.5f, /*bias*/ 10, -1};
  auto y = h.forward();
  EXPECT_FLOAT_EQ(y[0], 1 - 3 + 10);
  EXPECT_FLOAT_EQ(y[1], 3 - 1);
}

TEST(Dense, GradientsMatchFiniteDifferences) {
  for (const char* act : {"none", "relu"}) {
    LayerSpec s = simple("dense");
    s.units = 5;
    s.activation = act;
    Harness h(s, {3, 7});
    auto r = random_vec(15, 3);
    h.forward();
    auto dx = h.backward(r);
    auto dw = h.grads;
    expect_matches_fd(h, h.params, dw, r, act);
    expect_matches_fd(h, h.x, dx, r, act);
  }
}

TEST(MaxPool2D, ReferenceValueAndGradients) {
  LayerSpec s = simple("maxpool2d");
  s.strides[0] = s.strides[1] = 2;  // the config loader defaults strides to pool
  Harness h(s, {2, 3, 5, 5});
  EXPECT_EQ(h.layer->dst_md().dims(), (memory::dims{2, 3, 2, 2}));  // floor, as Keras valid
  auto y = h.forward();
  // Top-left window of the first channel.
  const float want = std::max({h.x[0], h.x[1], h.x[5], h.x[6]});
  EXPECT_FLOAT_EQ(y[0], want);
  auto r = random_vec(y.size(), 4);
  auto dx = h.backward(r);
  expect_matches_fd(h, h.x, dx, r, "pool dX", 1e-3f);
}

TEST(ReLU, ReferenceAndGradients) {
  Harness h(simple("relu"), {2, 3, 4, 4});
  auto y = h.forward();
  for (size_t i = 0; i < y.size(); ++i) EXPECT_EQ(y[i], std::max(0.0f, h.x[i]));
  auto r = random_vec(y.size(), 8);
  auto dx = h.backward(r);
  expect_matches_fd(h, h.x, dx, r, "relu dX", 1e-3f);
}

TEST(Flatten, KeepsChannelHeightWidthOrderAndPassesGradients) {
  Harness h(simple("flatten"), {2, 3, 2, 2});
  EXPECT_EQ(h.layer->dst_md().dims(), (memory::dims{2, 12}));
  auto y = h.forward();
  EXPECT_EQ(y, h.x);  // plain NCHW flattened is the same bytes
  auto r = random_vec(y.size(), 2);
  EXPECT_EQ(h.backward(r), r);
}

TEST(Dropout, InferenceIsIdentityTrainingScalesKeptValues) {
  LayerSpec s = simple("dropout");
  s.rate = 0.25f;
  Harness inf(s, {4, 100}, false);
  EXPECT_EQ(inf.forward(), inf.x);
  Harness h(s, {64, 100});
  auto y = h.forward(3);
  int kept = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    if (y[i] != 0.0f) {
      ++kept;
      EXPECT_FLOAT_EQ(y[i], h.x[i] / 0.75f);
    }
  }
  EXPECT_NEAR(kept / double(y.size()), 0.75, 0.02);
  EXPECT_EQ(h.forward(3), y);  // same step: same mask
  EXPECT_NE(h.forward(4), y);  // next step: another mask
  h.forward(3);
  auto r = random_vec(y.size(), 6);
  auto dx = h.backward(r);
  for (size_t i = 0; i < y.size(); ++i) EXPECT_FLOAT_EQ(dx[i], y[i] != 0 ? r[i] / 0.75f : 0.0f);
}

TEST(BatchNorm, TrainingNormalisesAndGradientsMatch) {
  LayerSpec s = simple("batchnorm");
  Harness h(s, {4, 3, 3, 3});
  auto y = h.forward();
  for (int c = 0; c < 3; ++c) {  // per channel: mean 0, variance ~1 (epsilon 1e-3)
    double m = 0, v = 0;
    for (int n = 0; n < 4; ++n)
      for (int k = 0; k < 9; ++k) m += y[(n * 3 + c) * 9 + k];
    m /= 36;
    for (int n = 0; n < 4; ++n)
      for (int k = 0; k < 9; ++k) v += std::pow(y[(n * 3 + c) * 9 + k] - m, 2);
    EXPECT_NEAR(m, 0, 1e-5);
    EXPECT_NEAR(v / 36, 1, 0.02);
  }
  // Running stats moved from (0, 1) toward the batch (momentum 0.99).
  EXPECT_NE(h.state[0], 0.0f);
  auto r = random_vec(y.size(), 12);
  auto dx = h.backward(r);
  auto dp = h.grads;
  expect_matches_fd(h, h.params, dp, r, "bn dgamma/dbeta", 1e-2f);
  expect_matches_fd(h, h.x, dx, r, "bn dX", 1e-2f);
}

TEST(BatchNorm, InferenceUsesRunningStatistics) {
  LayerSpec s = simple("batchnorm");
  Harness h(s, {2, 2, 1, 1}, false);
  h.state = {1.0f, -1.0f, 4.0f, 1.0f};  // mean, var per channel
  h.params = {2.0f, 1.0f, 0.5f, 0.0f};  // gamma, beta
  h.x = {3.0f, 0.0f, 1.0f, -1.0f};
  auto y = h.forward();
  EXPECT_NEAR(y[0], 2.0f * (3 - 1) / std::sqrt(4 + 1e-3f) + 0.5f, 1e-5);
  EXPECT_NEAR(y[1], 1.0f * (0 + 1) / std::sqrt(1 + 1e-3f), 1e-5);
}

TEST(SoftmaxCrossEntropy, ReferenceValueAndGradient) {
  Context ctx;
  const memory::desc md = plain_md({2, 4});
  SoftmaxCrossEntropy loss(ctx, md);
  std::vector<float> z = {0, 0, 0, 0, 1, 2, 3, 4};
  std::vector<int32_t> y = {2, 3};
  memory zm(md, ctx.engine, z.data());
  LossResult r = loss.forward(zm, y.data(), 0.5f);
  const double lse = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0) + std::exp(4.0));
  EXPECT_NEAR(r.loss_sum, std::log(4.0) + (lse - 4.0), 1e-5);
  EXPECT_EQ(r.correct, 1);  // row 0 ties: argmax is 0, label 2
  const float* g = static_cast<const float*>(loss.diff_logits().get_data_handle());
  std::vector<float> analytic(g, g + 8);
  for (int i = 0; i < 8; ++i) {
    const float keep = z[i];
    z[i] = keep + 1e-3f;
    const double lp = loss.forward(zm, y.data(), 0).loss_sum;
    z[i] = keep - 1e-3f;
    const double lm = loss.forward(zm, y.data(), 0).loss_sum;
    z[i] = keep;
    EXPECT_NEAR(analytic[i], 0.5 * (lp - lm) / 2e-3, 2e-3) << i;
  }
}

}  // namespace
}  // namespace dpcnn
