// dpcnn-predict as a user runs it on real folders: recursive and sorted with
// non-images counted, class names from the checkpoint's config, --top, --json
// with index and name, batches that do not change the answers, the default
// checkpoint inside a project directory, --version; and the double softmax
// that keeps probabilities at or below 1.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "checkpoint/checkpoint.h"
#include "checkpoint/model_io.h"
#include "config/config.h"
#include "core/rng.h"
#include "image/image.h"
#include "predict/classify.h"
#include "predict/inputs.h"

namespace dpcnn {
namespace {

namespace fs = std::filesystem;

struct Result {
  int code = -1;
  std::string out, err;
};

class PredictFolders : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("dpcnn-predict-folders-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    // Fashion-MNIST's config: its class names travel in the checkpoint.
    const Config cfg = load_config("configs/fashion-mnist.yaml");
    names_ = cfg.data.class_names;
    Model m(cfg.model);
    m.init(3);
    CheckpointData c;
    c.config_yaml = cfg.yaml;
    save_model(m, nullptr, "", &c);
    c.global_step = 10;
    CheckpointDir((dir_ / "proj/runs/fashion-mnist/version_0/checkpoints").string()).save(c, 3);
    c.global_step = 20;
    newest_ = CheckpointDir((dir_ / "proj/runs/other/version_3/checkpoints").string()).save(c, 3);
    // An older file under a newer step: the choice is by time written, not by name.
    fs::last_write_time(
        (dir_ / "proj/runs/fashion-mnist/version_0/checkpoints").string() + "/ckpt-0000000010.pb",
        fs::file_time_type::clock::now() - std::chrono::hours(1));

    Rng r(9);
    auto png = [&](const fs::path& p, int seed) {
      fs::create_directories(p.parent_path());
      std::vector<uint8_t> px(784);
      for (int i = 0; i < 784; ++i)
        px[i] = static_cast<uint8_t>((i % 28 > 8 + seed && i % 28 < 14 + seed) ? 220 : r.below(20));
      write_image(p.string(), px.data(), 28, 28, 1);
    };
    png(dir_ / "imgs/b/2.png", 2);
    png(dir_ / "imgs/a/1.png", 1);
    png(dir_ / "imgs/a/sub/0.PNG", 0);
    png(dir_ / "imgs/a/sub/3.bmp", 3);
    std::ofstream(dir_ / "imgs/notes.txt") << "not an image";
    std::ofstream(dir_ / "imgs/a/README") << "nor this";
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  static Result run(const std::string& args, const std::string& cwd = "") {
    const std::string out = (dir_ / "stdout").string(), err = (dir_ / "stderr").string();
    const std::string cmd = (cwd.empty() ? "" : "cd " + cwd + " && ") + DPCNN_BIN_DIR +
                            "/dpcnn-predict " + args + " >" + out + " 2>" + err;
    const int status = std::system(cmd.c_str());
    Result res;
    res.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    res.out = slurp(out);
    res.err = slurp(err);
    return res;
  }
  static std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  static std::vector<std::string> lines(const std::string& s) {
    std::vector<std::string> out;
    std::istringstream in(s);
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
  }
  std::string ckpt() const {
    return "--checkpoint " + (dir_ / "proj/runs/other/version_3").string() + " ";
  }

  static fs::path dir_;
  static std::string newest_;
  static std::vector<std::string> names_;
};
fs::path PredictFolders::dir_;
std::string PredictFolders::newest_;
std::vector<std::string> PredictFolders::names_;

TEST_F(PredictFolders, FolderIsSearchedRecursivelyInSortedOrderAndNonImagesAreCounted) {
  const Result r = run(ckpt() + "--top 1 " + (dir_ / "imgs").string());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "dpcnn-predict: skipped 2 non-image file(s) in the folders given\n");
  const auto out = lines(r.out);
  ASSERT_EQ(out.size(), 4u) << r.out;
  const std::string d = (dir_ / "imgs").string();
  const std::string files[] = {d + "/a/1.png", d + "/a/sub/0.PNG", d + "/a/sub/3.bmp",
                               d + "/b/2.png"};
  // Any of the ten names ("T-shirt/top" holds no regex metacharacter).
  std::string any_name;
  for (const auto& n : names_) {
    any_name += any_name.empty() ? "(" : "|";
    any_name += n;
  }
  any_name += ")";
  for (int i = 0; i < 4; ++i)
    EXPECT_TRUE(
        std::regex_match(out[i], std::regex(files[i] + ": " + any_name + R"( \(p=0\.\d{3}\))")))
        << out[i];
}

TEST_F(PredictFolders, TopKListsClassNamesByDecreasingProbability) {
  const Result r = run(ckpt() + "--top 3 " + (dir_ / "imgs/b/2.png").string());
  ASSERT_EQ(r.code, 0) << r.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_match(
      r.out, m,
      std::regex(
          R"(.*/2\.png: (.+) \(p=(0\.\d{3})\)  top3: (.+) (0\.\d{3}), (.+) (0\.\d{3}), (.+) (0\.\d{3})\n)")))
      << r.out;
  EXPECT_EQ(m[1], m[3]);
  EXPECT_EQ(m[2], m[4]);
  EXPECT_GE(m[4].str(), m[6].str());
  EXPECT_GE(m[6].str(), m[8].str());
  for (int k : {3, 5, 7})
    EXPECT_NE(std::find(names_.begin(), names_.end(), m[k].str()), names_.end()) << m[k];
}

TEST_F(PredictFolders, JsonCarriesIndexAndNameAndProbabilitiesSummingToOne) {
  const Result r = run(ckpt() + "--json --top 2 " + (dir_ / "imgs").string());
  ASSERT_EQ(r.code, 0) << r.err;
  const std::regex re(
      R"re(\{"file":"[^"]+","prediction":(\d),"class":"([^"]+)","probability":([^,]+),"top":\[\{"index":(\d),"class":"[^"]+","p":[^}]+\},\{"index":\d,"class":"[^"]+","p":[^}]+\}\],"probabilities":\[([^\]]+)\]\})re");
  const auto out = lines(r.out);
  ASSERT_EQ(out.size(), 4u);
  for (const auto& l : out) {
    std::smatch m;
    ASSERT_TRUE(std::regex_match(l, m, re)) << l;
    EXPECT_EQ(m[2].str(), names_[std::stoi(m[1].str())]);
    EXPECT_EQ(m[1], m[4]);
    double sum = 0;
    std::istringstream ps(m[5].str());
    for (std::string v; std::getline(ps, v, ',');) {
      EXPECT_LE(std::stod(v), 1.0);
      sum += std::stod(v);
    }
    EXPECT_NEAR(sum, 1.0, 1e-6);
  }
}

TEST_F(PredictFolders, BatchSizeDoesNotChangeTheAnswers) {
  const std::string imgs = (dir_ / "imgs").string();
  const Result one = run(ckpt() + "--json --batch 1 " + imgs);
  const Result three = run(ckpt() + "--json --batch 3 " + imgs);
  const Result many = run(ckpt() + "--json " + imgs);
  ASSERT_EQ(one.code, 0) << one.err;
  const auto a = lines(one.out), b = lines(three.out), c = lines(many.out);
  ASSERT_EQ(a.size(), 4u);
  ASSERT_EQ(b.size(), 4u);
  ASSERT_EQ(c.size(), 4u);
  // Same files and predictions; probabilities equal to float rounding.
  const std::regex head(R"re(^(.*"class":"[^"]+"),)re");
  for (int i = 0; i < 4; ++i) {
    std::smatch ma, mb, mc;
    ASSERT_TRUE(std::regex_search(a[i], ma, head));
    ASSERT_TRUE(std::regex_search(b[i], mb, head));
    ASSERT_TRUE(std::regex_search(c[i], mc, head));
    EXPECT_EQ(ma[1], mb[1]);
    EXPECT_EQ(ma[1], mc[1]);
  }
}

TEST_F(PredictFolders, WithoutCheckpointUsesTheNewestRunAndSaysWhich) {
  const Result r = run("--top 1 " + (dir_ / "imgs/a/1.png").string(), (dir_ / "proj").string());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("dpcnn-predict: using checkpoint 'runs/other/version_3/checkpoints/"
                       "ckpt-0000000020.pb' (the latest of the newest of 2 run(s) under 'runs'"),
            std::string::npos)
      << r.err;
  const Result none = run((dir_ / "imgs/a/1.png").string(), (dir_ / "imgs").string());
  EXPECT_EQ(none.code, 2);
  EXPECT_EQ(none.err,
            "dpcnn-predict: no --checkpoint given and no checkpoint under 'runs' (train a model "
            "first, or pass --checkpoint)\n");
}

TEST_F(PredictFolders, VersionNamesProjectCommitAndOneDnnIsa) {
  const Result r = run("--version");
  ASSERT_EQ(r.code, 0);
  EXPECT_TRUE(std::regex_search(
      r.out,
      std::regex(
          R"(^dpcnn-predict \d+\.\d+\.\d+ \(commit ([0-9a-f]{12}|unknown)\)\n  oneDNN: \d+\.\d+\.\d+.*, CPU ISA [a-z0-9_]+\n$)")))
      << r.out;
}

TEST(Probabilities, ComputedInDoubleNeverExceedOneAndSumToOne) {
  // Float log-softmax of a confident net: the top entry rounds to just above 0,
  // and exp() of it was 1.0000001 before.
  const float lp[] = {3e-7f, -16.5f, -18.0f, -40.0f};
  const auto p = probabilities_from_log_probs(lp, 4);
  double sum = 0;
  for (double v : p) {
    EXPECT_LE(v, 1.0);
    EXPECT_GE(v, 0.0);
    sum += v;
  }
  EXPECT_NEAR(sum, 1.0, 1e-15);
  EXPECT_GT(std::exp(lp[0]), 1.0f);  // the float way would have exceeded 1
  EXPECT_EQ(ranked(p), (std::vector<int>{0, 1, 2, 3}));
  // Logits work as well as log-probabilities (softmax is shift-invariant).
  const float logits[] = {2.0f, 1.0f, 0.0f};
  const auto q = probabilities_from_log_probs(logits, 3);
  EXPECT_NEAR(q[0], std::exp(2.0) / (std::exp(2.0) + std::exp(1.0) + 1.0), 1e-12);
}

TEST(Inputs, ImageExtensionsAnyCase) {
  EXPECT_TRUE(has_image_extension("a/b.PNG"));
  EXPECT_TRUE(has_image_extension("x.jpeg"));
  EXPECT_TRUE(has_image_extension("x.pgm"));
  EXPECT_FALSE(has_image_extension("x.txt"));
  EXPECT_FALSE(has_image_extension("png"));
}

}  // namespace
}  // namespace dpcnn
