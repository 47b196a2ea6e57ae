#include "predict/classify.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace dpcnn {

std::vector<double> probabilities_from_log_probs(const float* log_probs, int classes) {
  double max = log_probs[0];
  for (int k = 1; k < classes; ++k) max = std::max(max, static_cast<double>(log_probs[k]));
  double sum = 0;
  for (int k = 0; k < classes; ++k) sum += std::exp(static_cast<double>(log_probs[k]) - max);
  // lse >= max, so every exp(lp - lse) <= 1.
  const double lse = max + std::log(sum);
  std::vector<double> p(classes);
  for (int k = 0; k < classes; ++k) p[k] = std::exp(static_cast<double>(log_probs[k]) - lse);
  return p;
}

std::vector<int> ranked(const std::vector<double>& p) {
  std::vector<int> order(p.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return p[a] > p[b]; });
  return order;
}

std::vector<double> classify_tensors(SavedModel& m, const float* x, int n, int batch) {
  const size_t in = static_cast<size_t>(m.channels) * m.height * m.width;
  std::vector<double> out(static_cast<size_t>(n) * m.classes);
  for (int b = 0; b < n; b += batch) {
    const int k = std::min(batch, n - b);
    const float* lp = m.model->log_probs(x + b * in, k);
    for (int i = 0; i < k; ++i) {
      const auto p =
          probabilities_from_log_probs(lp + static_cast<size_t>(i) * m.classes, m.classes);
      std::copy(p.begin(), p.end(), out.begin() + static_cast<size_t>(b + i) * m.classes);
    }
  }
  return out;
}

void classify_files(SavedModel& m, const std::vector<std::string>& files, Preprocess mode,
                    int batch, const std::function<void(const Classified&)>& emit) {
  if (m.channels != 1)
    throw InputError("the model takes " + std::to_string(m.channels) +
                     "-channel input; dpcnn-predict reads images as grayscale (1 channel)");
  const size_t in = static_cast<size_t>(m.height) * m.width;
  std::vector<float> x(static_cast<size_t>(batch) * in), packed;
  std::vector<std::string> errors(batch);
  const int n = static_cast<int>(files.size());
  for (int b = 0; b < n; b += batch) {
    const int k = std::min(batch, n - b);
    // Decoding is most of the work for small digits: one file a thread at a
    // time. Exceptions cannot leave an OpenMP region, so each keeps its error.
#pragma omp parallel for schedule(dynamic, 4)
    for (int i = 0; i < k; ++i) {
      errors[i].clear();
      try {
        const auto v = preprocess_digit(load_image(files[b + i]), mode, m.height, m.width);
        std::copy(v.begin(), v.end(), x.begin() + i * in);
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    }
    // The good inputs, contiguous, through the network in one call.
    std::vector<int> good;
    for (int i = 0; i < k; ++i)
      if (errors[i].empty()) good.push_back(i);
    const float* batch_x = x.data();
    if (static_cast<int>(good.size()) != k) {
      packed.resize(good.size() * in);
      for (size_t j = 0; j < good.size(); ++j)
        std::copy_n(x.begin() + good[j] * in, in, packed.begin() + j * in);
      batch_x = packed.data();
    }
    const int g = static_cast<int>(good.size());
    const std::vector<double> p = g ? classify_tensors(m, batch_x, g, g) : std::vector<double>{};
    for (int i = 0, j = 0; i < k; ++i) {
      Classified c;
      c.file = &files[b + i];
      if (!errors[i].empty()) {
        c.error = errors[i];
      } else {
        c.p.assign(p.begin() + static_cast<size_t>(j) * m.classes,
                   p.begin() + static_cast<size_t>(j + 1) * m.classes);
        c.input = batch_x + static_cast<size_t>(j) * in;
        ++j;
      }
      emit(c);
    }
  }
}

}  // namespace dpcnn
