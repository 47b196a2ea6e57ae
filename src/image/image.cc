#include "image/image.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>

#include "core/error.h"
#include "image/jpeg.h"

// stb's implementation is compiled here, static to this file, with only the
// formats we promise (JPEG is libjpeg-turbo's, in jpeg.cc): stb's TGA reader has no magic number
// and would take arbitrary bytes for a picture, and a private copy (not Debian's libstb.so) is what
// the fuzzers instrument.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#if defined(__clang__)
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wcomma"
#endif
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_NO_STDIO
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_ONLY_GIF
#define STBI_ONLY_PNM
#include <stb_image.h>
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>
#pragma GCC diagnostic pop

namespace dpcnn {
namespace {

InputError bad(const std::string& name, const std::string& why) {
  return InputError("image '" + name + "': " + why);
}

struct StbFree {
  void operator()(stbi_uc* p) const { stbi_image_free(p); }
};

// One output sample of a 1-D resampling: which inputs, with which weights.
struct Tap {
  int i;
  double w;
};

std::vector<std::vector<Tap>> taps(int in, int out) {
  std::vector<std::vector<Tap>> t(out);
  const double s = static_cast<double>(in) / out;
  for (int o = 0; o < out; ++o) {
    if (out <= in) {
      // Area: the mean over the input interval this output pixel covers.
      const double a = o * s, b = (o + 1) * s;
      for (int i = static_cast<int>(std::floor(a));
           i < std::min(in, static_cast<int>(std::ceil(b))); ++i) {
        const double w = std::min(b, i + 1.0) - std::max(a, static_cast<double>(i));
        if (w > 0) t[o].push_back({i, w / s});
      }
    } else {
      const double c = std::clamp((o + 0.5) * s - 0.5, 0.0, in - 1.0);
      const int i0 = static_cast<int>(c);
      const double f = c - i0;
      t[o].push_back({i0, 1.0 - f});
      if (f > 0) t[o].push_back({std::min(i0 + 1, in - 1), f});
    }
  }
  return t;
}

// stb_image 2.27 reads a PNM header's numbers into an int without an overflow
// check (undefined behaviour), and a PNM shorter than its header promises
// leaves part of the image uninitialised. This walks the header exactly as stb
// does (whitespace, # comments, stb's end-of-buffer rule) and says what is
// wrong, or returns nullptr.
const char* pnm_problem(const uint8_t* d, size_t n, bool check_length) {
  if (n < 2 || d[0] != 'P' || (d[1] != '5' && d[1] != '6')) return nullptr;
  size_t pos = 2;
  auto eof = [&] { return pos >= n; };
  auto get8 = [&]() -> char { return pos < n ? static_cast<char>(d[pos++]) : 0; };
  auto space = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
  };
  char c = get8();
  int64_t v[3] = {0, 0, 0};  // width, height, maximum value
  for (int64_t& value : v) {
    for (;;) {
      while (!eof() && space(c)) c = get8();
      if (eof() || c != '#') break;
      while (!eof() && c != '\n' && c != '\r') c = get8();
    }
    while (!eof() && c >= '0' && c <= '9') {
      value = value * 10 + (c - '0');
      if (value > 65535 * 1024) return "damaged PNM header (a number out of range)";
      c = get8();
    }
  }
  const int64_t need = v[0] * v[1] * (d[1] == '6' ? 3 : 1) * (v[2] > 255 ? 2 : 1);
  if (check_length && v[0] > 0 && v[1] > 0 && v[2] <= 65535 && static_cast<int64_t>(n - pos) < need)
    return "truncated PNM (fewer pixels than its header says)";
  return nullptr;
}

// stb_image grows its buffer for a PNG's compressed data to whatever an IDAT
// chunk's length field says before reading it, so 100 bytes can make it
// allocate 2 GB. stb reads chunks strictly in sequence, as here; a chunk that
// runs past the end of the file makes the file truncated, whatever stb would do.
const char* png_problem(const uint8_t* d, size_t n) {
  static const uint8_t kSig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (n < 8 || std::memcmp(d, kSig, 8) != 0) return nullptr;
  for (size_t p = 8; p < n;) {
    if (n - p < 12) return "truncated PNG";
    const uint64_t len =
        static_cast<uint64_t>(d[p]) << 24 | d[p + 1] << 16 | d[p + 2] << 8 | d[p + 3];
    if (len > n - p - 12) return "truncated PNG (a chunk runs past the end of the file)";
    if (std::memcmp(d + p + 4, "IEND", 4) == 0) return nullptr;
    p += 12 + len;
  }
  return "truncated PNG (no IEND chunk)";
}

}  // namespace

void check_image_dimensions(const std::string& name, int64_t w, int64_t h,
                            const ImageLimits& limits) {
  if (w <= 0 || h <= 0 || w > limits.max_side || h > limits.max_side || w * h > limits.max_pixels)
    throw bad(name, "absurd dimensions " + std::to_string(w) + "x" + std::to_string(h) +
                        " (limit " + std::to_string(limits.max_side) + " a side, " +
                        std::to_string(limits.max_pixels) + " pixels)");
}

namespace {

// Native pixels (dc = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) to `channels`:
// transparency over white, as a viewer shows it; colour to luma (BT.601) for
// one channel, gray replicated for three.
void convert(const uint8_t* p, int w, int h, int dc, int channels, Image* out) {
  out->width = w;
  out->height = h;
  out->channels = channels;
  const size_t n = static_cast<size_t>(w) * h;
  out->pixels.resize(n * channels);  // keeps the caller's capacity: no allocation per image
  uint8_t* o = out->pixels.data();
  auto over_white = [](int v, int alpha) {
    return static_cast<uint8_t>((v * alpha + 255 * (255 - alpha) + 127) / 255);
  };
  if (channels == 1 && dc == 1) {
    std::copy_n(p, n, o);
  } else if (channels == 1) {
    for (size_t i = 0; i < n; ++i, p += dc) {
      const int luma = dc >= 3 ? (299 * p[0] + 587 * p[1] + 114 * p[2] + 500) / 1000 : p[0];
      const int alpha = dc == 2 ? p[1] : dc == 4 ? p[3] : 255;
      o[i] = over_white(luma, alpha);
    }
  } else if (dc == 3) {
    std::copy_n(p, n * 3, o);
  } else {
    for (size_t i = 0; i < n; ++i, p += dc, o += 3) {
      const int alpha = dc == 2 ? p[1] : dc == 4 ? p[3] : 255;
      for (int c = 0; c < 3; ++c) o[c] = over_white(dc >= 3 ? p[c] : p[0], alpha);
    }
  }
}

}  // namespace

void decode_image(const uint8_t* data, size_t size, const std::string& name, int channels,
                  Image* out, const ImageLimits& limits) {
  if (channels != 1 && channels != 3)
    throw bad(name, "cannot decode into " + std::to_string(channels) + " channels (1 or 3)");
  if (size == 0) throw bad(name, "empty file");
  if (size > limits.max_file_bytes)
    throw bad(name, "file too large (" + std::to_string(size) + " bytes; limit " +
                        std::to_string(limits.max_file_bytes) + ")");
  if (jpeg::is_jpeg(data, size)) {
    // libjpeg gives gray or RGB; the buffer is this thread's, reused.
    thread_local std::vector<uint8_t> native;
    int w = 0, h = 0, dc = 0;
    jpeg::decode(data, size, name, limits, &w, &h, &dc, &native);
    convert(native.data(), w, h, dc, channels, out);
    return;
  }
  if (const char* why = pnm_problem(data, size, false)) throw bad(name, why);
  if (const char* why = png_problem(data, size)) throw bad(name, why);
  const int len = static_cast<int>(size);
  int w = 0, h = 0, comp = 0;
  if (!stbi_info_from_memory(data, len, &w, &h, &comp)) {
    const std::string why = stbi_failure_reason() ? stbi_failure_reason() : "";
    if (why == "unknown image type" || why.empty())
      throw bad(name, "not an image (PNG, JPEG, BMP, GIF and binary PGM/PPM are read)");
    throw bad(name, "damaged image header (" + why + ")");
  }
  check_image_dimensions(name, w, h, limits);
  if (const char* why = pnm_problem(data, size, true)) throw bad(name, why);
  // Native channels (0), never stb's own conversion: 2.27 converts 16-bit PNM
  // samples as if they were 8-bit and then reads past its buffer.
  int dw = 0, dh = 0, dc = 0;
  std::unique_ptr<stbi_uc, StbFree> raw(stbi_load_from_memory(data, len, &dw, &dh, &dc, 0));
  if (!raw) {
    const char* why = stbi_failure_reason();
    throw bad(name, std::string("cannot decode (") + (why ? why : "unknown error") +
                        "; truncated or damaged?)");
  }
  // stbi_info reads only the header; the decoder is the authority on size.
  if (dw != w || dh != h || dc < 1 || dc > 4) throw bad(name, "inconsistent header (damaged)");
  convert(raw.get(), w, h, dc, channels, out);
}

GrayImage load_image_from_memory(const uint8_t* data, size_t size, const std::string& name,
                                 const ImageLimits& limits) {
  Image img;
  decode_image(data, size, name, 1, &img, limits);
  GrayImage g;
  g.width = img.width;
  g.height = img.height;
  g.pixels = std::move(img.pixels);
  return g;
}

void read_image(const std::string& path, int channels, Image* out, std::vector<uint8_t>* bytes,
                const ImageLimits& limits) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw InputError(errno_message("image '" + path + "': cannot open"));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw bad(path, "not a regular file");
  }
  if (static_cast<uint64_t>(st.st_size) > limits.max_file_bytes) {
    ::close(fd);
    throw bad(path, "file too large (" + std::to_string(st.st_size) + " bytes; limit " +
                        std::to_string(limits.max_file_bytes) + ")");
  }
  bytes->resize(static_cast<size_t>(st.st_size));
  size_t got = 0;
  while (got < bytes->size()) {
    const ssize_t r = ::read(fd, bytes->data() + got, bytes->size() - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      const int saved = errno;
      ::close(fd);
      errno = saved;
      throw InputError(errno_message("image '" + path + "': cannot read"));
    }
    if (r == 0) break;  // shrank since fstat: decoded as what is there
    got += static_cast<size_t>(r);
  }
  ::close(fd);
  decode_image(bytes->data(), got, path, channels, out, limits);
}

GrayImage load_image(const std::string& path, const ImageLimits& limits) {
  Image img;
  std::vector<uint8_t> bytes;
  read_image(path, 1, &img, &bytes, limits);
  GrayImage g;
  g.width = img.width;
  g.height = img.height;
  g.pixels = std::move(img.pixels);
  return g;
}

std::vector<float> resample(const std::vector<float>& src, int w, int h, int out_w, int out_h) {
  const auto tx = taps(w, out_w), ty = taps(h, out_h);
  std::vector<float> rows(static_cast<size_t>(h) * out_w);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < out_w; ++x) {
      double v = 0;
      for (const Tap& t : tx[x]) v += t.w * src[static_cast<size_t>(y) * w + t.i];
      rows[static_cast<size_t>(y) * out_w + x] = static_cast<float>(v);
    }
  std::vector<float> out(static_cast<size_t>(out_h) * out_w);
  for (int y = 0; y < out_h; ++y)
    for (int x = 0; x < out_w; ++x) {
      double v = 0;
      for (const Tap& t : ty[y]) v += t.w * rows[static_cast<size_t>(t.i) * out_w + x];
      out[static_cast<size_t>(y) * out_w + x] = static_cast<float>(v);
    }
  return out;
}

std::vector<float> preprocess_digit(const GrayImage& img, Preprocess mode, int height, int width) {
  return preprocess_gray(img.pixels.data(), img.width, img.height, mode, height, width);
}

std::vector<float> preprocess_gray(const uint8_t* pixels, int w, int h, Preprocess mode, int height,
                                   int width) {
  std::vector<float> out(static_cast<size_t>(height) * width, 0.0f);
  if (w <= 0 || h <= 0) return out;
  std::vector<float> g(pixels, pixels + static_cast<size_t>(w) * h);
  if (mode != Preprocess::kMnist) {
    out = resample(g, w, h, width, height);
    for (float& v : out) v = std::clamp(v / 255.0f, 0.0f, 1.0f);
    return out;
  }

  // MNIST digits are white on black: judge the background by the border.
  double border = 0;
  int64_t nb = 0;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      if (y == 0 || y == h - 1 || x == 0 || x == w - 1) {
        border += pixels[static_cast<size_t>(y) * w + x];
        ++nb;
      }
  border /= static_cast<double>(nb);
  if (border > 127) {
    for (float& v : g) v = 255.0f - v;
    border = 255.0 - border;
  }
  // A photo's paper is grey, not black: stretch background..ink to 0..255 as
  // MNIST's (scanned, then binarised) digits are.
  const float bg = static_cast<float>(border);
  const float peak = *std::max_element(g.begin(), g.end());
  if (peak - bg < 16.0f) return out;  // no ink to speak of
  for (float& v : g) v = std::clamp((v - bg) / (peak - bg), 0.0f, 1.0f) * 255.0f;

  // The ink's bounding box; faint noise and anti-aliasing fringes below the
  // threshold do not stretch it.
  constexpr float kInk = 24.0f;  // ~10% of the ink range: MNIST's own boxes include faint edges
  int x0 = w, y0 = h, x1 = -1, y1 = -1;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      if (g[static_cast<size_t>(y) * w + x] > kInk) {
        x0 = std::min(x0, x);
        x1 = std::max(x1, x);
        y0 = std::min(y0, y);
        y1 = std::max(y1, y);
      }
  const int bw = x1 - x0 + 1, bh = y1 - y0 + 1;
  std::vector<float> crop(static_cast<size_t>(bw) * bh);
  for (int y = 0; y < bh; ++y)
    for (int x = 0; x < bw; ++x)
      crop[static_cast<size_t>(y) * bw + x] = g[static_cast<size_t>(y + y0) * w + x + x0];

  // MNIST: the digit's longer side fills 20 of the 28 pixels.
  const double box = 20.0 * std::min(height, width) / 28.0;
  const double s = box / std::max(bw, bh);
  const int nw = std::max(1, static_cast<int>(std::lround(bw * s)));
  const int nh = std::max(1, static_cast<int>(std::lround(bh * s)));
  const std::vector<float> digit = resample(crop, bw, bh, nw, nh);

  double mass = 0, mx = 0, my = 0;
  for (int y = 0; y < nh; ++y)
    for (int x = 0; x < nw; ++x) {
      const double v = digit[static_cast<size_t>(y) * nw + x];
      mass += v;
      mx += v * x;
      my += v * y;
    }
  // MNIST puts the centre of mass at pixel index 14 of 28 (measured over the
  // test digits: 14.01 +- 0.29 on both axes), i.e. index size/2.
  const int ox = static_cast<int>(std::lround(width / 2.0 - (mass > 0 ? mx / mass : nw / 2.0)));
  const int oy = static_cast<int>(std::lround(height / 2.0 - (mass > 0 ? my / mass : nh / 2.0)));
  for (int y = 0; y < nh; ++y)
    for (int x = 0; x < nw; ++x) {
      const int tx = x + ox, ty = y + oy;
      if (tx < 0 || ty < 0 || tx >= width || ty >= height) continue;
      out[static_cast<size_t>(ty) * width + tx] =
          std::clamp(digit[static_cast<size_t>(y) * nw + x] / 255.0f, 0.0f, 1.0f);
    }
  return out;
}

void write_image(const std::string& path, const uint8_t* pixels, int width, int height,
                 int channels) {
  if (width <= 0 || height <= 0 || (channels != 1 && channels != 3 && channels != 4))
    throw bad(path, "cannot write a " + std::to_string(width) + "x" + std::to_string(height) + "x" +
                        std::to_string(channels) + " image");
  std::string ext = path.substr(
      path.find_last_of('.') == std::string::npos ? path.size() : path.find_last_of('.'));
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  int ok = 0;
  errno = 0;
  if (ext == ".png")
    ok = stbi_write_png(path.c_str(), width, height, channels, pixels, width * channels);
  else if (ext == ".bmp")
    ok = stbi_write_bmp(path.c_str(), width, height, channels, pixels);
  else if (ext == ".jpg" || ext == ".jpeg")
    ok = stbi_write_jpg(path.c_str(), width, height, channels, pixels, 95);
  else
    throw bad(path, "unknown image extension (use .png, .bmp or .jpg)");
  if (!ok) throw Error(errno_message("image '" + path + "': cannot write"));
}

bool is_image_file_name(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  const size_t dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash) ||
      dot == (slash == std::string::npos ? 0 : slash + 1))
    return false;
  std::string ext = path.substr(dot);
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  static const char* const kExt[] = {".png", ".jpg", ".jpeg", ".bmp",
                                     ".gif", ".pgm", ".ppm",  ".pnm"};
  return std::any_of(std::begin(kExt), std::end(kExt), [&](const char* e) { return ext == e; });
}

std::string ascii_art(const float* pixels, int height, int width) {
  static const char kRamp[] = " .:-=+*#%@";
  std::string s;
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      const float v = std::clamp(pixels[static_cast<size_t>(y) * width + x], 0.0f, 1.0f);
      const char c = kRamp[std::min(9, static_cast<int>(v * 10.0f))];
      s += c;
      s += c;
    }
    s += '\n';
  }
  return s;
}

}  // namespace dpcnn
