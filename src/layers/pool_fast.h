// Max-pooling forward (training) and backward without oneDNN's workspace, for
// non-overlapping windows without padding (pool_fast.cc says why and what).
#pragma once

#include <cstdint>
#include <optional>

#include <oneapi/dnnl/dnnl.hpp>

namespace dpcnn {

// Where element (n, c, h, w) lives, in elements:
//   n*sn + (c / block)*sc + h*sh + w*sw + (c % block)*cs
// A plain layout (any order of the dims) is one block of all channels.
struct PoolGeometry {
  int64_t sn, sc, sh, sw, block, cs;
};
// The geometry of `md`, or nullopt for a layout the kernel does not take.
std::optional<PoolGeometry> pool_geometry(const dnnl::memory::desc& md);

struct PoolShape {
  int64_t n, c, h, w, oh, ow, kh, kw, sh, sw;
  int64_t src_bytes;      // of the whole src (and diff_src) buffer
  PoolGeometry src, dst;  // src's also diff_src's, dst's also diff_dst's
};

// arg: one byte an output element (n, c block, oh, ow, channel in block).
void pool_fast_forward(const PoolShape& p, dnnl::memory::data_type t, const void* src, void* dst,
                       uint8_t* arg);
void pool_fast_backward(const PoolShape& p, dnnl::memory::data_type t, const void* diff_dst,
                        const uint8_t* arg, void* diff_src);

}  // namespace dpcnn
