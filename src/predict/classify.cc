#include "predict/classify.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <memory>
#include <numeric>

#include <omp.h>

#include "core/error.h"
#include "image/pipeline.h"

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

namespace {

// One model a thread. oneDNN's OpenMP threading splits every primitive across
// all threads and meets at a barrier after each; on a busy machine one
// descheduled thread stalls the other at every layer (a 10,000-image IDX set
// took 6.2 s with 2 threads against 1.1 s with 1 under load 7). Whole batches
// per thread, each thread with its own single-threaded copy of the network,
// never wait for each other.
std::vector<Model*> replicas(SavedModel& m, int threads, std::vector<std::unique_ptr<Model>>* own) {
  std::vector<Model*> out = {m.model.get()};
  for (int t = 1; t < threads; ++t) {
    own->push_back(std::make_unique<Model>(m.cfg.model, m.model->precision()));
    Model& r = *own->back();
    const Model& src = *m.model;
    std::copy_n(src.params(), src.param_count(), r.params());
    std::copy_n(src.state(), src.state_count(), r.state());
    out.push_back(&r);
  }
  for (Model* r : out) r->freeze_params();
  return out;
}

int thread_count(int batches) { return std::max(1, std::min(omp_get_max_threads(), batches)); }

// Exceptions cannot leave an OpenMP region: the first one is kept and rethrown.
struct FirstError {
  std::exception_ptr e;
  void keep() {
#pragma omp critical(dpcnn_classify_error)
    if (!e) e = std::current_exception();
  }
  void rethrow() const {
    if (e) std::rethrow_exception(e);
  }
};

void write_probabilities(const float* lp, int k, int classes, double* out) {
  for (int i = 0; i < k; ++i) {
    const auto p = probabilities_from_log_probs(lp + static_cast<size_t>(i) * classes, classes);
    std::copy(p.begin(), p.end(), out + static_cast<size_t>(i) * classes);
  }
}

}  // namespace

std::vector<double> classify_tensors(SavedModel& m, const float* x, int n, int batch) {
  const size_t in = static_cast<size_t>(m.channels) * m.height * m.width;
  std::vector<double> out(static_cast<size_t>(n) * m.classes);
  const int batches = (n + batch - 1) / batch;
  const int threads = thread_count(batches);
  std::vector<std::unique_ptr<Model>> own;
  const std::vector<Model*> models = replicas(m, threads, &own);
  FirstError error;
#pragma omp parallel num_threads(threads)
  {
    omp_set_num_threads(1);  // primitives made and run in this thread use it alone
    Model& model = *models[omp_get_thread_num()];
#pragma omp for schedule(dynamic, 1)
    for (int bi = 0; bi < batches; ++bi) {
      try {
        const int b = bi * batch, k = std::min(batch, n - b);
        write_probabilities(model.log_probs(x + b * in, k), k, m.classes,
                            out.data() + static_cast<size_t>(b) * m.classes);
      } catch (...) {
        error.keep();
      }
    }
  }
  error.rethrow();
  return out;
}

void classify_files(SavedModel& m, const std::vector<std::string>& files, Preprocess mode,
                    int batch, const std::function<void(const Classified&)>& emit) {
  const size_t in = static_cast<size_t>(m.channels) * m.height * m.width;
  const int n = static_cast<int>(files.size());
  const int threads = thread_count((n + batch - 1) / batch);
  std::vector<std::unique_ptr<Model>> own;
  const std::vector<Model*> models = replicas(m, threads, &own);
  // One round: the threads take its batches one at a time (dynamic, so a
  // thread the machine slows down takes fewer), each decoding a batch and
  // running it through its own network; then the round is printed in file
  // order. Rounds of 16 batches a thread keep memory bounded and the waits at
  // their ends rare.
  const int round_batches = 16 * threads, round = round_batches * batch;
  std::vector<float> x(static_cast<size_t>(std::min(round, n)) * in);
  std::vector<std::string> errors(std::min(round, n));
  std::vector<double> p(static_cast<size_t>(std::min(round, n)) * m.classes);
  for (int r0 = 0; r0 < n; r0 += round) {
    FirstError error;
#pragma omp parallel num_threads(threads)
    {
      omp_set_num_threads(1);  // primitives made and run in this thread use it alone
      Model& model = *models[omp_get_thread_num()];
      std::vector<float> packed;
      // Reused for every file of this thread: no allocation per image outside stb.
      Image img;
      std::vector<uint8_t> bytes, u8(in);
#pragma omp for schedule(dynamic, 1)
      for (int bi = 0; bi < round_batches; ++bi) {
        const int b = bi * batch, k = std::max(0, std::min(batch, n - r0 - b));
        try {
          // Decode; a bad file costs its own line, not the batch.
          std::vector<int> good;
          for (int i = b; i < b + k; ++i) {
            errors[i].clear();
            try {
              // The pipeline training on an image folder uses, to the same bytes,
              // then pixel / 255 as the trainer's fill_batch.
              read_image(files[r0 + i], m.channels, &img, &bytes);
              preprocess_image(img, mode, m.channels, m.height, m.width, u8.data(), files[r0 + i]);
              float* xi = x.data() + i * in;
              for (size_t q = 0; q < in; ++q) xi[q] = static_cast<float>(u8[q]) * (1.0f / 255.0f);
              good.push_back(i);
            } catch (const Error& e) {
              errors[i] = e.what();
            }
          }
          // The good inputs, contiguous, through the network in one call.
          const int g = static_cast<int>(good.size());
          packed.resize(good.size() * in);
          for (int j = 0; j < g; ++j)
            std::copy_n(x.begin() + good[j] * in, in, packed.begin() + j * in);
          if (g) {
            const float* lp = model.log_probs(packed.data(), g);
            for (int j = 0; j < g; ++j)
              write_probabilities(lp + static_cast<size_t>(j) * m.classes, 1, m.classes,
                                  p.data() + static_cast<size_t>(good[j]) * m.classes);
          }
        } catch (...) {
          error.keep();
        }
      }
    }
    error.rethrow();
    for (int i = 0; i < std::min(round, n - r0); ++i) {
      Classified c;
      c.file = &files[r0 + i];
      if (!errors[i].empty()) {
        c.error = errors[i];
      } else {
        c.p.assign(p.begin() + static_cast<size_t>(i) * m.classes,
                   p.begin() + static_cast<size_t>(i + 1) * m.classes);
        c.input = x.data() + static_cast<size_t>(i) * in;
      }
      emit(c);
    }
  }
}

}  // namespace dpcnn
