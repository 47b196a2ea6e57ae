#include "data/split.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/rng.h"

namespace dpcnn {
namespace {

constexpr uint64_t kValidationStream = 0x56414c4944ULL;  // "VALID"

}  // namespace

std::vector<int64_t> validation_indices(const Dataset& d, double fraction, uint64_t seed) {
  if (fraction <= 0 || d.count == 0) return {};
  if (fraction >= 1) throw InputError("train.validation_split must be below 1");
  std::vector<std::vector<int64_t>> by_class(256);
  for (int i = 0; i < d.count; ++i) by_class[d.labels[static_cast<size_t>(i)]].push_back(i);
  const int64_t total = std::llround(fraction * d.count);
  if (total >= d.count)
    throw InputError("train.validation_split " + std::to_string(fraction) +
                     " leaves no sample of " + std::to_string(d.count) + " to train on");
  // Largest remainder: floors first, then one more to the classes with the
  // largest fractional quota (ties: lower class first).
  std::vector<int64_t> take(256, 0);
  std::vector<std::pair<double, int>> rem;
  int64_t given = 0;
  for (int c = 0; c < 256; ++c) {
    if (by_class[c].empty()) continue;
    const double quota = fraction * static_cast<double>(by_class[c].size());
    take[c] = static_cast<int64_t>(std::floor(quota));
    given += take[c];
    rem.push_back({quota - std::floor(quota), c});
  }
  std::stable_sort(rem.begin(), rem.end(), [](auto& a, auto& b) { return a.first > b.first; });
  for (size_t k = 0; given < total && k < rem.size(); ++k, ++given) ++take[rem[k].second];
  std::vector<int64_t> out;
  for (int c = 0; c < 256; ++c) {
    auto& v = by_class[c];
    Rng rng(mix_seed(seed, static_cast<uint64_t>(c), kValidationStream));
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
    out.insert(out.end(), v.begin(), v.begin() + take[c]);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// In place: the held-out samples are copied out, then the kept ones slide
// down over the gaps (never further than they stand), so the training set is
// never held twice (a full 47 MB Fashion-MNIST set was: +77 MB of peak RSS).
void split_off(Dataset& train, const std::vector<int64_t>& held_out, Dataset* val) {
  const size_t sz = static_cast<size_t>(train.image_size());
  val->channels = train.channels;
  val->height = train.height;
  val->width = train.width;
  val->count = static_cast<int>(held_out.size());
  val->images.assign(held_out.size() * sz, 0);
  val->labels.assign(held_out.size(), 0);
  if (held_out.empty()) return;
  uint8_t* img = train.images.data();
  size_t h = 0, k = 0;  // next held-out position; samples kept so far
  for (size_t i = 0; i < static_cast<size_t>(train.count); ++i) {
    if (h < held_out.size() && held_out[h] == static_cast<int64_t>(i)) {
      std::copy_n(img + i * sz, sz, val->images.data() + h * sz);
      val->labels[h++] = train.labels[i];
      continue;
    }
    if (k != i) {
      std::copy_n(img + i * sz, sz, img + k * sz);  // k < i: a forward copy
      train.labels[k] = train.labels[i];
    }
    ++k;
  }
  train.count = static_cast<int>(k);
  train.images.resize(k * sz);
  train.labels.resize(k);
}

}  // namespace dpcnn
