// Dataset: images kept as uint8 (scaled to float per batch, so 60,000 MNIST
// images cost 47 MB, not 188 MB) with their labels, and the MNIST-layout loader.
// Immutable after loading; safe to read from many threads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dpcnn {

struct Dataset {
  int count = 0;
  int channels = 1, height = 28, width = 28;
  std::vector<uint8_t> images;  // count * channels * height * width, NCHW
  std::vector<uint8_t> labels;  // count
  int image_size() const { return channels * height * width; }
};

struct DataSplit {
  Dataset train;
  Dataset test;
  // The test set may hold only a slice of the whole: samples
  // [test_begin, test_begin + test.count) of test_total (-1: it is whole).
  int test_begin = 0;
  int test_total = -1;
  // The class names the data itself gives (image folders); empty for IDX.
  std::vector<std::string> class_names;
};

// Loads `<dir>/train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`,
// `t10k-images-idx3-ubyte[.gz]`, `t10k-labels-idx1-ubyte[.gz]` (the raw file is
// preferred when both exist). Images of rank 4 (count,channels,height,width)
// are colour. Errors name the missing or bad file; a label count
// that differs from the image count, or a label >= num_classes, is an error.
DataSplit load_mnist_dir(const std::string& dir, int num_classes = 10);

// Writes images [first, first+n) of `d` as floats in [0,1] (pixel/255), NCHW,
// into `out` (n * image_size floats), and their labels into `labels_out`.
// `indices` (if not null) maps batch position -> sample index.
void fill_batch(const Dataset& d, const int64_t* indices, int n, float* out, int32_t* labels_out);

// The order of samples in epoch `epoch` for `seed`: a Fisher-Yates shuffle
// driven by dpcnn::Rng. Depends only on (seed, epoch, count), never on ranks.
std::vector<int64_t> epoch_order(uint64_t seed, int epoch, int count);

}  // namespace dpcnn
