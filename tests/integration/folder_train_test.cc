// Image folders end to end with the real binaries: dpcnn-dataset converts IDX
// to PNG class folders and back bit-exactly; a folder made from IDX images
// trains to exactly the numbers of the IDX files (1 and 2 ranks under real
// mpirun); the cache is built once per job and reused by the next; a bad image
// ends a 2-rank job with its file named and no rank left waiting; class names
// travel from the folders through the checkpoint into dpcnn-predict; an RGB
// model trains and predicts.
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <regex>

#include "core/rng.h"
#include "data/idx.h"
#include "image/image.h"
#include "process_testing.h"
#include "synthetic_data.h"

namespace dpcnn {
namespace {
namespace fs = std::filesystem;
using testing::read_floats;
using testing::Result;
using testing::sh;
using testing::slurp;

const std::string kBin = DPCNN_BIN_DIR;

// The synthetic IDX set with each split stably sorted by label: the order an
// image folder has (classes in turn), so both feed the same sample i.
void write_sorted(const std::string& from, const std::string& to) {
  fs::create_directories(to);
  for (const char* p : {"train", "t10k"}) {
    const IdxArray im = read_idx(from + "/" + p + "-images-idx3-ubyte");
    const IdxArray lb = read_idx(from + "/" + p + "-labels-idx1-ubyte");
    std::vector<size_t> order(lb.data.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return lb.data[a] < lb.data[b]; });
    IdxArray si{im.dims, {}}, sl{lb.dims, {}};
    for (size_t i : order) {
      si.data.insert(si.data.end(), im.data.begin() + i * 784, im.data.begin() + (i + 1) * 784);
      sl.data.push_back(lb.data[i]);
    }
    write_idx(to + "/" + p + "-images-idx3-ubyte", si);
    write_idx(to + "/" + p + "-labels-idx1-ubyte", sl);
  }
}

class FolderTrain : public testing::WorkerTest {
 protected:
  FolderTrain() : WorkerTest("dpcnn-folder-train") {}
  void SetUp() override {
    WorkerTest::SetUp();
    idx = (tmp / "idx").string();
    folder = (tmp / "folder").string();
    write_sorted(testing::synthetic_mnist_dir(), idx);
    const Result r = sh(kBin + "/dpcnn-dataset to-folder " + idx + " " + folder);
    ASSERT_EQ(r.status, 0) << r.output;
  }

  Result train(int np, const std::string& sets, std::vector<float>* params = nullptr,
               const std::string& config = "configs/mnist-small.yaml") {
    return WorkerTest::train(np, config, sets, params, "", "timeout 300");
  }
  std::string folder_sets() const {
    return "data.format=folder data.dir=" + folder + " data.preprocess=none ";
  }

  std::string idx, folder;
};

TEST_F(FolderTrain, ConverterRoundTripIsBitExact) {
  EXPECT_TRUE(fs::exists(folder + "/train/0/00000.png"));
  EXPECT_TRUE(fs::exists(folder + "/test/9"));
  const std::string back = (tmp / "back").string();
  const Result r = sh(kBin + "/dpcnn-dataset to-idx " + folder + " " + back);
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* f : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"})
    EXPECT_TRUE(slurp(idx + "/" + f) == slurp(back + "/" + f)) << f;
  EXPECT_EQ(slurp(back + "/classes.txt"), "0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n");
  // and the converter's own bad input
  EXPECT_EQ(sh(kBin + "/dpcnn-dataset to-folder " + idx + " " + folder).status, 2);
  const Result missing = sh(kBin + "/dpcnn-dataset to-idx " + idx + " " + back);
  EXPECT_EQ(missing.status, 2);
  EXPECT_NE(missing.output.find("no train/ folder"), std::string::npos) << missing.output;
}

// Same images, same seed, same rank count: the same parameters, bit for bit.
TEST_F(FolderTrain, FolderTrainsExactlyLikeTheIdxFilesOneAndTwoRanks) {
  const std::string sets = "train.max_steps=20 train.epochs=5 train.eval=true ";
  for (int np : {1, 2}) {
    std::vector<float> a, b;
    const Result ri = train(np, sets + "data.dir=" + idx, &a);
    ASSERT_EQ(ri.status, 0) << ri.output;
    const Result rf = train(np, sets + folder_sets(), &b);
    ASSERT_EQ(rf.status, 0) << rf.output;
    ASSERT_FALSE(a.empty());
    EXPECT_TRUE(a == b) << "np=" << np;
    // The evaluation line agrees too.
    std::smatch mi, mf;
    ASSERT_TRUE(std::regex_search(ri.output, mi, std::regex(R"(test_acc \S+ \(\d+/\d+\))")));
    ASSERT_TRUE(std::regex_search(rf.output, mf, std::regex(R"(test_acc \S+ \(\d+/\d+\))")));
    EXPECT_EQ(mi.str(), mf.str());
    // The first job decodes, every later one reads the cache.
    EXPECT_NE(rf.output.find(np == 1 ? "decoded into" : "read from"), std::string::npos)
        << rf.output;
  }
  std::vector<float> c;
  const Result rb = train(2, sets + folder_sets() + "data.broadcast=true", &c);
  ASSERT_EQ(rb.status, 0) << rb.output;
  EXPECT_NE(rb.output.find("read from"), std::string::npos) << rb.output;
}

TEST_F(FolderTrain, BadImageEndsEveryRankWithItsFileNamed) {
  const std::string bad = folder + "/train/3/bad.png";
  std::ofstream(bad) << "this is not a PNG";
  for (const char* broadcast : {"false", "true"}) {
    const Result r = train(2, "train.max_steps=2 " + folder_sets() + "data.broadcast=" + broadcast);
    EXPECT_NE(r.status, 0) << r.output;
    EXPECT_NE(r.status, 124) << "timed out: a rank was left waiting\n" << r.output;
    EXPECT_NE(r.output.find("image '" + bad + "': not an image"), std::string::npos) << r.output;
  }
  fs::remove(bad);
  fs::create_directories(folder + "/test/extra");
  fs::copy_file(folder + "/test/0/00000.png", folder + "/test/extra/1.png");
  const Result r = train(2, "train.max_steps=2 " + folder_sets());
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("class 'extra' is in test/ but not in train/"), std::string::npos)
      << r.output;
}

TEST_F(FolderTrain, ClassNamesTravelFromFoldersThroughTheCheckpoint) {
  const std::string named = (tmp / "named").string();
  const std::string names = "a-zero,b-one,c-two,d-three,e-four,f-five,g-six,h-seven,i-eight,j-nine";
  ASSERT_EQ(
      sh(kBin + "/dpcnn-dataset to-folder --class-names " + names + " " + idx + " " + named).status,
      0);
  const Result t = train(1, "train.max_steps=30 name=named data.format=folder data.dir=" + named);
  ASSERT_EQ(t.status, 0) << t.output;
  const std::string ckpt = (tmp / "named").string();
  const Result p =
      sh(kBin + "/dpcnn-predict --checkpoint " + ckpt + " --json " + named + "/test/c-two");
  ASSERT_EQ(p.status, 0) << p.output;
  EXPECT_NE(p.output.find("\"class\":\"c-two\""), std::string::npos) << p.output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(p.output, m, std::regex(R"("prediction":(\d),"class":"(\w)-)")));
  EXPECT_EQ(m[2].str()[0], 'a' + std::stoi(m[1].str()));
  const std::string one = fs::directory_iterator(named + "/test/c-two")->path().string();
  const Result text = sh(kBin + "/dpcnn-predict --checkpoint " + ckpt + " --top 1 " + one);
  EXPECT_TRUE(std::regex_search(text.output, std::regex(R"(: [a-j]-\w+ \(p=[01]\.\d{3}\))")))
      << text.output;
  // The names given in a config name the folders and fix the label order.
  const Result wrong = train(1, "train.max_steps=1 name=n2 data.format=folder data.dir=" + named +
                                    " data.class_names=[a,b,c,d,e,f,g,h,i,j]");
  EXPECT_EQ(wrong.status, 2);
  EXPECT_NE(wrong.output.find("must name its class folders"), std::string::npos) << wrong.output;
}

// Three colour classes (red, green, blue blobs over noise), 12x12 RGB.
TEST_F(FolderTrain, RgbModelTrainsPredictsAndExports) {
  const fs::path rgb = tmp / "rgb";
  Rng rng(7);
  for (const char* split : {"train", "test"})
    for (int c = 0; c < 3; ++c) {
      const fs::path d = rgb / split / (std::string("class-") + "rgb"[c]);
      fs::create_directories(d);
      for (int i = 0; i < 40; ++i) {
        uint8_t px[12 * 12 * 3];
        for (int p = 0; p < 144; ++p)
          for (int k = 0; k < 3; ++k)
            px[p * 3 + k] = static_cast<uint8_t>(rng.below(80) + (k == c ? 150 : 0));
        char name[32];
        std::snprintf(name, sizeof name, "%03d.png", i);
        write_image((d / name).string(), px, 12, 12, 3);
      }
    }
  const fs::path cfg = tmp / "rgb.yaml";
  std::ofstream(cfg) << "name: rgb\nseed: 1\ndata: {format: folder, dir: " << rgb.string()
                     << "}\ntrain: {epochs: 3, batch_size: 16}\n"
                        "optimizer: {type: adam, learning_rate: 0.003}\n"
                        "model:\n  input: [3, 12, 12]\n  classes: 3\n  layers:\n"
                        "    - {type: conv2d, filters: 8, kernel: 3, activation: relu}\n"
                        "    - {type: maxpool2d, pool: 2}\n    - {type: flatten}\n"
                        "    - {type: dense, units: 3}\n";
  const Result t = train(2, "", nullptr, cfg.string());
  ASSERT_EQ(t.status, 0) << t.output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(t.output, m, std::regex(R"(test_acc ([0-9.]+))"))) << t.output;
  EXPECT_GT(std::stod(m[1].str()), 0.9) << t.output;
  const std::string ckpt = (tmp / "rgb").string();
  const Result p = sh(kBin + "/dpcnn-predict --checkpoint " + ckpt + " --top 1 " +
                      (rgb / "test/class-g/000.png").string());
  ASSERT_EQ(p.status, 0) << p.output;
  EXPECT_NE(p.output.find(": class-g (p="), std::string::npos) << p.output;
  const Result e =
      sh(kBin + "/dpcnn-export --checkpoint " + ckpt + " -o " + (tmp / "rgb.onnx").string());
  EXPECT_EQ(e.status, 0) << e.output;
}

}  // namespace
}  // namespace dpcnn
