#include "image/image.h"
#include "image/pipeline.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/error.h"

// clang-format off
#include <jpeglib.h>  // after <cstdio>: it needs FILE
// clang-format on

namespace dpcnn {
namespace {

namespace fs = std::filesystem;

class ImageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::temp_directory_path() /
            ("dpcnn-image-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string file(const std::string& name, const std::string& bytes) {
    const std::string p = dir_ + "/" + name;
    std::ofstream(p, std::ios::binary) << bytes;
    return p;
  }
  std::string error_of(const std::string& path) {
    try {
      load_image(path);
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  }
  std::string dir_;
};

// A 24x16 RGB test card: distinct values everywhere, so a swapped row or
// channel shows.
std::vector<uint8_t> card(int w = 24, int h = 16) {
  std::vector<uint8_t> p(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* q = &p[(static_cast<size_t>(y) * w + x) * 3];
      q[0] = static_cast<uint8_t>(10 * x);
      q[1] = static_cast<uint8_t>(15 * y);
      q[2] = static_cast<uint8_t>(x * y);
    }
  return p;
}

int luma(const uint8_t* q) { return (299 * q[0] + 587 * q[1] + 114 * q[2] + 500) / 1000; }

TEST_F(ImageTest, LoadsPngBmpJpegPgmPpmGif) {
  const auto rgb = card();
  for (const char* ext : {".png", ".bmp", ".jpg"}) {
    const std::string p = dir_ + "/card" + ext;
    write_image(p, rgb.data(), 24, 16, 3);
    const GrayImage g = load_image(p);
    ASSERT_EQ(g.width, 24) << ext;
    ASSERT_EQ(g.height, 16) << ext;
    const int tolerance = std::string(ext) == ".jpg" ? 24 : 0;  // JPEG is lossy
    for (int i = 0; i < 24 * 16; ++i)
      ASSERT_NEAR(g.pixels[i], luma(&rgb[i * 3]), tolerance) << ext << " pixel " << i;
  }
  // Binary PGM and PPM, written by hand.
  std::string pgm = "P5\n# comment\n3 2\n255\n";
  for (int v : {0, 50, 100, 150, 200, 255}) pgm += static_cast<char>(v);
  const GrayImage g = load_image(file("a.pgm", pgm));
  EXPECT_EQ(g.width, 3);
  EXPECT_EQ(g.pixels, (std::vector<uint8_t>{0, 50, 100, 150, 200, 255}));
  const GrayImage c = load_image(file("a.ppm", std::string("P6 1 1 255\n\xff\x00\x00", 14)));
  EXPECT_EQ(c.pixels, std::vector<uint8_t>{76});  // pure red: luma 0.299
  // The classic 1x1 GIF, one white pixel.
  const std::string gif(
      "GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00"
      ",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00;",
      35);
  const GrayImage w = load_image(file("a.gif", gif));
  EXPECT_EQ(w.width, 1);
  EXPECT_EQ(w.pixels, std::vector<uint8_t>{255});
}

TEST_F(ImageTest, TransparencyIsCompositedOverWhite) {
  std::vector<uint8_t> rgba = {0, 0, 0, 0, 0, 0, 0, 255, 0, 0, 0, 128};
  write_image(dir_ + "/a.png", rgba.data(), 3, 1, 4);
  EXPECT_EQ(load_image(dir_ + "/a.png").pixels, (std::vector<uint8_t>{255, 0, 127}));
}

TEST_F(ImageTest, BadFilesGetOneLineNamingThem) {
  const std::string text = file("notes.png", "this is not an image, just text\n");
  EXPECT_EQ(error_of(text),
            "image '" + text + "': not an image (PNG, JPEG, BMP, GIF and binary PGM/PPM are read)");
  const std::string empty = file("empty.png", "");
  EXPECT_EQ(error_of(empty), "image '" + empty + "': empty file");
  EXPECT_EQ(error_of(dir_ + "/missing.png"),
            "image '" + dir_ + "/missing.png': cannot open: No such file or directory");
  EXPECT_EQ(error_of(dir_), "image '" + dir_ + "': not a regular file");
  const std::string wide = file("wide.pgm", "P5\n20000 10\n255\n" + std::string(100, 'x'));
  EXPECT_EQ(error_of(wide), "image '" + wide +
                                "': absurd dimensions 20000x10 (limit 16384 a side, 67108864 "
                                "pixels)");
  const std::string big = file("big.pgm", "P5\n9000 9000\n255\nxx");
  EXPECT_NE(error_of(big).find("absurd dimensions 9000x9000"), std::string::npos);
  const std::string short_pgm = file("short.pgm", "P5\n4 4\n255\nab");
  EXPECT_EQ(error_of(short_pgm),
            "image '" + short_pgm + "': truncated PNM (fewer pixels than its header says)");
  const std::string huge_number = file("n.pgm", "P5\n" + std::string(40, '1') + " 2\n255\n");
  EXPECT_EQ(error_of(huge_number),
            "image '" + huge_number + "': damaged PNM header (a number out of range)");
  // A real PNG cut short: the header reads, the pixels do not.
  const auto rgb = card();
  write_image(dir_ + "/full.png", rgb.data(), 24, 16, 3);
  std::ifstream in(dir_ + "/full.png", std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), {});
  const std::string cut = file("cut.png", bytes.substr(0, bytes.size() / 2));
  EXPECT_EQ(error_of(cut),
            "image '" + cut + "': truncated PNG (a chunk runs past the end of the file)");
}

// Encodes with libjpeg itself, so a test can make what stb_image_write cannot:
// gray, Adobe CMYK, progressive.
std::string encode_jpeg(const std::vector<uint8_t>& px, int w, int h, int comps, J_COLOR_SPACE cs,
                        bool progressive) {
  jpeg_compress_struct c{};
  jpeg_error_mgr err{};
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&c, &buf, &size);
  c.image_width = static_cast<JDIMENSION>(w);
  c.image_height = static_cast<JDIMENSION>(h);
  c.input_components = comps;
  c.in_color_space = cs;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, 100, TRUE);
  if (progressive) jpeg_simple_progression(&c);
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(&px[static_cast<size_t>(c.next_scanline) * w * comps]);
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  std::string out(reinterpret_cast<char*>(buf), size);
  std::free(buf);
  return out;
}

TEST_F(ImageTest, JpegGrayColourCmykAndProgressiveDecode) {
  const auto rgb = card();
  const GrayImage colour = load_image(file("rgb.jpg", encode_jpeg(rgb, 24, 16, 3, JCS_RGB, false)));
  const GrayImage progressive =
      load_image(file("prog.jpg", encode_jpeg(rgb, 24, 16, 3, JCS_RGB, true)));
  std::vector<uint8_t> gray(24 * 16);
  for (size_t i = 0; i < gray.size(); ++i) gray[i] = static_cast<uint8_t>(luma(&rgb[i * 3]));
  const GrayImage g =
      load_image(file("gray.jpg", encode_jpeg(gray, 24, 16, 1, JCS_GRAYSCALE, false)));
  for (size_t i = 0; i < gray.size(); ++i) {
    ASSERT_NEAR(colour.pixels[i], gray[i], 8) << i;
    ASSERT_NEAR(progressive.pixels[i], gray[i], 8) << i;
    ASSERT_NEAR(g.pixels[i], gray[i], 2) << i;
  }
  // Adobe CMYK is stored inverted (255 = no ink): R = C * K / 255 and so on.
  std::vector<uint8_t> cmyk_px;
  for (int i = 0; i < 64; ++i) cmyk_px.insert(cmyk_px.end(), {255, 100, 0, 200});
  Image out;
  const std::string cmyk = encode_jpeg(cmyk_px, 8, 8, 4, JCS_CMYK, false);
  decode_image(reinterpret_cast<const uint8_t*>(cmyk.data()), cmyk.size(), "cmyk", 3, &out);
  ASSERT_EQ(out.channels, 3);
  for (int i = 0; i < 64; ++i) {
    ASSERT_NEAR(out.pixels[3 * i + 0], 200, 2) << i;
    ASSERT_NEAR(out.pixels[3 * i + 1], 100 * 200 / 255, 2) << i;
    ASSERT_NEAR(out.pixels[3 * i + 2], 0, 2) << i;
  }
}

TEST_F(ImageTest, DamagedJpegsGetOneLineNamingThem) {
  const auto rgb = card();
  const std::string full = encode_jpeg(rgb, 24, 16, 3, JCS_RGB, false);
  const std::string cut = file("cut.jpg", full.substr(0, full.size() / 2));
  EXPECT_EQ(error_of(cut), "image '" + cut + "': truncated JPEG (Premature end of JPEG file)");
  const std::string header_only = file("head.jpg", full.substr(0, 40));
  EXPECT_EQ(error_of(header_only),
            "image '" + header_only + "': truncated JPEG (Premature end of JPEG file)");
  const std::string p =
      DPCNN_SOURCE_DIR "/tests/fuzz/regressions/image/jpeg-dht-over-256-codes.jpg";
  EXPECT_EQ(error_of(p), "image '" + p + "': damaged JPEG (Bogus Huffman table definition)");
  // Dimensions are checked from the header, before any pixel is decoded.
  std::string wide = full;
  const size_t sof = wide.find("\xff\xc0");
  ASSERT_NE(sof, std::string::npos);
  wide[sof + 7] = '\x4e';  // width 0x4e18 = 19992
  wide[sof + 8] = '\x18';
  const std::string w = file("wide.jpg", wide);
  EXPECT_EQ(error_of(w),
            "image '" + w + "': absurd dimensions 19992x16 (limit 16384 a side, 67108864 pixels)");
  // Thousands of scans would each walk the whole image: the last scan of a
  // progressive file repeated 1,000 times is refused, not decoded for minutes.
  const std::string prog = encode_jpeg(rgb, 24, 16, 3, JCS_RGB, true);
  const size_t last_sos = prog.rfind("\xff\xda"), eoi = prog.rfind("\xff\xd9");
  ASSERT_LT(last_sos, eoi);
  std::string many = prog.substr(0, eoi);
  for (int i = 0; i < 1000; ++i) many += prog.substr(last_sos, eoi - last_sos);
  many += "\xff\xd9";
  const std::string m = file("scans.jpg", many);
  EXPECT_EQ(error_of(m), "image '" + m + "': damaged JPEG (more than 1000 scans)");
}

TEST_F(ImageTest, JpegWithoutHuffmanTablesUsesTheStandardOnes) {
  // As Motion-JPEG frames do: libjpeg falls back to the tables of the JPEG
  // standard, which are the ones stb_image_write uses.
  const auto rgb = card();
  write_image(dir_ + "/full.jpg", rgb.data(), 24, 16, 3);
  std::ifstream jin(dir_ + "/full.jpg", std::ios::binary);
  std::string jpg((std::istreambuf_iterator<char>(jin)), {});
  size_t dht = 0;
  int tables = 0;
  while ((dht = jpg.find("\xff\xc4", dht)) != std::string::npos) {
    jpg[dht + 1] = '\xfe';  // each DHT becomes a comment
    ++tables;
  }
  ASSERT_GT(tables, 0);
  EXPECT_EQ(load_image(file("nodht.jpg", jpg)).pixels, load_image(dir_ + "/full.jpg").pixels);
}

// A synthetic "7": a horizontal bar and a diagonal stroke, `ink` on `paper`,
// drawn at (ox, oy) in a w x h canvas.
GrayImage seven(int w, int h, int ox, int oy, int scale, uint8_t ink, uint8_t paper) {
  GrayImage g{w, h, std::vector<uint8_t>(static_cast<size_t>(w) * h, paper)};
  auto dot = [&](int x, int y) {
    for (int dy = 0; dy < scale; ++dy)
      for (int dx = 0; dx < scale; ++dx) {
        const int px = ox + x * scale + dx, py = oy + y * scale + dy;
        if (px >= 0 && py >= 0 && px < w && py < h)
          g.pixels[static_cast<size_t>(py) * w + px] = ink;
      }
  };
  for (int x = 0; x < 12; ++x) dot(x, 0), dot(x, 1);
  for (int y = 2; y < 18; ++y) dot(11 - (y * 7) / 17, y), dot(10 - (y * 7) / 17, y);
  return g;
}

struct Moments {
  double mass = 0, cx = 0, cy = 0;
  int x0 = 99, x1 = -1, y0 = 99, y1 = -1;
};

Moments moments(const std::vector<float>& v) {
  Moments m;
  for (int y = 0; y < 28; ++y)
    for (int x = 0; x < 28; ++x) {
      const double p = v[y * 28 + x];
      m.mass += p;
      m.cx += p * x;
      m.cy += p * y;
      if (p > 0.05) {
        m.x0 = std::min(m.x0, x);
        m.x1 = std::max(m.x1, x);
        m.y0 = std::min(m.y0, y);
        m.y1 = std::max(m.y1, y);
      }
    }
  m.cx /= m.mass;
  m.cy /= m.mass;
  return m;
}

TEST(Preprocess, DarkInkOnLightPaperGivesTheSameInputAsLightOnDark) {
  const auto normal = preprocess_digit(seven(120, 100, 20, 5, 4, 255, 0), Preprocess::kMnist);
  const auto inverted = preprocess_digit(seven(120, 100, 20, 5, 4, 0, 255), Preprocess::kMnist);
  ASSERT_EQ(normal.size(), 784u);
  for (size_t i = 0; i < 784; ++i) ASSERT_NEAR(normal[i], inverted[i], 1e-5) << i;
  // Grey paper and grey ink (a photo) stretch to the same input too.
  const auto photo = preprocess_digit(seven(120, 100, 20, 5, 4, 60, 190), Preprocess::kMnist);
  for (size_t i = 0; i < 784; ++i) ASSERT_NEAR(normal[i], photo[i], 1e-5) << i;
}

TEST(Preprocess, OffCentreDigitIsCentredByMassAndFitsTwentyPixels) {
  // Drawn in the bottom-right corner of a large canvas.
  const auto v = preprocess_digit(seven(400, 300, 330, 220, 4, 255, 0), Preprocess::kMnist);
  const Moments m = moments(v);
  // MNIST's centre of mass sits at pixel index 14 (14.01 +- 0.29 over the test
  // digits); a whole-pixel shift can miss it by half a pixel at most.
  EXPECT_NEAR(m.cx, 14.0, 0.5);
  EXPECT_NEAR(m.cy, 14.0, 0.5);
  EXPECT_EQ(m.y1 - m.y0 + 1, 20);  // the taller side fills the 20x20 box
  EXPECT_LE(m.x1 - m.x0 + 1, 20);
  for (float p : v) {
    ASSERT_GE(p, 0.0f);
    ASSERT_LE(p, 1.0f);
  }
  // The same digit centred in a small canvas gives (nearly) the same input.
  const auto w = preprocess_digit(seven(60, 80, 6, 4, 4, 255, 0), Preprocess::kMnist);
  for (size_t i = 0; i < 784; ++i) ASSERT_NEAR(v[i], w[i], 1e-5) << i;
}

// A digit that is already MNIST-shaped (20-pixel box, centre of mass at 14)
// comes out unchanged, so PNGs of MNIST digits are predicted like the IDX set.
TEST(Preprocess, MnistShapedDigitIsUnchanged) {
  GrayImage g{28, 28, std::vector<uint8_t>(784, 0)};
  for (int y = 4; y < 24; ++y)    // rows 4..23: a 20-pixel box
    for (int x = 9; x < 20; ++x)  // columns 9..19: mass centred at 14
      g.pixels[y * 28 + x] = static_cast<uint8_t>(y >= 14 ? 255 : 200);  // heavier below
  const auto v = preprocess_digit(g, Preprocess::kMnist);
  const Moments m = moments(v);
  ASSERT_NEAR(m.cy, 14.0, 0.5);
  for (int i = 0; i < 784; ++i) EXPECT_NEAR(v[i], g.pixels[i] / 255.0f, 1e-6) << i;
}

TEST(Preprocess, DownscaleAveragesInsteadOfPickingPixels) {
  // A one-pixel checkerboard: nearest-neighbour would give 0s and 1s.
  GrayImage g{280, 280, std::vector<uint8_t>(280 * 280)};
  for (int y = 0; y < 280; ++y)
    for (int x = 0; x < 280; ++x) g.pixels[y * 280 + x] = ((x + y) % 2) ? 255 : 0;
  for (float p : preprocess_digit(g, Preprocess::kResize)) ASSERT_NEAR(p, 0.5f, 1e-4);
}

TEST(Preprocess, ResizeOfA28x28ImageIsExactlyPixelOver255) {
  GrayImage g{28, 28, std::vector<uint8_t>(784)};
  for (int i = 0; i < 784; ++i) g.pixels[i] = static_cast<uint8_t>((i * 37) % 256);
  const auto v = preprocess_digit(g, Preprocess::kResize);
  for (int i = 0; i < 784; ++i) ASSERT_EQ(v[i], g.pixels[i] / 255.0f) << i;
}

TEST(Preprocess, BlankImageGivesZeros) {
  GrayImage g{50, 50, std::vector<uint8_t>(2500, 200)};
  for (float p : preprocess_digit(g, Preprocess::kMnist)) ASSERT_EQ(p, 0.0f);
}

TEST(Preprocess, AsciiArtHasOneLinePerRow) {
  std::vector<float> v(4, 0.0f);
  v[3] = 1.0f;
  EXPECT_EQ(ascii_art(v.data(), 2, 2), "    \n  @@\n");
}

}  // namespace
}  // namespace dpcnn

namespace dpcnn {
namespace {

// The pipeline training folders and dpcnn-predict share: the floats of
// preprocess_digit rounded to bytes, for every mode.
TEST(Pipeline, BytesAreTheRoundedFloatsOfPreprocessDigit) {
  const GrayImage g = seven(120, 100, 20, 5, 4, 255, 0);
  Image img;
  img.width = g.width;
  img.height = g.height;
  img.channels = 1;
  img.pixels = g.pixels;
  for (Preprocess mode : {Preprocess::kMnist, Preprocess::kResize}) {
    const auto f = preprocess_digit(g, mode);
    std::vector<uint8_t> b(784);
    preprocess_image(img, mode, 1, 28, 28, b.data(), "seven.png");
    for (size_t i = 0; i < 784; ++i)
      ASSERT_EQ(b[i], std::lround(f[i] * 255.0f)) << preprocess_name(mode) << " " << i;
  }
  std::vector<uint8_t> b(784);
  try {
    preprocess_image(img, Preprocess::kNone, 1, 28, 28, b.data(), "seven.png");
    FAIL() << "a 120x100 image taken as 28x28";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(),
                 "image 'seven.png': 120x100 pixels, the model takes 28x28 (preprocess none; use "
                 "resize to scale)");
  }
  EXPECT_EQ(parse_preprocess("none"), Preprocess::kNone);
  EXPECT_THROW(parse_preprocess("crop"), InputError);
}

}  // namespace
}  // namespace dpcnn
