#include "model/model.h"

#include <gtest/gtest.h>

#include <cmath>

#include "config/config.h"
#include "core/rng.h"
#include "layers/precision.h"

namespace dpcnn {
namespace {

std::vector<float> random_images(int n, int size, uint64_t seed) {
  Rng r(seed);
  std::vector<float> v(static_cast<size_t>(n) * size);
  for (auto& x : v) x = r.uniform01();
  return v;
}

TEST(Model, SeedModelHasKerasParameterCountAndNames) {
  const Config cfg = load_config("configs/mnist.yaml");
  Model m(cfg.model);
  // conv 320 + conv 18,496 + conv 36,928 + dense 36,928 + dense 650
  EXPECT_EQ(m.param_count(), 93322u);
  ASSERT_EQ(m.param_info().size(), 10u);
  EXPECT_EQ(m.param_info()[0].name, "layers.0.conv2d.weight");
  EXPECT_EQ(m.param_info()[0].shape, (std::vector<int64_t>{32, 1, 3, 3}));
  EXPECT_EQ(m.param_info()[9].name, "layers.7.dense.bias");
  EXPECT_EQ(m.param_info()[9].offset + 10, m.param_count());
}

TEST(Model, InitIsDeterministicPerSeed) {
  const Config cfg = load_config("configs/mnist.yaml");
  Model a(cfg.model), b(cfg.model), c(cfg.model);
  a.init(1);
  b.init(1);
  c.init(2);
  EXPECT_EQ(std::vector<float>(a.params(), a.params() + a.param_count()),
            std::vector<float>(b.params(), b.params() + b.param_count()));
  EXPECT_NE(std::vector<float>(a.params(), a.params() + a.param_count()),
            std::vector<float>(c.params(), c.params() + c.param_count()));
}

// The data-parallel identity the trainer relies on: the gradient of a batch
// equals the sum of the gradients of its slices when each is scaled by 1/B.
TEST(Model, SliceGradientsSumToBatchGradient) {
  const Config cfg = load_config("configs/mnist.yaml");
  Model m(cfg.model);
  m.init(3);
  const int b = 6;
  auto x = random_images(b, 784, 4);
  std::vector<int32_t> y = {0, 1, 2, 3, 4, 5};
  const LossResult whole = m.train_step(x.data(), y.data(), b, 1.0f / b, {});
  std::vector<float> g_whole(m.grads(), m.grads() + m.param_count());
  m.train_step(x.data(), y.data(), 4, 1.0f / b, {});
  std::vector<float> g_sum(m.grads(), m.grads() + m.param_count());
  const LossResult tail = m.train_step(x.data() + 4 * 784, y.data() + 4, 2, 1.0f / b, {});
  double maxabs = 0, maxdiff = 0;
  for (size_t i = 0; i < g_sum.size(); ++i) {
    g_sum[i] += m.grads()[i];
    maxabs = std::max(maxabs, std::abs(double(g_whole[i])));
    maxdiff = std::max(maxdiff, std::abs(double(g_whole[i] - g_sum[i])));
  }
  EXPECT_GT(maxabs, 0);
  EXPECT_LT(maxdiff / maxabs, 1e-5);
  EXPECT_GT(whole.loss_sum, tail.loss_sum);
}

// End-to-end finite differences through a whole network of every layer type,
// on a sample of parameters from every layer. ReLU is left out: its kink makes
// central differences unreliable at network scale (the layer tests cover it).
TEST(Model, WholeNetworkGradientMatchesFiniteDifferences) {
  const Config cfg = parse_config(R"(
model:
  input: [1, 10, 10]
  classes: 10
  layers:
    - {type: conv2d, filters: 4, kernel: 3, padding: same}
    - {type: batchnorm}
    - {type: maxpool2d, pool: 2}
    - {type: conv2d, filters: 6, kernel: 3}
    - {type: flatten}
    - {type: dropout, rate: 0.2}
    - {type: dense, units: 8}
    - {type: dense, units: 10}
)",
                                  "test");
  Model m(cfg.model);
  m.init(5);
  const int b = 4;
  auto x = random_images(b, 100, 6);
  std::vector<int32_t> y = {7, 1, 3, 0};
  const StepInfo info{1, 2, 0};  // fixed step: the same dropout mask every pass
  m.train_step(x.data(), y.data(), b, 1.0f, info);
  std::vector<float> g(m.grads(), m.grads() + m.param_count());
  int checked = 0, bad = 0;
  for (const auto& p : m.param_info()) {
    for (size_t k = 0; k < p.count; k += std::max<size_t>(1, p.count / 6)) {
      const size_t i = p.offset + k;
      const float keep = m.params()[i];
      const float eps = 1e-3f;  // small: max-pool switches are kinks too
      m.params()[i] = keep + eps;
      const double lp = m.train_step(x.data(), y.data(), b, 1.0f, info).loss_sum;
      m.params()[i] = keep - eps;
      const double lm = m.train_step(x.data(), y.data(), b, 1.0f, info).loss_sum;
      m.params()[i] = keep;
      const double fd = (lp - lm) / (2 * eps);
      ++checked;
      if (std::abs(fd - g[i]) > 2e-3 + 2e-2 * std::abs(fd)) {
        ++bad;
        ADD_FAILURE() << p.name << "[" << k << "]: " << g[i] << " vs " << fd;
      }
    }
  }
  EXPECT_GT(checked, 40);
  EXPECT_EQ(bad, 0);
}

// conv2d(relu) before maxpool2d runs as conv, pool, relu (cheaper backward):
// the same numbers as a model that spells it that way.
TEST(Model, ReluAfterPoolIsTheSameAsReluBeforePool) {
  const char* fused = R"(
model:
  input: [1, 12, 12]
  classes: 10
  layers:
    - {type: conv2d, filters: 8, kernel: 3, activation: relu}
    - {type: maxpool2d, pool: 2}
    - {type: flatten}
    - {type: dense, units: 10}
)";
  const char* spelled = R"(
model:
  input: [1, 12, 12]
  classes: 10
  layers:
    - {type: conv2d, filters: 8, kernel: 3}
    - {type: relu}
    - {type: maxpool2d, pool: 2}
    - {type: flatten}
    - {type: dense, units: 10}
)";
  Model a(parse_config(fused, "a").model), b(parse_config(spelled, "b").model);
  ASSERT_EQ(a.param_count(), b.param_count());
  a.init(4);
  std::copy(a.params(), a.params() + a.param_count(), b.params());
  auto x = random_images(5, 144, 1);
  for (auto& v : x) v -= 0.5f;  // negative pre-activations too
  std::vector<int32_t> y = {1, 2, 3, 4, 5};
  const LossResult la = a.train_step(x.data(), y.data(), 5, 0.2f, {});
  const LossResult lb = b.train_step(x.data(), y.data(), 5, 0.2f, {});
  EXPECT_EQ(la.loss_sum, lb.loss_sum);
  EXPECT_EQ(std::vector<float>(a.grads(), a.grads() + a.param_count()),
            std::vector<float>(b.grads(), b.grads() + b.param_count()));
}

// Chains of other batch sizes (evaluation, the last partial batch) share
// activation memory with the training chain: using them between steps must not
// change what training computes.
TEST(Model, EvaluationBetweenStepsDoesNotDisturbTraining) {
  const Config cfg = load_config("configs/mnist.yaml");
  auto x = random_images(8, 784, 2);
  std::vector<int32_t> y = {0, 1, 2, 3, 4, 5, 6, 7};
  auto run = [&](bool interleave) {
    Model m(cfg.model);
    m.init(1);
    std::vector<float> out;
    for (int step = 0; step < 3; ++step) {
      m.train_step(x.data(), y.data(), 8, 0.125f, {});
      if (interleave) {
        m.evaluate(x.data(), y.data(), 5);
        m.train_step(x.data(), y.data(), 3, 0.125f, {});  // another training chain
        m.log_probs(x.data(), 8);
        m.train_step(x.data(), y.data(), 8, 0.125f, {});  // recompute this step's grads
      }
      out.insert(out.end(), m.grads(), m.grads() + m.param_count());
    }
    return out;
  };
  EXPECT_EQ(run(false), run(true));
}

// freeze_params (dpcnn-predict) keeps each inference layer's weights in the
// primitives' layout across batches. The answers must be the ones an unfrozen
// model gives, bit for bit, whatever other chains (another batch size, a
// training step) do to the shared buffers in between, and a write through
// params() must end the freeze and be seen.
TEST(Model, FrozenParametersGiveTheSameAnswersAndAWriteEndsTheFreeze) {
  for (Precision p : {Precision::kFp32, Precision::kBf16}) {
    if (p == Precision::kBf16 && !detect_cpu_bf16().isa_bf16) continue;  // fp32 still tested
    const Config cfg = load_config("configs/mnist.yaml");
    Model frozen(cfg.model, p), plain(cfg.model, p);
    // As the trainer does: bf16 training chains, f32 inference chains, so
    // the training chain's weight copy differs from the inference one's.
    frozen.set_inference_precision(Precision::kFp32);
    plain.set_inference_precision(Precision::kFp32);
    frozen.init(4);
    plain.init(4);
    frozen.freeze_params();
    auto x = random_images(8, 784, 5);
    std::vector<int32_t> y = {0, 1, 2, 3, 4, 5, 6, 7};
    auto same = [&](int n) {
      const float* a = frozen.log_probs(x.data(), n);
      std::vector<float> va(a, a + n * 10);
      const float* b = plain.log_probs(x.data(), n);
      return va == std::vector<float>(b, b + n * 10);
    };
    EXPECT_TRUE(same(8));
    EXPECT_TRUE(same(3));  // another chain: the shared reorder buffer is rewritten
    frozen.train_step(x.data(), y.data(), 8, 0.125f, {});
    plain.train_step(x.data(), y.data(), 8, 0.125f, {});
    EXPECT_TRUE(same(8));
    const float* before = frozen.log_probs(x.data(), 8);
    const float first = before[0];
    for (size_t i = 0; i < frozen.param_count(); i += 7) {
      frozen.params()[i] += 0.25f;  // ends the freeze
      plain.params()[i] += 0.25f;
    }
    EXPECT_NE(frozen.log_probs(x.data(), 8)[0], first);
    EXPECT_TRUE(same(8));
    frozen.freeze_params();
    EXPECT_TRUE(same(8));
    EXPECT_TRUE(same(3));
  }
}

TEST(Model, LogProbsAreNormalised) {
  const Config cfg = load_config("configs/mnist.yaml");
  Model m(cfg.model);
  m.init(9);
  auto x = random_images(2, 784, 10);
  const float* lp = m.log_probs(x.data(), 2);
  for (int i = 0; i < 2; ++i) {
    double s = 0;
    for (int k = 0; k < 10; ++k) s += std::exp(lp[i * 10 + k]);
    EXPECT_NEAR(s, 1.0, 1e-5);
  }
}

}  // namespace
}  // namespace dpcnn
