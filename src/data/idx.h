// IDX files (the MNIST container format, raw or gzip-compressed): reading into
// memory with every structural check, and writing (used by fetch-data's
// converters and by tests). Errors are dpcnn::Error naming the file and what
// does not fit. Free functions; safe from any thread on distinct files.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dpcnn {

struct IdxArray {
  std::vector<uint32_t> dims;  // e.g. {60000, 28, 28} or {60000}
  std::vector<uint8_t> data;   // row-major, product(dims) bytes
};

// Reads an unsigned-byte IDX file (type code 0x08). A path ending in ".gz" is
// decompressed with zlib. Checks: the magic (two zero bytes, type 0x08, rank
// 1..4), every dimension > 0, and that the payload length equals the product of
// the dimensions (truncated or trailing bytes are errors).
IdxArray read_idx(const std::string& path);

// Writes `a` as IDX (gzip-compressed when path ends in ".gz").
void write_idx(const std::string& path, const IdxArray& a);

}  // namespace dpcnn
