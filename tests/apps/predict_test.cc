// dpcnn-predict end to end. The answers are checked against a model whose
// right answers are known: flatten + dense with weights set by hand so that
// each class's logit is 0.1 x the ink in its own two-row band, on digits that
// have a bright bar in their class's band. The test computes every
// probability itself (softmax in double) and compares the tool's, for PNG
// files and for an IDX set. An untrained seed model serves the bad-input cases.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "checkpoint/checkpoint.h"
#include "checkpoint/model_io.h"
#include "config/config.h"
#include "core/rng.h"
#include "data/idx.h"
#include "image/image.h"

namespace dpcnn {
namespace {

namespace fs = std::filesystem;

constexpr int kDigits = 12;

struct Result {
  int code = -1;
  std::string out, err;
};

class PredictTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = (fs::temp_directory_path() / ("dpcnn-predict-" + std::to_string(::getpid()))).string();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    const Config cfg = load_config("configs/mnist.yaml");
    Model m(cfg.model);
    m.init(11);
    CheckpointData c;
    c.config_yaml = cfg.yaml;
    c.global_step = 42;
    save_model(m, nullptr, "", &c);
    CheckpointDir(dir_ + "/run/checkpoints").save(c, 3);

    // The band model: logit k = 0.1 * sum of the pixels (in [0,1]) in rows
    // 2k+4 and 2k+5, columns 4..23; bias 0.01 k.
    const Config band =
        load_config("configs/mnist.yaml",
                    {"name=band", "model.layers=[{type: flatten}, {type: dense, units: 10}]"});
    Model bm(band.model);
    bm.init(1);
    CheckpointData bc;
    bc.config_yaml = band.yaml;
    save_model(bm, nullptr, "", &bc);
    for (TensorData& t : bc.params) {
      if (t.shape == std::vector<int64_t>{10, 784}) {
        for (int k = 0; k < 10; ++k)
          for (int p = 0; p < 784; ++p) t.data[k * 784 + p] = in_band(k, p) ? 0.1f : 0.0f;
      } else {
        ASSERT_EQ(t.shape, std::vector<int64_t>{10});
        for (int k = 0; k < 10; ++k) t.data[k] = 0.01f * static_cast<float>(k);
      }
    }
    CheckpointDir(dir_ + "/band/checkpoints").save(bc, 3);
    // The same model from a config that names its preprocessing (IDX data, as
    // configs/fashion-mnist.yaml does): --preprocess auto must take it.
    CheckpointData nc = bc;
    nc.config_yaml =
        load_config("configs/mnist.yaml",
                    {"name=band", "model.layers=[{type: flatten}, {type: dense, units: 10}]",
                     "data.preprocess=none"})
            .yaml;
    CheckpointDir(dir_ + "/named/checkpoints").save(nc, 3);

    // Digits: a bright bar in their class's band over a dark, noisy field.
    Rng r(5);
    IdxArray images{{kDigits, 28, 28}, std::vector<uint8_t>(kDigits * 784)};
    IdxArray labels{{kDigits}, std::vector<uint8_t>(kDigits)};
    for (int i = 0; i < kDigits; ++i) {
      labels.data[i] = static_cast<uint8_t>(i % 10);
      for (int p = 0; p < 784; ++p)
        images.data[i * 784 + p] =
            static_cast<uint8_t>(in_band(i % 10, p) ? 180 + r.below(76) : r.below(40));
      // What the tool must answer, computed here in double.
      std::vector<double> logit(10);
      for (int k = 0; k < 10; ++k) {
        logit[k] = 0.01f * static_cast<float>(k);
        for (int p = 0; p < 784; ++p)
          if (in_band(k, p)) logit[k] += 0.1 * (images.data[i * 784 + p] / 255.0);
      }
      const double mx = *std::max_element(logit.begin(), logit.end());
      double z = 0;
      for (double l : logit) z += std::exp(l - mx);
      std::vector<double> prob;
      for (double l : logit) prob.push_back(std::exp(l - mx) / z);
      expected_.push_back(prob);
      const std::string png = dir_ + "/digit" + std::to_string(i) + ".png";
      write_image(png, images.data.data() + i * 784, 28, 28, 1);
      pngs_ += " " + png;
    }
    write_idx(dir_ + "/images-idx3-ubyte", images);
    write_idx(dir_ + "/labels-idx1-ubyte", labels);
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  static Result run(const std::string& args) {
    const std::string out = dir_ + "/stdout", err = dir_ + "/stderr";
    const std::string cmd =
        std::string(DPCNN_BIN_DIR) + "/dpcnn-predict " + args + " >" + out + " 2>" + err;
    const int status = std::system(cmd.c_str());
    Result r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = slurp(out);
    r.err = slurp(err);
    return r;
  }
  static std::string slurp(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  static std::string file(const std::string& name, const std::string& bytes) {
    std::ofstream(dir_ + "/" + name, std::ios::binary) << bytes;
    return dir_ + "/" + name;
  }
  // (prediction, probabilities) of each JSON line that has them.
  static std::vector<std::pair<int, std::vector<double>>> parse(const std::string& json) {
    std::vector<std::pair<int, std::vector<double>>> out;
    const std::regex re(R"re("prediction":(\d+),.*"probabilities":\[([^\]]*)\])re");
    std::istringstream lines(json);
    for (std::string line; std::getline(lines, line);) {
      std::smatch m;
      if (!std::regex_search(line, m, re)) continue;
      std::vector<double> p;
      std::istringstream ps(m[2].str());
      for (std::string v; std::getline(ps, v, ',');) p.push_back(std::stod(v));
      out.push_back({std::stoi(m[1].str()), p});
    }
    return out;
  }
  static int lines(const std::string& s) {
    return static_cast<int>(std::count(s.begin(), s.end(), '\n'));
  }

  static bool in_band(int k, int p) {
    const int y = p / 28, x = p % 28;
    return y >= 2 * k + 4 && y < 2 * k + 6 && x >= 4 && x < 24;
  }
  // The tool's (prediction, probabilities) for each digit equal the ones
  // computed here, and the prediction is the digit's label.
  static void expect_known_answers(const std::vector<std::pair<int, std::vector<double>>>& got) {
    ASSERT_EQ(got.size(), static_cast<size_t>(kDigits));
    for (int i = 0; i < kDigits; ++i) {
      EXPECT_EQ(got[i].first, i % 10) << "digit " << i;
      ASSERT_EQ(got[i].second.size(), 10u);
      for (int k = 0; k < 10; ++k) EXPECT_NEAR(got[i].second[k], expected_[i][k], 1e-5) << i;
    }
  }

  static std::string dir_, pngs_;
  static std::vector<std::vector<double>> expected_;
};
std::string PredictTest::dir_, PredictTest::pngs_;
std::vector<std::vector<double>> PredictTest::expected_;

TEST_F(PredictTest, PngAndIdxPredictionsAreTheKnownAnswers) {
  // The probabilities must really discriminate, or matching them proves little.
  for (int i = 0; i < kDigits; ++i) ASSERT_GT(expected_[i][i % 10], 0.5);
  const Result images =
      run("--checkpoint " + dir_ + "/band/checkpoints --preprocess resize --json" + pngs_);
  ASSERT_EQ(images.code, 0) << images.err;
  expect_known_answers(parse(images.out));
  const Result idx = run("--checkpoint " + dir_ + "/band/checkpoints/latest --json --idx " + dir_ +
                         "/images-idx3-ubyte " + dir_ + "/labels-idx1-ubyte");
  ASSERT_EQ(idx.code, 0) << idx.err;
  expect_known_answers(parse(idx.out));
  // Every digit right: the confusion matrix is diagonal, 2 twos for 0 and 1.
  EXPECT_NE(idx.out.find("\"confusion\":[[2,0,0,0,0,0,0,0,0,0],[0,2,"), std::string::npos)
      << idx.out;
}

// MNIST-style preprocessing (auto's choice for an IDX model that names none)
// crops the digits to their ink and moves the bands: only the config's
// "none" gives the known answers.
TEST_F(PredictTest, AutoPreprocessingIsWhatTheModelsConfigNames) {
  const Result r = run("--checkpoint " + dir_ + "/named --json" + pngs_);
  ASSERT_EQ(r.code, 0) << r.err;
  expect_known_answers(parse(r.out));
}

TEST_F(PredictTest, TextOutputNamesEachFileWithItsDigitAndProbability) {
  const std::string ckpt = resolve_checkpoint_path(dir_ + "/band");
  const Result r = run("--checkpoint " + ckpt + " --preprocess resize " + dir_ + "/digit0.png " +
                       dir_ + "/digit1.png");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  // "<file>: <digit> (p=<p>)  top3: <d> <p>, <d> <p>, <d> <p>", from the known answers.
  std::string want;
  for (int i : {0, 1}) {
    std::vector<int> order(10);
    for (int k = 0; k < 10; ++k) order[k] = k;
    std::sort(order.begin(), order.end(),
              [&](int a, int b) { return expected_[i][a] > expected_[i][b]; });
    char line[256];
    std::snprintf(line, sizeof line,
                  "%s/digit%d.png: %d (p=%.3f)  top3: %d %.3f, %d %.3f, %d %.3f\n", dir_.c_str(), i,
                  i, expected_[i][i], order[0], expected_[i][order[0]], order[1],
                  expected_[i][order[1]], order[2], expected_[i][order[2]]);
    want += line;
  }
  EXPECT_EQ(r.out, want);
  const Result show = run("--checkpoint " + ckpt + " --show " + dir_ + "/digit0.png");
  ASSERT_EQ(show.code, 0);
  EXPECT_EQ(lines(show.out), 1 + 28);
  EXPECT_NE(show.out.find("@@"), std::string::npos);
}

TEST_F(PredictTest, IdxEvaluationPrintsAccuracyAndConfusionMatrix) {
  const Result r = run("--checkpoint " + dir_ + "/band --idx " + dir_ + "/images-idx3-ubyte " +
                       dir_ + "/labels-idx1-ubyte");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(std::regex_search(r.out, std::regex(R"(^accuracy 1\.0000 \(12/12\)\n)"))) << r.out;
  EXPECT_EQ(lines(r.out), 1 + 1 + 1 + 10);
}

TEST_F(PredictTest, WritePngWritesLoadableDigits) {
  const Result r = run("--idx " + dir_ + "/images-idx3-ubyte " + dir_ +
                       "/labels-idx1-ubyte --write-png " + dir_ + "/out --count 3");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(lines(r.out), 3);
  const GrayImage g = load_image(dir_ + "/out/00002-label-2.png");
  const GrayImage want = load_image(dir_ + "/digit2.png");
  EXPECT_EQ(g.pixels, want.pixels);
}

TEST_F(PredictTest, BadInputsGiveOneLineAndExitCode2) {
  const std::string ckpt = "--checkpoint " + dir_ + "/run ";
  std::string damaged = slurp(resolve_checkpoint_path(dir_ + "/run"));
  damaged[damaged.size() / 2] ^= 1;
  fs::create_directories(dir_ + "/damaged");
  std::ofstream(dir_ + "/damaged/ckpt-0000000001.pb", std::ios::binary) << damaged;

  // Another model's weights under this run's config.
  const Config cfg = load_config("configs/mnist.yaml");
  const Config small = load_config("configs/mnist.yaml", {"model.layers[6].units=32"});
  Model other(small.model);
  other.init(1);
  CheckpointData c;
  save_model(other, nullptr, "", &c);
  c.config_yaml = cfg.yaml;
  write_checkpoint(dir_ + "/other.pb", c);
  c.config_yaml.clear();  // weights without the config that says what they are
  write_checkpoint(dir_ + "/no-config.pb", c);

  // IDX sets that do not fit the model: 8x8 images, a label past the classes,
  // fewer labels than images.
  write_idx(dir_ + "/small-images", IdxArray{{2, 8, 8}, std::vector<uint8_t>(128)});
  write_idx(dir_ + "/two-labels", IdxArray{{2}, {1, 2}});
  write_idx(dir_ + "/one-image", IdxArray{{1, 28, 28}, std::vector<uint8_t>(784)});
  write_idx(dir_ + "/label-12", IdxArray{{1}, {12}});
  const std::string idx = ckpt + "--idx " + dir_;

  const struct {
    std::string args, expect;
  } cases[] = {
      {ckpt + file("text.png", "hello, not a picture"), "text.png': not an image"},
      {ckpt + file("empty.png", ""), "empty.png': empty file"},
      {ckpt + file("huge.pgm", "P5\n100000 100000\n255\n"), "absurd dimensions"},
      {ckpt + dir_ + "/nope.png", "nope.png': cannot open: No such file or directory"},
      {"--checkpoint " + dir_ + "/missing " + dir_ + "/digit0.png",
       "missing': no such file or directory"},
      {"--checkpoint " + dir_ + "/damaged " + dir_ + "/digit0.png", "checksum mismatch (damaged)"},
      {"--checkpoint " + dir_ + "/digit1.png " + dir_ + "/digit0.png", "not a dpcnn checkpoint"},
      {"--checkpoint " + dir_ + "/other.pb " + dir_ + "/digit0.png", "is of another model"},
      {ckpt, "nothing to predict"},
      {ckpt + "--preprocess sideways " + dir_ + "/digit0.png", "--preprocess"},
      {ckpt + "--idx " + dir_ + "/labels-idx1-ubyte " + dir_ + "/labels-idx1-ubyte",
       "expected images"},
      {idx + "/small-images " + dir_ + "/two-labels",
       "small-images' holds 8x8 images; the model takes 1x28x28"},
      {idx + "/one-image " + dir_ + "/label-12",
       "label-12': label 12 of sample 0 is not below the model's 10 classes"},
      {idx + "/one-image " + dir_ + "/two-labels", "two-labels': expected 1 labels to match"},
      {"--checkpoint " + dir_ + "/no-config.pb " + dir_ + "/digit0.png",
       "holds no config; cannot rebuild its model"},
      {ckpt + "--no-such-flag " + dir_ + "/digit0.png", "(see --help)"},
  };
  for (const auto& t : cases) {
    const Result r = run(t.args);
    EXPECT_EQ(r.code, 2) << t.args;
    EXPECT_EQ(lines(r.err), 1) << t.args << "\n" << r.err;
    EXPECT_EQ(r.err.rfind("dpcnn-predict: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(t.expect), std::string::npos) << t.args << "\n" << r.err;
    EXPECT_EQ(r.out, "") << t.args;
  }
  // A bad file among good ones costs its own line; the good ones are answered.
  const Result mixed =
      run(ckpt + dir_ + "/digit0.png " + dir_ + "/text.png " + dir_ + "/digit1.png");
  EXPECT_EQ(mixed.code, 2);
  EXPECT_EQ(lines(mixed.err), 1);
  EXPECT_EQ(lines(mixed.out), 2);
}

}  // namespace
}  // namespace dpcnn

namespace dpcnn {
namespace {

// A run whose best checkpoint (the band model, every digit right) is older
// than its latest (the same model with zero weights): given the directory,
// dpcnn-predict reads best and says so; given `latest`, it reads latest.
TEST_F(PredictTest, ADirectoryGivesItsBestCheckpointAndSaysSo) {
  CheckpointData good = read_checkpoint(resolve_checkpoint_path(dir_ + "/band"));
  CheckpointDir d(dir_ + "/pick/checkpoints");
  good.global_step = 10;
  d.save(good, 1);
  d.set_best(10);
  CheckpointData zero = good;
  zero.global_step = 20;
  for (TensorData& t : zero.params) std::fill(t.data.begin(), t.data.end(), 0.0f);
  d.save(zero, 1);  // keep 1: rotation must spare best
  const std::string idx = " --idx " + dir_ + "/images-idx3-ubyte " + dir_ + "/labels-idx1-ubyte";
  const Result best = run("--checkpoint " + dir_ + "/pick" + idx);
  ASSERT_EQ(best.code, 0) << best.err;
  EXPECT_NE(best.err.find("using the best checkpoint '" + dir_ +
                          "/pick/checkpoints/ckpt-0000000010.pb' (checkpoints/best)"),
            std::string::npos)
      << best.err;
  EXPECT_NE(best.out.find("12/12"), std::string::npos) << best.out;
  const Result latest = run("--checkpoint " + dir_ + "/pick/checkpoints/latest" + idx);
  ASSERT_EQ(latest.code, 0) << latest.err;
  EXPECT_EQ(latest.err.find("best"), std::string::npos) << latest.err;
  EXPECT_EQ(latest.out.find("12/12"), std::string::npos) << latest.out;
}

}  // namespace
}  // namespace dpcnn
