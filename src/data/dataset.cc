#include "data/dataset.h"

#include <filesystem>
#include <utility>

#include "core/error.h"
#include "core/rng.h"
#include "data/idx.h"

namespace dpcnn {
namespace {

// Purpose tag for epoch shuffles ("SHUFF"), so the shuffle stream never
// coincides with weight init or dropout streams drawn from the same seed.
constexpr uint64_t kShuffleStream = 0x5348554646ULL;

std::string find_file(const std::string& dir, const std::string& name) {
  namespace fs = std::filesystem;
  const fs::path raw = fs::path(dir) / name;
  const fs::path gz = fs::path(dir) / (name + ".gz");
  std::error_code ec;
  if (fs::is_regular_file(raw, ec)) return raw.string();
  if (fs::is_regular_file(gz, ec)) return gz.string();
  throw InputError(raw.string() + ": missing (nor " + gz.filename().string() +
                   "); run scripts/fetch-data.sh to download the dataset");
}

std::string dims_string(const std::vector<uint32_t>& dims) {
  std::string s = "(";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? "," : "") + std::to_string(dims[i]);
  return s + ")";
}

Dataset load_pair(const std::string& dir, const std::string& prefix, int num_classes) {
  const std::string images_path = find_file(dir, prefix + "-images-idx3-ubyte");
  const std::string labels_path = find_file(dir, prefix + "-labels-idx1-ubyte");
  IdxArray images = read_idx(images_path);
  IdxArray labels = read_idx(labels_path);
  int channels = 1;
  // Rank 4 (count,channels,height,width) holds colour images, as
  // dpcnn-dataset to-idx and the image-folder cache write them.
  if (images.dims.size() == 4) {
    if (images.dims[1] > 4)
      throw InputError(images_path +
                       ": rank-4 images must be (count,channels,height,width) with "
                       "1 to 4 channels, found " +
                       dims_string(images.dims));
    channels = static_cast<int>(images.dims[1]);
    images.dims.erase(images.dims.begin() + 1);
  }
  if (images.dims.size() != 3)
    throw InputError(images_path +
                     ": images must have rank 3 (count,height,width) or 4 "
                     "(count,channels,height,width), found " +
                     dims_string(images.dims));
  if (labels.dims.size() != 1)
    throw InputError(labels_path + ": labels must have rank 1 (count), found " +
                     dims_string(labels.dims));
  if (images.dims[0] != labels.dims[0])
    throw InputError(labels_path + ": " + std::to_string(labels.dims[0]) + " labels but " +
                     images_path + " has " + std::to_string(images.dims[0]) + " images");
  constexpr uint32_t kMaxInt = 0x7fffffff;
  if (images.dims[0] > kMaxInt || images.dims[1] > kMaxInt || images.dims[2] > kMaxInt ||
      uint64_t{images.dims[1]} * images.dims[2] > kMaxInt)
    throw InputError(images_path + ": dimensions too large " + dims_string(images.dims));
  for (size_t i = 0; i < labels.data.size(); ++i) {
    if (labels.data[i] >= num_classes)
      throw InputError(labels_path + ": label " + std::to_string(labels.data[i]) + " at index " +
                       std::to_string(i) +
                       " is not below num_classes=" + std::to_string(num_classes));
  }
  Dataset d;
  d.count = static_cast<int>(images.dims[0]);
  d.channels = channels;
  d.height = static_cast<int>(images.dims[1]);
  d.width = static_cast<int>(images.dims[2]);
  d.images = std::move(images.data);
  d.labels = std::move(labels.data);
  return d;
}

}  // namespace

DataSplit load_mnist_dir(const std::string& dir, int num_classes) {
  if (num_classes < 1 || num_classes > 256)
    throw InputError("load_mnist_dir: num_classes=" + std::to_string(num_classes) +
                     " is not in 1..256");
  DataSplit s;
  s.train = load_pair(dir, "train", num_classes);
  s.test = load_pair(dir, "t10k", num_classes);
  if (s.train.channels != s.test.channels || s.train.height != s.test.height ||
      s.train.width != s.test.width)
    throw InputError(dir + ": train images are " + std::to_string(s.train.channels) + "x" +
                     std::to_string(s.train.height) + "x" + std::to_string(s.train.width) +
                     " but test images are " + std::to_string(s.test.channels) + "x" +
                     std::to_string(s.test.height) + "x" + std::to_string(s.test.width));
  return s;
}

void fill_batch(const Dataset& d, const int64_t* indices, int n, float* out, int32_t* labels_out) {
  const size_t size = static_cast<size_t>(d.image_size());
  constexpr float kScale = 1.0f / 255.0f;
  const uint8_t* images = d.images.data();
  const uint8_t* labels = d.labels.data();
  for (int b = 0; b < n; ++b) {
    const int64_t idx = indices ? indices[b] : b;
    // One compare a sample, not a pixel: a bad index is an error, never a wild read.
    if (idx < 0 || idx >= d.count)
      throw InputError("fill_batch: sample index " + std::to_string(idx) + " is outside 0.." +
                       std::to_string(d.count - 1));
    const size_t i = static_cast<size_t>(idx);
    const uint8_t* __restrict src = images + i * size;
    float* __restrict dst = out + static_cast<size_t>(b) * size;
    for (size_t k = 0; k < size; ++k) dst[k] = static_cast<float>(src[k]) * kScale;
    labels_out[b] = labels[i];
  }
}

std::vector<int64_t> epoch_order(uint64_t seed, int epoch, int count) {
  std::vector<int64_t> order(static_cast<size_t>(count > 0 ? count : 0));
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  Rng rng(mix_seed(seed, static_cast<uint64_t>(epoch), kShuffleStream));
  for (size_t i = order.size(); i > 1; --i) {
    const size_t j = static_cast<size_t>(rng.below(i));
    std::swap(order[i - 1], order[j]);
  }
  return order;
}

}  // namespace dpcnn
