#include "checkpoint/model_io.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "core/error.h"
#include "core/rng.h"

namespace dpcnn {
namespace {

namespace fs = std::filesystem;

std::vector<float> random_floats(size_t n, uint64_t seed, float scale = 1.0f) {
  Rng r(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = scale * r.uniform01();
  return v;
}

// A model and optimizer that have taken a few (fake) steps, so that every
// buffer holds something a fresh one would not.
struct Trained {
  Config cfg;
  Model model;
  std::unique_ptr<Optimizer> opt;
  explicit Trained(const Config& c, uint64_t seed)
      : cfg(c), model(c.model), opt(make_optimizer(c.optimizer, model.param_count())) {
    model.init(seed);
    for (int s = 0; s < 3; ++s) {
      const auto g = random_floats(model.param_count(), seed + s, 0.01f);
      opt->step(model.params(), g.data(), model.param_count(), 1e-3f);
    }
  }
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string temp_file(const std::string& name) {
  return (fs::temp_directory_path() / (std::to_string(::getpid()) + "-" + name)).string();
}

TEST(ModelIo, SpecTextIsCanonicalAndSeesEveryField) {
  const Config a = load_config("configs/mnist.yaml");
  const std::string spec = model_spec_text(a.model);
  EXPECT_EQ(spec.substr(0, spec.find('\n', spec.find('\n') + 1) + 1),
            "input 1x28x28 classes 10\n"
            "0 conv2d filters=32 kernel=3x3 strides=1x1 padding=valid activation=relu "
            "use_bias=true\n");
  EXPECT_EQ(spec, model_spec_text(load_config("configs/mnist.yaml").model));
  for (const char* change :
       {"model.layers[0].filters=16", "model.layers[0].padding=same", "model.layers[1].pool=3",
        "model.layers[7].use_bias=false", "model.classes=10", "model.layers[6].activation=none"}) {
    const Config b = load_config("configs/mnist.yaml", {change});
    if (std::string(change) == "model.classes=10")
      EXPECT_EQ(model_spec_text(b.model), spec);
    else
      EXPECT_NE(model_spec_text(b.model), spec) << change;
  }
}

TEST(ModelIo, SaveLoadRoundTripGivesIdenticalLogitsAndOptimizerState) {
  const Config cfg = load_config("configs/mnist.yaml");
  Trained a(cfg, 1);
  CheckpointData c;
  c.config_yaml = cfg.yaml;
  save_model(a.model, a.opt.get(), cfg.optimizer.type, &c);
  ASSERT_EQ(c.params.size(), a.model.param_info().size());
  EXPECT_EQ(c.optimizer_type, "rmsprop");
  EXPECT_EQ(c.optimizer_iterations, 3);
  ASSERT_EQ(c.optimizer_slots.size(), 1u);
  EXPECT_EQ(c.optimizer_slots[0].name, "opt.velocity");

  const std::string path = temp_file("model_io.pb");
  write_checkpoint(path, c);
  const CheckpointData back = read_checkpoint(path);
  fs::remove(path);

  Trained b(cfg, 2);
  load_model(back, path, &b.model, b.opt.get(), "rmsprop");
  EXPECT_EQ(std::vector<float>(a.model.params(), a.model.params() + a.model.param_count()),
            std::vector<float>(b.model.params(), b.model.params() + b.model.param_count()));
  EXPECT_EQ(*a.opt->slots()[0].second, *b.opt->slots()[0].second);
  EXPECT_EQ(b.opt->iterations, 3);

  const auto x = random_floats(4 * a.model.input_size(), 9);
  const float* la = a.model.log_probs(x.data(), 4);
  const std::vector<float> va(la, la + 40);
  const float* lb = b.model.log_probs(x.data(), 4);
  EXPECT_EQ(va, std::vector<float>(lb, lb + 40));
}

TEST(ModelIo, BatchNormStateTravelsToo) {
  const Config cfg = load_config("configs/mnist.yaml", {"model.layers[1]={type: batchnorm}"});
  Model a(cfg.model);
  a.init(1);
  ASSERT_GT(a.state_count(), 0u);
  for (size_t i = 0; i < a.state_count(); ++i) a.state()[i] = 0.5f + static_cast<float>(i);
  CheckpointData c;
  save_model(a, nullptr, "", &c);
  Model b(cfg.model);
  b.init(2);
  load_model(c, "bn.pb", &b, nullptr);
  EXPECT_EQ(std::vector<float>(a.state(), a.state() + a.state_count()),
            std::vector<float>(b.state(), b.state() + b.state_count()));
}

TEST(ModelIo, AnotherModelsCheckpointIsRefusedBeforeAnythingIsTouched) {
  const Config cfg = load_config("configs/mnist.yaml");
  Model a(cfg.model);
  a.init(1);
  CheckpointData c;
  save_model(a, nullptr, "", &c);

  const Config other_cfg = load_config("configs/mnist.yaml", {"model.layers[6].units=32"});
  Model other(other_cfg.model);
  other.init(5);
  const std::vector<float> before(other.params(), other.params() + other.param_count());
  try {
    load_model(c, "runs/x/ckpt.pb", &other, nullptr);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "checkpoint 'runs/x/ckpt.pb' is of another model: expected '6 dense units=32 "
              "activation=relu use_bias=true', found '6 dense units=64 activation=relu "
              "use_bias=true'");
  }
  EXPECT_EQ(before, std::vector<float>(other.params(), other.params() + other.param_count()));

  // Same spec text but tensors that do not fit (a forged or buggy writer).
  CheckpointData forged = c;
  forged.params[2].shape = {64, 32, 3, 2};
  try {
    load_model(forged, "f.pb", &a, nullptr);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("checkpoint 'f.pb' is of another model: expected "
                                         "layers.2.conv2d.weight [64,32,3,3], found"),
              std::string::npos)
        << e.what();
  }
}

TEST(ModelIo, AnotherOptimizersStateIsRefused) {
  const Config cfg = load_config("configs/mnist.yaml");
  Trained a(cfg, 1);
  CheckpointData c;
  save_model(a.model, a.opt.get(), "rmsprop", &c);
  Trained adam(load_config("configs/mnist.yaml", {"optimizer.type=adam"}), 2);
  EXPECT_THROW(load_model(c, "c.pb", &adam.model, adam.opt.get(), "adam"), Error);
  try {
    load_model(c, "c.pb", &adam.model, adam.opt.get());
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("checkpoint 'c.pb' is of another optimizer: ", 0), 0u)
        << e.what();
  }
  CheckpointData weights_only;
  save_model(a.model, nullptr, "", &weights_only);
  EXPECT_THROW(load_model(weights_only, "w.pb", &a.model, a.opt.get()), Error);
}

// Not a check: the numbers for the report (size and time of one checkpoint of
// the seed model with its RMSprop state).
TEST(ModelIo, MeasureSeedModelCheckpointWrite) {
  const Config cfg = load_config("configs/mnist.yaml");
  Trained a(cfg, 1);
  CheckpointData c;
  c.config_yaml = cfg.yaml;
  const std::string dir = temp_file("measure");
  CheckpointDir d(dir);
  double best = 1e9;
  std::string path;
  for (int i = 0; i < 5; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    save_model(a.model, a.opt.get(), "rmsprop", &c);
    c.global_step = i;
    path = d.save(c, 2);
    best = std::min(best, seconds_since(t0));
  }
  auto t0 = std::chrono::steady_clock::now();
  const std::string bytes_in_memory = serialize_checkpoint(c);
  const double encode_s = seconds_since(t0);
  t0 = std::chrono::steady_clock::now();
  const CheckpointData back = read_checkpoint(path);
  const double read_s = seconds_since(t0);
  const auto bytes = fs::file_size(path);
  std::printf(
      "seed model checkpoint: %zu params, %llu bytes; save %.2f ms (best of 5; encode + SHA-256 "
      "%.2f ms, the rest write + 2 fsync + rename), read + verify %.2f ms\n",
      a.model.param_count(), static_cast<unsigned long long>(bytes), best * 1e3, encode_s * 1e3,
      read_s * 1e3);
  RecordProperty("bytes", static_cast<int>(bytes));
  EXPECT_LT(bytes, 2 * 93322 * 4 + 20000);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace dpcnn
