// Max-pooling for training without oneDNN's workspace.
//
// oneDNN 2.6.3's max-pool in training mode (it writes an argmax workspace) is
// 15x slower than its inference mode on the seed model's pool1 (64x32x26x26,
// 1 thread, Xeon with AMX: 0.87 against 0.058 ms, in every layout and in
// bf16 too), and it was 44% of a bf16 step there. This kernel keeps the argmax
// as one byte an output (the window position) and covers the common case:
// windows that do not overlap (stride >= window), no padding, f32 or bf16, in a
// plain layout or one that blocks the channels (nChw16c). Anything else goes
// through oneDNN. The rule is oneDNN's (and, without NaNs, PyTorch's): the
// first maximum in window order (row by row) wins; a NaN wins only where it is
// the window's first element, as in oneDNN. Forward dst and backward diff_src
// are bit-identical to oneDNN's (PoolFast.MatchesOneDnnBitForBit...).
#include "layers/pool_fast.h"

#include <cstring>
#include <type_traits>
#include <vector>

namespace dpcnn {
namespace {

float value(float v) { return v; }
float value(uint16_t v) {  // bf16: the high half of an f32
  const uint32_t u = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// A gradient as oneDNN's backward leaves it: it adds into a zeroed diff_src,
// and 0 + (-0) is +0.
float plus_zero(float g) { return g + 0.0f; }
uint16_t plus_zero(uint16_t g) { return (g & 0x7FFF) == 0 ? uint16_t{0} : g; }

// g where `keep`, +0 elsewhere, as bit masks (vectorises; no branch).
float keep_if(bool keep, float g) {
  uint32_t u;
  std::memcpy(&u, &g, sizeof u);
  u &= -static_cast<uint32_t>(keep);
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
uint16_t keep_if(bool keep, uint16_t g) {
  return static_cast<uint16_t>(g & -static_cast<uint16_t>(keep));
}

// bf16 from an f32 that came from bf16: exact.
template <typename T>
T store(float v);
template <>
float store<float>(float v) {
  return v;
}
template <>
uint16_t store<uint16_t>(float v) {
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  return static_cast<uint16_t>(u >> 16);
}

// kCs: the channel stride inside a block, 1 (nChw16c, nhwc: the loops over
// the block then vectorise) or the layout's own (0: read from the geometry).
template <typename T, int kCs>
void forward_t(const PoolShape& p, const T* src, T* dst, uint8_t* arg) {
  const PoolGeometry &s = p.src, &d = p.dst;
  const int64_t cs = kCs ? kCs : s.cs, dcs = kCs ? kCs : d.cs;
  const int64_t blocks = p.c / s.block, B = s.block;
#pragma omp parallel
  {
    // Per thread: the running maximum and its window position, a channel
    // block at a time (the loops over it vectorise: channels are contiguous
    // in nChw16c and nhwc).
    std::vector<float> best(static_cast<size_t>(B));
    std::vector<int32_t> at(static_cast<size_t>(B));
#pragma omp for collapse(2) schedule(static)
    for (int64_t n = 0; n < p.n; ++n)
      for (int64_t cb = 0; cb < blocks; ++cb)
        for (int64_t oh = 0; oh < p.oh; ++oh)
          for (int64_t ow = 0; ow < p.ow; ++ow) {
            const T* in = src + n * s.sn + cb * s.sc + oh * p.sh * s.sh + ow * p.sw * s.sw;
            float* bp = best.data();
            int32_t* ap = at.data();
#pragma omp simd
            for (int64_t b = 0; b < B; ++b) {
              bp[b] = value(in[b * cs]);
              ap[b] = 0;
            }
            for (int64_t i = 0; i < p.kh; ++i)
              for (int64_t j = 0; j < p.kw; ++j) {
                if (i == 0 && j == 0) continue;
                const T* w = in + i * s.sh + j * s.sw;
                const auto k = static_cast<int32_t>(i * p.kw + j);
#pragma omp simd
                for (int64_t b = 0; b < B; ++b) {
                  // Branch-free (random data defeats prediction) and in a form
                  // the compiler vectorises: a mask, and max as oneDNN's rule
                  // (strictly greater wins; equal and NaN keep the earlier).
                  const float v = value(w[b * cs]);
                  const int32_t take = -static_cast<int32_t>(bp[b] < v);
                  bp[b] = bp[b] < v ? v : bp[b];
                  ap[b] = (ap[b] & ~take) | (k & take);
                }
              }
            // best holds the winning element's exact bits (f32, or a bf16 widened).
            T* out = dst + n * d.sn + cb * d.sc + oh * d.sh + ow * d.sw;
            uint8_t* a = arg + ((n * blocks + cb) * p.oh * p.ow + oh * p.ow + ow) * B;
            for (int64_t b = 0; b < B; ++b) {
              out[b * dcs] = store<T>(bp[b]);
              a[b] = static_cast<uint8_t>(ap[b]);
            }
          }
  }
}

template <typename T, int kCs>
void backward_t(const PoolShape& p, const T* diff_dst, const uint8_t* arg, T* diff_src) {
  const PoolGeometry &s = p.src, &d = p.dst;
  const int64_t cs = kCs ? kCs : s.cs, dcs = kCs ? kCs : d.cs;
  const int64_t blocks = p.c / s.block, B = s.block;
  // Windows that tile the input exactly write every element (the zeros too);
  // otherwise the rows and columns no window covers must be zero first.
  const bool tiled = p.sh == p.kh && p.sw == p.kw && p.oh * p.sh == p.h && p.ow * p.sw == p.w;
  if (!tiled) std::memset(diff_src, 0, static_cast<size_t>(p.src_bytes));
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < p.n; ++n)
    for (int64_t cb = 0; cb < blocks; ++cb)
      for (int64_t oh = 0; oh < p.oh; ++oh)
        for (int64_t ow = 0; ow < p.ow; ++ow) {
          const T* g = diff_dst + n * d.sn + cb * d.sc + oh * d.sh + ow * d.sw;
          const uint8_t* a = arg + ((n * blocks + cb) * p.oh * p.ow + oh * p.ow + ow) * B;
          T* out = diff_src + n * s.sn + cb * s.sc + oh * p.sh * s.sh + ow * p.sw * s.sw;
          for (int64_t i = 0; i < p.kh; ++i)
            for (int64_t j = 0; j < p.kw; ++j) {
              const auto k = static_cast<uint8_t>(i * p.kw + j);
              T* w = out + i * s.sh + j * s.sw;
#pragma omp simd
              for (int64_t b = 0; b < B; ++b) w[b * cs] = keep_if(a[b] == k, plus_zero(g[b * dcs]));
            }
        }
}

}  // namespace

std::optional<PoolGeometry> pool_geometry(const dnnl::memory::desc& md) {
  const dnnl_memory_desc_t& m = md.data;
  if (m.format_kind != dnnl_blocked || m.ndims != 4 || m.offset0 != 0) return std::nullopt;
  for (int i = 0; i < 4; ++i)
    if (m.padded_dims[i] != m.dims[i] || m.padded_offsets[i] != 0) return std::nullopt;
  const auto& b = m.format_desc.blocking;
  PoolGeometry g{b.strides[0], b.strides[1], b.strides[2], b.strides[3], 1, 1};
  if (b.inner_nblks == 0) {  // plain, any order: the channels are one "block"
    g.block = m.dims[1];
    g.cs = b.strides[1];
    g.sc = 0;
    return g;
  }
  if (b.inner_nblks == 1 && b.inner_idxs[0] == 1 && m.dims[1] % b.inner_blks[0] == 0) {
    g.block = b.inner_blks[0];
    return g;
  }
  return std::nullopt;
}

namespace {

// Calls f(T{}, channel stride) with the element type and, where the channels
// of a block are contiguous, the compile-time stride 1 (0: the layout's own).
template <typename F>
void dispatch(const PoolShape& p, dnnl::memory::data_type t, F&& f) {
  using One = std::integral_constant<int, 1>;
  using Any = std::integral_constant<int, 0>;
  const bool unit = p.src.cs == 1 && p.dst.cs == 1;
  if (t == dnnl::memory::data_type::bf16)
    unit ? f(uint16_t{}, One{}) : f(uint16_t{}, Any{});
  else
    unit ? f(float{}, One{}) : f(float{}, Any{});
}

}  // namespace

void pool_fast_forward(const PoolShape& p, dnnl::memory::data_type t, const void* src, void* dst,
                       uint8_t* arg) {
  dispatch(p, t, [&](auto v, auto cs) {
    using T = decltype(v);
    forward_t<T, decltype(cs)::value>(p, static_cast<const T*>(src), static_cast<T*>(dst), arg);
  });
}

void pool_fast_backward(const PoolShape& p, dnnl::memory::data_type t, const void* diff_dst,
                        const uint8_t* arg, void* diff_src) {
  dispatch(p, t, [&](auto v, auto cs) {
    using T = decltype(v);
    backward_t<T, decltype(cs)::value>(p, static_cast<const T*>(diff_dst), arg,
                                       static_cast<T*>(diff_src));
  });
}

}  // namespace dpcnn
