// Images in and out of the predict tool: decoding PNG, BMP, GIF (first frame)
// and binary PGM/PPM (P5/P6) with stb_image and JPEG with libjpeg-turbo, with
// checks that turn every bad file into one dpcnn::Error naming it, and the
// preprocessing that turns a photo or a drawing of a digit into the network's
// input the way MNIST's digits were made. Plus a small image writer for tests
// and the quickstart. Free functions over plain data; safe from any thread (stb
// keeps its failure reason per thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace dpcnn {

// An 8-bit grayscale image, row-major. Colour is reduced to luma (BT.601) and
// transparency is composited over white, as a viewer would show it.
struct GrayImage {
  int width = 0, height = 0;
  std::vector<uint8_t> pixels;  // width * height
  uint8_t at(int x, int y) const { return pixels[static_cast<size_t>(y) * width + x]; }
};

// An 8-bit image of 1 (gray) or 3 (RGB) channels, row-major, channels
// interleaved (HWC), as decoded.
struct Image {
  int width = 0, height = 0, channels = 0;
  std::vector<uint8_t> pixels;  // height * width * channels
};

// Limits beyond which a file is refused before decoding: a 60-byte header can
// otherwise ask for gigabytes.
struct ImageLimits {
  int max_side = 16384;
  int64_t max_pixels = 64LL << 20;
  size_t max_file_bytes = 256u << 20;
};

// Reads and decodes `path`. Throws dpcnn::Error "image '<path>': <why>" for a
// missing or empty file, a non-image, absurd dimensions or a corrupt payload.
GrayImage load_image(const std::string& path, const ImageLimits& limits = {});
// The same from bytes in memory; `name` stands for the file in messages.
GrayImage load_image_from_memory(const uint8_t* data, size_t size, const std::string& name,
                                 const ImageLimits& limits = {});

// Decodes `size` bytes into `out` with `channels` (1: luma; 3: RGB, gray
// replicated), transparency over white; `out`'s buffer is reused, so a loop
// over many images allocates only inside stb. Same checks and errors as
// load_image_from_memory.
void decode_image(const uint8_t* data, size_t size, const std::string& name, int channels,
                  Image* out, const ImageLimits& limits = {});
// Reads `path` into `bytes` (reused) and decodes it into `out`.
void read_image(const std::string& path, int channels, Image* out, std::vector<uint8_t>* bytes,
                const ImageLimits& limits = {});

enum class Preprocess {
  // As MNIST was made: light background inverted to dark, contrast stretched,
  // cropped to the ink, scaled (area-averaging) to fit 20x20 keeping the aspect
  // ratio, and placed in 28x28 with its centre of mass at the centre. For
  // pictures of one digit on a plain background.
  kMnist,
  // The seed article's way: the whole image area-resized to 28x28, no
  // inversion. For images that already look like MNIST digits.
  kResize,
  // Nothing: the image must already have the model's input size (training
  // folders of ready-made images; a wrong size is an error naming the file).
  // preprocess_digit treats it as kResize.
  kNone,
};

// Returns height * width floats in [0, 1] (white ink on black for kMnist).
// The 20-of-28 box scales with other sizes. A blank image gives all zeros.
std::vector<float> preprocess_digit(const GrayImage& img, Preprocess mode, int height = 28,
                                    int width = 28);

// The same over raw 8-bit gray pixels (w x h).
std::vector<float> preprocess_gray(const uint8_t* pixels, int w, int h, Preprocess mode, int height,
                                   int width);

// Resamples to out_w x out_h: area-averaging where it shrinks (every source
// pixel counts, as OpenCV's INTER_AREA), bilinear where it enlarges.
std::vector<float> resample(const std::vector<float>& src, int w, int h, int out_w, int out_h);

// Writes an 8-bit image (channels 1 = gray, 3 = RGB, 4 = RGBA) as PNG, BMP or
// JPEG (quality 95), chosen by the extension of `path` (.png, .bmp, .jpg,
// .jpeg). Throws dpcnn::Error naming the file.
void write_image(const std::string& path, const uint8_t* pixels, int width, int height,
                 int channels = 1);

// True for .png .jpg .jpeg .bmp .gif .pgm .ppm .pnm, any case (a name that
// is only an extension, like ".png", is not an image's name).
bool is_image_file_name(const std::string& path);

// The image as text, two characters per pixel (a terminal cell is about twice
// as tall as wide) from ' ' (0) to '@' (1), one line per row.
std::string ascii_art(const float* pixels, int height, int width);

}  // namespace dpcnn
