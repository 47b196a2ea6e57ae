// Held-out validation (train.validation_split): a stratified subset of the
// training set chosen by the seed alone, so every rank count (and every rerun)
// holds out the same samples. Pure functions; safe from any thread.
#pragma once

#include <cstdint>
#include <vector>

#include "data/dataset.h"

namespace dpcnn {

// Indices (ascending) of the samples of `d` to hold out: round(fraction * count)
// in all, allocated to the classes in proportion to their sizes (largest
// remainder, so the total is exact), each class's share drawn by a seeded
// shuffle of that class. fraction in [0, 1); 0 gives none.
std::vector<int64_t> validation_indices(const Dataset& d, double fraction, uint64_t seed);

// Moves the samples at `held_out` (ascending) from `train` into `val`; the
// rest keep their order in `train`.
void split_off(Dataset& train, const std::vector<int64_t>& held_out, Dataset* val);

}  // namespace dpcnn
