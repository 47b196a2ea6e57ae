// A worker's memory estimate, made from the config and the loaded data before
// anything is allocated or written, so that a batch or a layer too large for
// this host is one line naming the key to change instead of std::bad_alloc
// after the run directory was touched. Plain functions; any thread.
#pragma once

#include <cstdint>
#include <string>

#include "config/config.h"
#include "data/dataset.h"

namespace dpcnn {

struct MemoryEstimate {
  double params = 0;       // weights, gradients and optimizer state (bytes)
  double activations = 0;  // one training chain at this rank's batch slice
  double data = 0;         // the datasets as held in memory, plus batch buffers
  double total() const { return params + activations + data; }
  std::string largest_layer_key;  // most parameters, e.g. "model.layers[2].filters"
  std::string widest_layer_key;   // largest output a sample, e.g. "model.layers[0].filters"
  double widest_share = 0;        // of the activations
};

// Bytes one rank needs with `ranks` ranks sharing the global batch. Shapes are
// derived here from the config arithmetic alone (no oneDNN), the same way the
// layers compute them; oneDNN's blocked layouts and workspaces add a little,
// covered by a margin in check_memory.
MemoryEstimate estimate_memory(const Config& cfg, const DataSplit& data, int ranks);

// Bytes this process may still use: MemAvailable, capped by the cgroup's
// memory.max minus memory.current when one is set. 0 when unknown.
double available_memory();

// Throws InputError (one line: the estimate, what is available, the key to
// change) when `local_ranks` ranks on this host would not fit.
void check_memory(const Config& cfg, const DataSplit& data, int ranks, int local_ranks);

}  // namespace dpcnn
