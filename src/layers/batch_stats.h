// BatchStatsReducer: the one thing a layer may ask of its peers. Synchronized
// BatchNorm sums a few per-channel numbers over every rank's slice of the
// global batch (forward: sample count, sum, sum of squares; backward: the sums
// of diff_dst and diff_dst * xhat) so that every rank normalises with the
// statistics of the whole global batch.
//
// Compute code (layers/, model/) never includes MPI: the trainer implements
// this on its Communicator and hands it to Model::set_batch_stats_reducer
// when there is more than one rank; with none set, a layer uses its own
// slice's statistics (which, on one rank, ARE the global batch's).
//
// Every rank must make the same calls in the same order (they are collective),
// including a rank whose slice is empty (Layer::forward_empty/backward_empty).
// Called from the training thread only; blocking.
#pragma once

#include <cstddef>

namespace dpcnn {

class BatchStatsReducer {
 public:
  virtual ~BatchStatsReducer() = default;
  // In place: data[i] becomes the sum of data[i] over all ranks.
  virtual void allreduce_sum(double* data, size_t n) = 0;
};

}  // namespace dpcnn
