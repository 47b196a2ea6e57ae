#include "data/augment.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"

namespace dpcnn {
namespace {

// Purpose tag ("AUGMENT"): augmentation draws never coincide with init,
// shuffling or dropout streams of the same seed.
constexpr uint64_t kAugmentStream = 0x4155474d454e54ULL;
constexpr float kPi = 3.14159265358979f;

}  // namespace

Affine draw_affine(const AugmentConfig& aug, uint64_t seed, int epoch, int64_t index, int height,
                   int width) {
  // A fresh generator per sample, keyed by (seed, epoch, index): counter-based.
  Rng rng(mix_seed(mix_seed(seed, kAugmentStream), static_cast<uint64_t>(epoch),
                   static_cast<uint64_t>(index)));
  // Always draw all five, so enabling one kind never changes another's draws.
  const float u_angle = rng.uniform(-1, 1), u_scale = rng.uniform(-1, 1);
  const float u_dx = rng.uniform(-1, 1), u_dy = rng.uniform(-1, 1);
  const bool flip = aug.hflip && (rng.next_u64() >> 63);
  const float angle = aug.rotation * u_angle * kPi / 180.0f;
  const float scale = 1.0f + aug.scale * u_scale;
  const float dx = aug.shift * u_dx, dy = aug.shift * u_dy;
  const float cx = 0.5f * static_cast<float>(width - 1), cy = 0.5f * static_cast<float>(height - 1);
  // Forward: out = S R (in - centre) + centre + shift. We need its inverse,
  // in = R^-1 S^-1 (out - centre - shift) + centre.
  const float cs = std::cos(angle) / scale, sn = std::sin(angle) / scale;
  Affine t;
  t.a = cs;
  t.b = sn;
  t.c = -sn;
  t.d = cs;
  const float ox = -cx - dx, oy = -cy - dy;
  t.tx = t.a * ox + t.b * oy + cx;
  t.ty = t.c * ox + t.d * oy + cy;
  if (flip) {  // sample the mirrored source: sx -> (width - 1) - sx
    t.a = -t.a;
    t.b = -t.b;
    t.tx = static_cast<float>(width - 1) - t.tx;
  }
  return t;
}

void warp_image(const uint8_t* src, int channels, int height, int width, const Affine& t,
                float* dst) {
  constexpr float kScale = 1.0f / 255.0f;
  const size_t plane = static_cast<size_t>(height) * width;
  // Each channel is copied (scaled) into a buffer with a one-pixel border of
  // zeros, so every bilinear tap of a position inside (-1, size) is in bounds
  // and the inner loop has no per-tap checks.
  const int pw = width + 2, ph = height + 2;
  thread_local std::vector<float> pad;
  pad.assign(static_cast<size_t>(pw) * ph, 0.0f);
  for (int ch = 0; ch < channels; ++ch) {
    const uint8_t* p = src + ch * plane;
    for (int y = 0; y < height; ++y)
      for (int x = 0; x < width; ++x)
        pad[static_cast<size_t>(y + 1) * pw + x + 1] =
            static_cast<float>(p[static_cast<size_t>(y) * width + x]) * kScale;
    float* out = dst + ch * plane;
    const float fw = static_cast<float>(width), fh = static_cast<float>(height);
    for (int y = 0; y < height; ++y) {
      const float fy = static_cast<float>(y);
      for (int x = 0; x < width; ++x) {
        const float fx = static_cast<float>(x);
        const float sx = t.a * fx + t.b * fy + t.tx, sy = t.c * fx + t.d * fy + t.ty;
        if (!(sx > -1.0f && sy > -1.0f && sx < fw && sy < fh)) {  // outside: fill 0
          out[static_cast<size_t>(y) * width + x] = 0.0f;
          continue;
        }
        const float px = sx + 1.0f, py = sy + 1.0f;  // in (0, size + 1): truncation is floor
        const int x0 = static_cast<int>(px), y0 = static_cast<int>(py);
        const float wx = px - static_cast<float>(x0), wy = py - static_cast<float>(y0);
        const float* r0 = pad.data() + static_cast<size_t>(y0) * pw + x0;
        const float* r1 = r0 + pw;
        const float top = r0[0] + wx * (r0[1] - r0[0]), bottom = r1[0] + wx * (r1[1] - r1[0]);
        out[static_cast<size_t>(y) * width + x] = top + wy * (bottom - top);
      }
    }
  }
}

void fill_batch_augmented(const Dataset& d, const int64_t* indices, int n, float* out,
                          int32_t* labels_out, const AugmentConfig& aug, uint64_t seed, int epoch) {
  const size_t size = static_cast<size_t>(d.image_size());
  for (int b = 0; b < n; ++b) {
    const int64_t idx = indices[b];
    if (idx < 0 || idx >= d.count)
      throw InputError("fill_batch_augmented: sample index " + std::to_string(idx) +
                       " is outside 0.." + std::to_string(d.count - 1));
    labels_out[b] = d.labels[static_cast<size_t>(idx)];
  }
  // Each image is written by one thread from its own draw: the thread count
  // cannot change a bit of the result.
#pragma omp parallel for schedule(static) if (n >= 8)
  for (int b = 0; b < n; ++b) {
    const size_t i = static_cast<size_t>(indices[b]);
    const Affine t = draw_affine(aug, seed, epoch, indices[b], d.height, d.width);
    warp_image(d.images.data() + i * size, d.channels, d.height, d.width, t,
               out + static_cast<size_t>(b) * size);
  }
}

std::vector<uint8_t> augment_grid(const Dataset& d, const AugmentConfig& aug, uint64_t seed,
                                  int rows, int cols, int zoom, int* width, int* height) {
  constexpr int kBorder = 2;
  const int cw = d.width * zoom + kBorder, ch = d.height * zoom + kBorder;
  *width = cols * cw + kBorder;
  *height = rows * ch + kBorder;
  std::vector<uint8_t> out(static_cast<size_t>(*width) * *height, 128);
  // One sample of each class first, so the grid shows every kind of image.
  std::vector<int64_t> pick;
  std::vector<bool> have(256, false);
  for (int i = 0; i < d.count && static_cast<int>(pick.size()) < rows; ++i)
    if (!have[d.labels[i]]) have[d.labels[i]] = true, pick.push_back(i);
  for (int i = 0; i < d.count && static_cast<int>(pick.size()) < rows; ++i)
    if (std::find(pick.begin(), pick.end(), i) == pick.end()) pick.push_back(i);
  const size_t size = static_cast<size_t>(d.image_size());
  std::vector<float> img(size);
  for (int r = 0; r < static_cast<int>(pick.size()); ++r) {
    const uint8_t* src = d.images.data() + static_cast<size_t>(pick[r]) * size;
    for (int c = 0; c < cols; ++c) {
      const Affine t =
          c == 0 ? Affine{} : draw_affine(aug, seed, c - 1, pick[r], d.height, d.width);
      warp_image(src, d.channels, d.height, d.width, t, img.data());
      for (int y = 0; y < d.height * zoom; ++y)
        for (int x = 0; x < d.width * zoom; ++x) {
          const float v = img[static_cast<size_t>(y / zoom) * d.width + x / zoom];
          out[static_cast<size_t>(r * ch + kBorder + y) * *width + c * cw + kBorder + x] =
              static_cast<uint8_t>(std::lround(std::clamp(v, 0.0f, 1.0f) * 255.0f));
        }
    }
  }
  return out;
}

}  // namespace dpcnn
