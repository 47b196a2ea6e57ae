// CommBatchStats: the model's BatchStatsReducer hook (synchronized BatchNorm)
// served by the job's Communicator, so that layers sum their per-channel
// statistics over all ranks without knowing MPI. Owned by the Trainer, which
// installs it only when there is more than one rank. Training thread only.
#pragma once

#include "comm/communicator.h"
#include "layers/batch_stats.h"

namespace dpcnn {

class CommBatchStats final : public BatchStatsReducer {
 public:
  explicit CommBatchStats(Communicator& comm) : comm_(comm) {}
  void allreduce_sum(double* data, size_t n) override { comm_.allreduce_sum(data, n); }

 private:
  Communicator& comm_;
};

}  // namespace dpcnn
