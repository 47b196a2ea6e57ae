// Update rules against values worked by hand from the Keras formulas.
#include "optim/optimizer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace dpcnn {
namespace {

OptimizerConfig cfg(const char* type) {
  OptimizerConfig c;
  c.type = type;
  c.learning_rate = 0.1f;
  return c;
}

// The Keras update rules written out again, in double, one parameter at a
// time: the reference the float loops are checked against over several steps
// (step 1 alone hides RMSprop's rho * v, the momentum buffers and Adam's
// carried moments and bias correction).
struct Reference {
  OptimizerConfig c;
  std::vector<double> p, v, m;  // v: velocity / second moment; m: momentum / first moment
  int t = 0;
  Reference(const OptimizerConfig& cfg, const std::vector<float>& p0)
      : c(cfg), p(p0.begin(), p0.end()), v(p0.size(), 0.0), m(p0.size(), 0.0) {}
  void step(const std::vector<float>& g, double lr) {
    ++t;
    for (size_t i = 0; i < p.size(); ++i) {
      p[i] -= lr * c.weight_decay * p[i];  // decoupled, before the update
      if (c.type == "sgd") {
        if (c.momentum == 0) {
          p[i] -= lr * g[i];
        } else {
          m[i] = c.momentum * m[i] - lr * g[i];
          p[i] += c.nesterov ? c.momentum * m[i] - lr * g[i] : m[i];
        }
      } else if (c.type == "rmsprop") {
        v[i] = c.rho * v[i] + (1 - c.rho) * g[i] * g[i];
        const double delta = lr * g[i] / std::sqrt(v[i] + c.epsilon);
        if (c.momentum > 0) {
          m[i] = c.momentum * m[i] + delta;
          p[i] -= m[i];
        } else {
          p[i] -= delta;
        }
      } else {  // adam
        m[i] = c.beta1 * m[i] + (1 - c.beta1) * g[i];
        v[i] = c.beta2 * v[i] + (1 - c.beta2) * g[i] * g[i];
        const double alpha =
            lr * std::sqrt(1 - std::pow(double(c.beta2), t)) / (1 - std::pow(double(c.beta1), t));
        p[i] -= alpha * m[i] / (std::sqrt(v[i]) + c.epsilon);
      }
    }
  }
};

// Runs `steps` steps of the real optimizer and of the reference on 37
// parameters (more than one AVX-512 vector plus a tail) with gradients that
// change sign and size every step, and a learning rate that changes too.
void expect_matches_reference(const OptimizerConfig& c, int steps = 6) {
  const size_t n = 37;
  std::vector<float> p(n), g(n);
  for (size_t i = 0; i < n; ++i) p[i] = 0.5f - 0.03f * static_cast<float>(i);
  Reference ref(c, p);
  auto o = make_optimizer(c, n);
  for (int s = 0; s < steps; ++s) {
    for (size_t i = 0; i < n; ++i)
      g[i] = std::sin(0.7f * static_cast<float>(i) + 1.3f * static_cast<float>(s)) *
             (0.1f + static_cast<float>(s % 3));
    const float lr = c.learning_rate * (s % 2 ? 0.5f : 1.0f);
    o->step(p.data(), g.data(), n, lr);
    ref.step(g, lr);
    for (size_t i = 0; i < n; ++i)
      ASSERT_NEAR(p[i], ref.p[i], 2e-6 * std::max(1.0, std::abs(ref.p[i])))
          << c.type << " step " << s + 1 << " param " << i;
  }
  EXPECT_EQ(o->iterations, steps);
  // The slots carry the state a checkpoint saves: they must be the reference's.
  for (const auto& [name, buf] : o->slots()) {
    const bool first = name == "m" || name == "momentum";
    const std::vector<double>& want = first ? ref.m : ref.v;
    ASSERT_EQ(buf->size(), n) << name;
    for (size_t i = 0; i < n; ++i)
      ASSERT_NEAR((*buf)[i], want[i], 2e-6 * std::max(1.0, std::abs(want[i]))) << name << " " << i;
  }
}

TEST(Sgd, SeveralStepsPlainMomentumNesterov) {
  auto c = cfg("sgd");
  expect_matches_reference(c);
  c.momentum = 0.9f;
  expect_matches_reference(c);
  c.nesterov = true;
  expect_matches_reference(c);
}

TEST(Sgd, MomentumAndNesterovByHand) {
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
  o->step(&p, &g, 1, 0.1f);  // v = -0.095; p += 0.9 * -0.095 - 0.05
  EXPECT_FLOAT_EQ(p, 1.0f - 0.095f - 0.0855f - 0.05f);
}

TEST(RmsProp, SeveralStepsWithAndWithoutMomentum) {
  auto c = cfg("rmsprop");
  expect_matches_reference(c);
  c.rho = 0.5f;
  expect_matches_reference(c);
  c.momentum = 0.5f;
  expect_matches_reference(c);
}

TEST(RmsProp, KerasDefaultsByHand) {
  auto c = cfg("rmsprop");
  auto o = make_optimizer(c, 1);
  float p = 1.0f, g = 2.0f;
  o->step(&p, &g, 1, 0.1f);  // v = 0.1 * 4 = 0.4; p -= 0.1 * 2 / sqrt(0.4 + 1e-7)
  EXPECT_NEAR(p, 1.0f - 0.2f / std::sqrt(0.4f), 1e-6);
  g = 1.0f;
  o->step(&p, &g, 1, 0.1f);  // v = 0.9 * 0.4 + 0.1 * 1 = 0.46; p -= 0.1 / sqrt(0.46)
  EXPECT_NEAR(p, 0.5363303f, 1e-6);
  ASSERT_EQ(o->slots().size(), 1u);
  EXPECT_FLOAT_EQ((*o->slots()[0].second)[0], 0.46f);
  // Epsilon sits inside the root (Keras): a tiny gradient gives a tiny step,
  // not lr * sqrt(1 / (1 - rho)) as with sqrt(v) + eps.
  auto tiny = make_optimizer(c, 1);
  float q = 0.0f, gt = 1e-6f;
  tiny->step(&q, &gt, 1, 0.1f);
  EXPECT_NEAR(q, -0.1f * 1e-6f / std::sqrt(0.1f * 1e-12f + 1e-7f), 1e-9);
  // With momentum 0.5: mom = 0.5 mom + lr g / sqrt(v + eps); p -= mom.
  c.momentum = 0.5f;
  auto withm = make_optimizer(c, 1);
  float r = 1.0f, gm = 2.0f;
  withm->step(&r, &gm, 1, 0.1f);
  gm = 1.0f;
  withm->step(&r, &gm, 1, 0.1f);
  EXPECT_NEAR(r, 0.3782165f, 1e-6);
  EXPECT_EQ(withm->slots().size(), 2u);
}

TEST(Adam, SeveralStepsCarryMomentsAndBiasCorrection) {
  auto c = cfg("adam");
  expect_matches_reference(c);
  c.beta1 = 0.5f;
  c.beta2 = 0.9f;
  expect_matches_reference(c, 10);
}

TEST(Adam, BiasCorrectedStepsByHand) {
  auto c = cfg("adam");
  auto o = make_optimizer(c, 2);
  float p[2] = {1.0f, 1.0f}, g[2] = {3.0f, -0.001f};
  o->step(p, g, 2, 0.1f);  // bias correction makes step 1 lr * sign(g)
  EXPECT_NEAR(p[0], 0.9f, 1e-6);
  EXPECT_NEAR(p[1], 1.1f, 1e-3);  // epsilon 1e-7 shows at |g| = 1e-3
  EXPECT_EQ(o->iterations, 1);
  // Step 2, g = 1: m = 0.37, v = 0.009991, alpha = 0.1 sqrt(1 - 0.999^2) / (1 - 0.9^2).
  g[0] = 1.0f;
  o->step(p, g, 2, 0.1f);
  EXPECT_NEAR(p[0], 0.8128938f, 2e-6);
  EXPECT_EQ(o->iterations, 2);
}

TEST(WeightDecay, IsDecoupledForEveryOptimizer) {
  auto c = cfg("sgd");
  c.weight_decay = 0.5f;
  float p = 2.0f, g = 0.0f;
  make_optimizer(c, 1)->step(&p, &g, 1, 0.1f);
  EXPECT_FLOAT_EQ(p, 2.0f * (1 - 0.05f));
  for (const char* type : {"sgd", "rmsprop", "adam"}) {
    auto d = cfg(type);
    d.weight_decay = 0.3f;
    d.momentum = std::string(type) == "adam" ? 0.0f : 0.8f;
    expect_matches_reference(d);
  }
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
