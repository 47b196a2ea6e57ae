// A BatchStatsReducer for tests: K "ranks" are K threads of one process, each
// with its own layer or model; allreduce_sum blocks until all K have called it
// and gives each the sum. Compute code has no MPI, so this emulates a
// multi-rank job exactly as far as the layers can tell. It also records the
// sequence of call sizes per rank, so tests can check that every rank (an
// empty slice too) makes the same collective calls, and how many. Sums are
// taken in rank order, so results do not depend on thread timing.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <vector>

#include "layers/batch_stats.h"

namespace dpcnn::testing {

class InProcessReducer {
 public:
  explicit InProcessReducer(int ranks) : ranks_(ranks), calls_(ranks), contrib_(ranks) {
    for (int r = 0; r < ranks; ++r) parties_.emplace_back(this, r);
  }
  BatchStatsReducer* rank(int r) { return &parties_[r]; }
  // Sizes of the calls rank r made, in order.
  const std::vector<size_t>& calls(int r) const { return calls_[r]; }

 private:
  struct Party final : BatchStatsReducer {
    Party(InProcessReducer* o, int r) : owner(o), rank(r) {}
    void allreduce_sum(double* data, size_t n) override { owner->reduce(rank, data, n); }
    InProcessReducer* owner;
    int rank;
  };

  void reduce(int rank, double* data, size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    calls_[rank].push_back(n);
    contrib_[rank].assign(data, data + n);
    if (++arrived_ == ranks_) {
      // A size mismatch is a collective-sequence bug: the sizes are recorded
      // for the test to compare, and the sum stays in bounds.
      result_.assign(n, 0.0);
      for (const auto& c : contrib_)
        for (size_t i = 0; i < n && i < c.size(); ++i) result_[i] += c[i];
      arrived_ = 0;
      ++generation_;
      cv_.notify_all();
    } else {
      // A rank that skips a call would leave the others waiting forever (as
      // under MPI): fail loudly instead of hanging the test.
      const uint64_t g = generation_;
      if (!cv_.wait_for(lock, std::chrono::seconds(60), [&] { return generation_ != g; })) {
        std::fprintf(stderr,
                     "InProcessReducer: rank %d waited 60 s for the others: a rank "
                     "skipped a collective call\n",
                     rank);
        std::abort();
      }
    }
    for (size_t i = 0; i < n && i < result_.size(); ++i) data[i] = result_[i];
  }

  int ranks_;
  std::vector<Party> parties_;
  std::vector<std::vector<size_t>> calls_;
  std::mutex mu_;
  std::condition_variable cv_;
  int arrived_ = 0;
  uint64_t generation_ = 0;
  std::vector<std::vector<double>> contrib_;
  std::vector<double> result_;
};

}  // namespace dpcnn::testing
