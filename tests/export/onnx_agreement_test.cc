// Exported models run in runtimes no one here wrote: a few training steps on
// synthetic digits (the seed model, and a model with every layer type dpcnn
// trains), then tests/bench/onnx_agreement.py checks the ONNX file with
// python3-onnx's checker and runs it with python3-opencv's DNN module on the
// whole test split, comparing with dpcnn-predict --json within 1e-4. Skipped,
// with the reason, when Debian's python3-onnx or python3-opencv is missing.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "../integration/process_testing.h"
#include "../integration/synthetic_data.h"

namespace dpcnn {
namespace {

namespace fs = std::filesystem;
using testing::sh;

const char* kEveryLayer = R"(name: every-layer
train: {epochs: 3, batch_size: 32, eval: false}
optimizer: {type: adam, learning_rate: 3.0e-3}
data: {class_names: [zero, one, two, three, four, five, six, seven, eight, nine]}
model:
  input: [1, 28, 28]
  classes: 10
  layers:
    - {type: conv2d, filters: 8, kernel: 3, padding: same, use_bias: false}
    - {type: batchnorm, momentum: 0.9}
    - {type: relu}
    - {type: maxpool2d, pool: 3, strides: 2, padding: same}
    - {type: conv2d, filters: 8, kernel: [3, 5], strides: 2, activation: relu}
    - {type: maxpool2d, pool: 2}
    - {type: dropout, rate: 0.3}
    - {type: flatten}
    - {type: dense, units: 32, activation: relu}
    - {type: batchnorm, momentum: 0.9}
    - {type: dropout, rate: 0.2}
    - {type: dense, units: 16, use_bias: false}
    - {type: relu}
    - {type: dense, units: 10}
)";

class OnnxAgreement : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("dpcnn-onnx-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    data_ = dpcnn::testing::synthetic_mnist_dir();
    python_ = fs::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Trains `config` briefly, then runs the agreement script on its checkpoint.
  void check(const std::string& config, const std::string& sets, const std::string& names) {
    const std::string runs = (dir_ / "runs").string();
    const auto train = sh(std::string(DPCNN_BIN_DIR) + "/dpcnn-train --config " + config +
                          " --progress lines --set data.dir=" + data_ + " runs_dir=" + runs +
                          " train.eval=false " + sets);
    ASSERT_EQ(train.status, 0) << train.output;
    const auto r = sh(python_ + " tests/bench/onnx_agreement.py --bin " + DPCNN_BIN_DIR +
                      " --data " + data_ + " --checkpoint " + runs + "/" + name_of(config) +
                      (names.empty() ? "" : " --expect-class-names " + names));
    if (r.status == 77) GTEST_SKIP() << r.output;
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("\"argmax_disagree\": 0"), std::string::npos) << r.output;
    std::cout << r.output;
  }
  static std::string name_of(const std::string& config) {
    return config.find("every") != std::string::npos ? "every-layer" : "mnist";
  }

  fs::path dir_;
  std::string data_, python_;
};

TEST_F(OnnxAgreement, SeedModelMatchesDpcnnPredictInOpenCV) {
  check("configs/mnist.yaml", "train.max_steps=25", "");
}

TEST_F(OnnxAgreement, EveryLayerTypeMatchesDpcnnPredictInOpenCV) {
  const std::string cfg = (dir_ / "every-layer.yaml").string();
  std::ofstream(cfg) << kEveryLayer;
  check(cfg, "", "zero,one,two,three,four,five,six,seven,eight,nine");
}

// Bad input to dpcnn-export: one line naming what is wrong, exit 2, no file.
TEST(ExportCli, BadInputIsOneLineAndExitCode2) {
  const fs::path dir =
      fs::temp_directory_path() / ("dpcnn-export-cli-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "junk.pb") << "not a checkpoint";
  const std::string bin = std::string(DPCNN_BIN_DIR) + "/dpcnn-export";
  const std::string out = (dir / "x.onnx").string();
  const struct {
    std::string args, expect;
  } cases[] = {
      {"--checkpoint " + (dir / "missing").string() + " -o " + out, "missing': no such file"},
      {"--checkpoint " + (dir / "junk.pb").string() + " -o " + out, "not a dpcnn checkpoint"},
      {"--checkpoint " + (dir / "junk.pb").string(), "-o/--output FILE is required"},
      // No --checkpoint and no runs/ where it runs.
      {"-o " + out, "no --checkpoint given and no checkpoint under 'runs'"},
  };
  for (const auto& c : cases) {
    const auto r = sh("cd " + dir.string() + " && " + bin + " " + c.args);
    EXPECT_EQ(r.status, 2) << c.args << "\n" << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
    EXPECT_EQ(r.output.rfind("dpcnn-export: ", 0), 0u) << r.output;
    EXPECT_NE(r.output.find(c.expect), std::string::npos) << c.args << "\n" << r.output;
    EXPECT_FALSE(fs::exists(out)) << c.args;
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace dpcnn
