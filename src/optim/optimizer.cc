#include "optim/optimizer.h"

#include <cmath>
#include <numbers>

#include "core/error.h"

namespace dpcnn {
namespace {

// The update loops run over every parameter each step (93k for the seed
// model). Debian builds for baseline x86-64, so each loop is cloned for AVX2
// and AVX-512 and the best is picked at load time; -fno-math-errno (CMake)
// lets sqrt vectorise.
#define DPCNN_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

DPCNN_VECTOR_CLONES void decay(float* p, size_t n, float lr, float wd) {
  if (wd == 0.0f) return;
  const float f = 1.0f - lr * wd;
  for (size_t i = 0; i < n; ++i) p[i] *= f;
}

// Keras (and TF's kernel) put epsilon INSIDE the root: lr g / sqrt(v + eps).
DPCNN_VECTOR_CLONES void rmsprop_update(float* p, const float* g, float* v, float* mom, size_t n,
                                        float lr, float rho, float eps, float m) {
  if (mom) {
    for (size_t i = 0; i < n; ++i) {
      v[i] = rho * v[i] + (1.0f - rho) * g[i] * g[i];
      mom[i] = m * mom[i] + lr * g[i] / std::sqrt(v[i] + eps);
      p[i] -= mom[i];
    }
  } else {
    for (size_t i = 0; i < n; ++i) {
      v[i] = rho * v[i] + (1.0f - rho) * g[i] * g[i];
      p[i] -= lr * g[i] / std::sqrt(v[i] + eps);
    }
  }
}

DPCNN_VECTOR_CLONES void adam_update(float* p, const float* g, float* m, float* v, size_t n,
                                     float alpha, float b1, float b2, float eps) {
  for (size_t i = 0; i < n; ++i) {
    m[i] = b1 * m[i] + (1.0f - b1) * g[i];
    v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
    p[i] -= alpha * m[i] / (std::sqrt(v[i]) + eps);
  }
}

class Sgd : public Optimizer {
 public:
  Sgd(const OptimizerConfig& c, size_t n) : c_(c), v_(c.momentum > 0 ? n : 0, 0.0f) {}
  void step(float* p, const float* g, size_t n, float lr) override {
    decay(p, n, lr, c_.weight_decay);
    const float m = c_.momentum;
    if (m == 0.0f) {
      for (size_t i = 0; i < n; ++i) p[i] -= lr * g[i];
    } else if (c_.nesterov) {  // Keras: v = m v - lr g; p += m v - lr g
      for (size_t i = 0; i < n; ++i) {
        v_[i] = m * v_[i] - lr * g[i];
        p[i] += m * v_[i] - lr * g[i];
      }
    } else {
      for (size_t i = 0; i < n; ++i) {
        v_[i] = m * v_[i] - lr * g[i];
        p[i] += v_[i];
      }
    }
    ++iterations;
  }
  std::vector<std::pair<std::string, std::vector<float>*>> slots() override {
    if (v_.empty()) return {};
    return {{"momentum", &v_}};
  }

 private:
  OptimizerConfig c_;
  std::vector<float> v_;
};

class RmsProp : public Optimizer {
 public:
  RmsProp(const OptimizerConfig& c, size_t n)
      : c_(c), v_(n, 0.0f), mom_(c.momentum > 0 ? n : 0, 0.0f) {}
  void step(float* p, const float* g, size_t n, float lr) override {
    decay(p, n, lr, c_.weight_decay);
    rmsprop_update(p, g, v_.data(), mom_.empty() ? nullptr : mom_.data(), n, lr, c_.rho, c_.epsilon,
                   c_.momentum);
    ++iterations;
  }
  std::vector<std::pair<std::string, std::vector<float>*>> slots() override {
    if (mom_.empty()) return {{"velocity", &v_}};
    return {{"velocity", &v_}, {"momentum", &mom_}};
  }

 private:
  OptimizerConfig c_;
  std::vector<float> v_, mom_;
};

class Adam : public Optimizer {
 public:
  Adam(const OptimizerConfig& c, size_t n) : c_(c), m_(n, 0.0f), v_(n, 0.0f) {}
  void step(float* p, const float* g, size_t n, float lr) override {
    decay(p, n, lr, c_.weight_decay);
    ++iterations;
    const float b1 = c_.beta1, b2 = c_.beta2, eps = c_.epsilon;
    const double t = static_cast<double>(iterations);
    // Keras: alpha = lr * sqrt(1 - b2^t) / (1 - b1^t); p -= alpha m / (sqrt(v) + eps)
    const float alpha =
        static_cast<float>(lr * std::sqrt(1.0 - std::pow(b2, t)) / (1.0 - std::pow(b1, t)));
    adam_update(p, g, m_.data(), v_.data(), n, alpha, b1, b2, eps);
  }

  std::vector<std::pair<std::string, std::vector<float>*>> slots() override {
    return {{"m", &m_}, {"v", &v_}};
  }

 private:
  OptimizerConfig c_;
  std::vector<float> m_, v_;
};

}  // namespace

std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& cfg, size_t n) {
  if (cfg.type == "sgd") return std::make_unique<Sgd>(cfg, n);
  if (cfg.type == "rmsprop") return std::make_unique<RmsProp>(cfg, n);
  if (cfg.type == "adam") return std::make_unique<Adam>(cfg, n);
  throw Error("unknown optimizer '" + cfg.type + "'");
}

float learning_rate(const OptimizerConfig& cfg, int64_t step, int64_t steps_per_epoch,
                    int64_t total_steps) {
  const auto& s = cfg.schedule;
  const float base = cfg.learning_rate;
  if (s.warmup_steps > 0 && step < s.warmup_steps)
    return base * static_cast<float>(step + 1) / static_cast<float>(s.warmup_steps);
  if (s.type == "step") {
    const int64_t epoch = steps_per_epoch > 0 ? step / steps_per_epoch : 0;
    return base * std::pow(s.gamma, static_cast<float>(epoch / std::max(1, s.step_epochs)));
  }
  if (s.type == "cosine") {
    const int64_t span = std::max<int64_t>(1, total_steps - s.warmup_steps);
    const double t = std::min(1.0, static_cast<double>(step - s.warmup_steps) / span);
    return s.min_lr +
           (base - s.min_lr) * 0.5f * static_cast<float>(1.0 + std::cos(std::numbers::pi * t));
  }
  return base;
}

}  // namespace dpcnn
