// A small, learnable MNIST-format dataset written to a temp directory for tests
// that must not depend on downloads: each class is a bright horizontal bar at
// its own height over noise (no exact-zero background, so ReLU and max-pool
// rarely sit exactly on a kink).
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

#include "core/rng.h"
#include "data/idx.h"

namespace dpcnn::testing {

inline void write_synthetic_split(const std::string& dir, int n, const char* prefix,
                                  uint64_t seed) {
  Rng rng(seed);
  IdxArray images{{static_cast<uint32_t>(n), 28, 28}, {}}, labels{{static_cast<uint32_t>(n)}, {}};
  images.data.resize(static_cast<size_t>(n) * 784);
  labels.data.resize(n);
  for (int i = 0; i < n; ++i) {
    const int y = static_cast<int>(rng.below(10));
    labels.data[i] = static_cast<uint8_t>(y);
    for (int p = 0; p < 784; ++p) {
      const int r = p / 28, c = p % 28;
      int v = 1 + static_cast<int>(rng.below(110));
      if (r >= 2 * y + 2 && r < 2 * y + 6 && c >= 4 && c < 24) v += 130;
      images.data[static_cast<size_t>(i) * 784 + p] = static_cast<uint8_t>(v);
    }
  }
  write_idx(dir + "/" + prefix + "-images-idx3-ubyte", images);
  write_idx(dir + "/" + prefix + "-labels-idx1-ubyte", labels);
}

// Creates (once per process) and returns a directory with `train` training and
// `test` test samples.
inline std::string synthetic_mnist_dir(int train = 512, int test = 203) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() /
                       ("dpcnn-synthetic-" + std::to_string(train) + "-" + std::to_string(test));
  if (!fs::exists(dir / "t10k-labels-idx1-ubyte")) {
    const fs::path tmp = dir.string() + ".tmp" + std::to_string(::getpid());
    fs::create_directories(tmp);
    write_synthetic_split(tmp.string(), train, "train", 1);
    write_synthetic_split(tmp.string(), test, "t10k", 2);
    std::error_code ec;
    fs::rename(tmp, dir, ec);  // another test process may have won the race
    if (ec) fs::remove_all(tmp);
  }
  return dir.string();
}

}  // namespace dpcnn::testing
