// Image folders: order, labels and pixels as the files hold them, the cache
// reused when nothing changed and rebuilt when anything did, and one clear
// line for every malformed folder or image. Real PNG files in a temp dir.
#include "data/image_folder.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "image/image.h"
#include "image/pipeline.h"

namespace dpcnn {
namespace {
namespace fs = std::filesystem;

class ImageFolderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() /
          ("dpcnn-folder-test-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }

  // A w x h gray PNG whose pixels are value + (x + y) (mod 256).
  void gray(const std::string& rel, int value, int w = 4, int h = 3) {
    fs::create_directories((dir / rel).parent_path());
    std::vector<uint8_t> px(static_cast<size_t>(w) * h);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) px[y * w + x] = static_cast<uint8_t>(value + x + y);
    write_image((dir / rel).string(), px.data(), w, h, 1);
  }
  FolderOptions opts(int c = 1, int h = 3, int w = 4) {
    FolderOptions o;
    o.preprocess = Preprocess::kNone;
    o.channels = c;
    o.height = h;
    o.width = w;
    return o;
  }
  // The standard small folder: classes b and a (sorted: a=0, b=1).
  void standard() {
    gray("train/b/10.png", 100);
    gray("train/b/2.png", 90);
    gray("train/a/x.png", 10);
    gray("test/a/y.png", 20);
    gray("test/b/z.png", 30);
  }
  std::string error_of(const FolderOptions& o) {
    try {
      load_image_folder(dir.string(), o);
    } catch (const InputError& e) {
      return e.what();
    }
    return "(no error)";
  }
  fs::path dir;
};

TEST_F(ImageFolderTest, ClassesSortedFilesByNameExactPixels) {
  standard();
  const FolderLoad f = load_image_folder(dir.string(), opts());
  EXPECT_TRUE(f.built);
  EXPECT_EQ(f.data.class_names, (std::vector<std::string>{"a", "b"}));
  ASSERT_EQ(f.data.train.count, 3);
  ASSERT_EQ(f.data.test.count, 2);
  EXPECT_EQ(f.data.train.labels, (std::vector<uint8_t>{0, 1, 1}));
  // a/x, then b/10.png before b/2.png (sorted by name, as strings)
  EXPECT_EQ(f.data.train.images[0], 10);
  EXPECT_EQ(f.data.train.images[12], 100);
  EXPECT_EQ(f.data.train.images[24], 90);
  EXPECT_EQ(f.data.train.images[12 + 5], 100 + 1 + 1);  // x=1, y=1
  EXPECT_EQ(f.data.test.images[12], 30);
}

TEST_F(ImageFolderTest, ClassNamesGiveTheLabelOrder) {
  standard();
  FolderOptions o = opts();
  o.class_names = {"b", "a"};
  const FolderLoad f = load_image_folder(dir.string(), o);
  EXPECT_EQ(f.data.class_names, (std::vector<std::string>{"b", "a"}));
  EXPECT_EQ(f.data.train.labels, (std::vector<uint8_t>{0, 0, 1}));
  o.class_names = {"a", "c"};
  EXPECT_NE(error_of(o).find("data.class_names (a, c) must name its class folders (a, b)"),
            std::string::npos)
      << error_of(o);
}

TEST_F(ImageFolderTest, UnchangedFolderIsNotDecodedAgainChangedOneIs) {
  standard();
  EXPECT_TRUE(load_image_folder(dir.string(), opts()).built);
  const FolderLoad again = load_image_folder(dir.string(), opts());
  EXPECT_FALSE(again.built);
  EXPECT_EQ(again.data.train.images[24], 90);
  EXPECT_FALSE(load_image_folder(dir.string(), opts(), CacheUse::kReadOnly).built);

  // Same size, new pixels, mtime moved on: decoded again, new pixels read.
  gray("train/b/2.png", 91);
  fs::last_write_time(dir / "train/b/2.png",
                      fs::last_write_time(dir / "train/b/2.png") + std::chrono::seconds(2));
  EXPECT_THROW(load_image_folder(dir.string(), opts(), CacheUse::kReadOnly), InputError);
  const FolderLoad changed = load_image_folder(dir.string(), opts());
  EXPECT_TRUE(changed.built);
  EXPECT_EQ(changed.data.train.images[24], 91);
  EXPECT_FALSE(load_image_folder(dir.string(), opts()).built);

  gray("train/a/new.png", 5);  // a file more
  const FolderLoad added = load_image_folder(dir.string(), opts());
  EXPECT_TRUE(added.built);
  EXPECT_EQ(added.data.train.count, 4);

  fs::remove(dir / "train/a/new.png");  // a file less
  EXPECT_TRUE(load_image_folder(dir.string(), opts()).built);

  FolderOptions resize = opts();
  resize.preprocess = Preprocess::kResize;  // other preprocessing: other cache
  EXPECT_TRUE(load_image_folder(dir.string(), resize).built);
  EXPECT_TRUE(load_image_folder(dir.string(), opts()).built);

  FolderOptions elsewhere = opts();  // data.cache_dir
  elsewhere.cache_dir = (dir / "my-cache").string();
  EXPECT_TRUE(load_image_folder(dir.string(), elsewhere).built);
  EXPECT_TRUE(fs::exists(dir / "my-cache/manifest.txt"));
  EXPECT_FALSE(load_image_folder(dir.string(), elsewhere).built);
}

TEST_F(ImageFolderTest, MalformedFoldersGetOneClearLine) {
  EXPECT_NE(error_of(opts()).find("no train/ folder"), std::string::npos) << error_of(opts());
  gray("train/a/1.png", 1);
  EXPECT_NE(error_of(opts()).find("no test/ folder"), std::string::npos) << error_of(opts());
  gray("test/b/1.png", 1);
  EXPECT_NE(error_of(opts()).find("class 'a' is in train/ but not in test/"), std::string::npos)
      << error_of(opts());
  gray("test/a/1.png", 1);
  gray("train/b/1.png", 1);
  fs::create_directories(dir / "test/c");
  fs::create_directories(dir / "train/c");
  std::ofstream(dir / "train/c/notes.txt") << "no image";
  EXPECT_NE(error_of(opts()).find("/train/c': class folder holds no image"), std::string::npos)
      << error_of(opts());
  fs::remove_all(dir / "test/c");
  fs::remove_all(dir / "train/c");
  FolderOptions ten = opts();
  ten.expected_classes = 10;
  EXPECT_NE(error_of(ten).find("2 class folders (a, b) but model.classes is 10"), std::string::npos)
      << error_of(ten);
  EXPECT_NE(error_of(opts(1, 28, 28)).find("/train/a/1.png': 4x3 pixels, the model takes 28x28"),
            std::string::npos)
      << error_of(opts(1, 28, 28));
  std::ofstream(dir / "train/b/0-bad.png") << "not a png at all";
  const std::string e = error_of(opts());
  EXPECT_NE(e.find("image '" + (dir / "train/b/0-bad.png").string() + "': not an image"),
            std::string::npos)
      << e;
  EXPECT_EQ(e.find('\n'), std::string::npos);
}

TEST_F(ImageFolderTest, ColourImagesArePlanarRgb) {
  for (const char* split : {"train", "test"}) {
    fs::create_directories(dir / split / "red");
    const uint8_t px[2 * 2 * 3] = {200, 10, 20, 201, 11, 21, 202, 12, 22, 203, 13, 23};
    write_image((dir / split / "red/1.png").string(), px, 2, 2, 3);
    const uint8_t g[4] = {50, 60, 70, 80};  // gray: replicated into R, G and B
    write_image((dir / split / "red/2.png").string(), g, 2, 2, 1);
  }
  const FolderLoad f = load_image_folder(dir.string(), opts(3, 2, 2));
  ASSERT_EQ(f.data.train.channels, 3);
  const std::vector<uint8_t> first(f.data.train.images.begin(), f.data.train.images.begin() + 12);
  EXPECT_EQ(first, (std::vector<uint8_t>{200, 201, 202, 203, 10, 11, 12, 13, 20, 21, 22, 23}));
  const std::vector<uint8_t> second(f.data.train.images.begin() + 12, f.data.train.images.end());
  EXPECT_EQ(second, (std::vector<uint8_t>{50, 60, 70, 80, 50, 60, 70, 80, 50, 60, 70, 80}));
  // mnist preprocessing is for 1-channel digits only
  Image img;
  img.width = img.height = 2;
  img.channels = 3;
  img.pixels.assign(12, 0);
  uint8_t out[12];
  EXPECT_THROW(preprocess_image(img, Preprocess::kMnist, 3, 2, 2, out, "x.png"), InputError);
}

TEST_F(ImageFolderTest, ResizeScalesToTheInputAndIsExactWhenTheSizeFits) {
  gray("train/a/1.png", 0, 8, 6);
  gray("test/a/1.png", 0, 4, 3);
  const FolderLoad f = load_image_folder(dir.string(), [&] {
    FolderOptions o = opts();
    o.preprocess = Preprocess::kResize;
    return o;
  }());
  // 8x6 area-averaged to 4x3: each output is the mean of a 2x2 block of
  // (x + y): 2*(x'+y') + 1.
  EXPECT_EQ(f.data.train.images[0], 1);
  EXPECT_EQ(f.data.train.images[4 * 2 + 3], 2 * (3 + 2) + 1);
  EXPECT_EQ(f.data.test.images[4 * 2 + 3], 3 + 2);  // fits: copied
}

}  // namespace
}  // namespace dpcnn
