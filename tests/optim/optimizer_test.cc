// Update rules against values worked by hand from the Keras formulas.
#include "optim/optimizer.h"

#include <gtest/gtest.h>

#include <cmath>

namespace dpcnn {
namespace {

OptimizerConfig cfg(const char* type) {
  OptimizerConfig c;
  c.type = type;
  c.learning_rate = 0.1f;
  return c;
}

TEST(Sgd, PlainMomentumAndNesterov) {
  auto c = cfg("sgd");
  float p = 1.0f, g = 0.5f;
  make_optimizer(c, 1)->step(&p, &g, 1, 0.1f);
  EXPECT_FLOAT_EQ(p, 0.95f);
  c.momentum = 0.9f;
  auto o = make_optimizer(c, 1);
  p = 1.0f;
  o->step(&p, &g, 1, 0.1f);  // v = -0.05
  o->step(&p, &g, 1, 0.1f);  // v = -0.045 - 0.05 = -0.095
  EXPECT_FLOAT_EQ(p, 1.0f - 0.05f - 0.095f);
  c.nesterov = true;
  o = make_optimizer(c, 1);
  p = 1.0f;
  o->step(&p, &g, 1, 0.1f);  // v = -0.05; p += 0.9 * -0.05 - 0.05
  EXPECT_FLOAT_EQ(p, 1.0f - 0.045f - 0.05f);
}

TEST(RmsProp, KerasDefaults) {
  auto c = cfg("rmsprop");
  auto o = make_optimizer(c, 1);
  float p = 1.0f, g = 2.0f;
  o->step(&p, &g, 1, 0.1f);  // v = 0.1 * 4 = 0.4; p -= 0.1 * 2 / sqrt(0.4 + 1e-7)
  EXPECT_NEAR(p, 1.0f - 0.2f / std::sqrt(0.4f), 1e-6);
  // Epsilon sits inside the root (Keras): a tiny gradient gives a tiny step,
  // not lr * sqrt(1 / (1 - rho)) as with sqrt(v) + eps.
  auto tiny = make_optimizer(c, 1);
  float q = 0.0f, gt = 1e-6f;
  tiny->step(&q, &gt, 1, 0.1f);
  EXPECT_NEAR(q, -0.1f * 1e-6f / std::sqrt(0.1f * 1e-12f + 1e-7f), 1e-9);
  ASSERT_EQ(o->slots().size(), 1u);
  EXPECT_FLOAT_EQ((*o->slots()[0].second)[0], 0.4f);
}

TEST(Adam, BiasCorrectedFirstStepIsLrTimesSign) {
  auto c = cfg("adam");
  auto o = make_optimizer(c, 2);
  float p[2] = {1.0f, 1.0f}, g[2] = {3.0f, -0.001f};
  o->step(p, g, 2, 0.1f);
  EXPECT_NEAR(p[0], 0.9f, 1e-6);
  EXPECT_NEAR(p[1], 1.1f, 1e-3);  // epsilon 1e-7 shows at |g| = 1e-3
  EXPECT_EQ(o->iterations, 1);
}

TEST(WeightDecay, IsDecoupled) {
  auto c = cfg("sgd");
  c.weight_decay = 0.5f;
  float p = 2.0f, g = 0.0f;
  make_optimizer(c, 1)->step(&p, &g, 1, 0.1f);
  EXPECT_FLOAT_EQ(p, 2.0f * (1 - 0.05f));
}

TEST(Schedule, ConstantStepCosineWarmup) {
  OptimizerConfig c;
  c.learning_rate = 1.0f;
  EXPECT_FLOAT_EQ(learning_rate(c, 500, 100, 1000), 1.0f);
  c.schedule.type = "step";
  c.schedule.step_epochs = 2;
  c.schedule.gamma = 0.5f;
  EXPECT_FLOAT_EQ(learning_rate(c, 199, 100, 1000), 1.0f);
  EXPECT_FLOAT_EQ(learning_rate(c, 200, 100, 1000), 0.5f);
  EXPECT_FLOAT_EQ(learning_rate(c, 450, 100, 1000), 0.25f);
  c.schedule.type = "cosine";
  EXPECT_FLOAT_EQ(learning_rate(c, 0, 100, 1000), 1.0f);
  EXPECT_NEAR(learning_rate(c, 500, 100, 1000), 0.5f, 1e-6);
  EXPECT_NEAR(learning_rate(c, 1000, 100, 1000), 0.0f, 1e-6);
  c.schedule.warmup_steps = 10;
  EXPECT_FLOAT_EQ(learning_rate(c, 0, 100, 1000), 0.1f);
  EXPECT_FLOAT_EQ(learning_rate(c, 9, 100, 1000), 1.0f);
}

TEST(Optimizer, UnknownTypeIsAnError) {
  EXPECT_THROW(make_optimizer(cfg("adagrad"), 1), std::exception);
}

}  // namespace
}  // namespace dpcnn
