// Rng: the project's only source of randomness (init, shuffling, dropout).
// A small counter-free generator (SplitMix64 seeding xoshiro256**) whose output
// is fixed by this code alone, not by the standard library's distributions, so a
// seed gives the same weights and the same epoch order on every build.
// Not thread-safe: one instance per thread of use.
#pragma once

#include <array>
#include <cstdint>

namespace dpcnn {

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) { reseed(seed); }
  void reseed(uint64_t seed);

  uint64_t next_u64();
  // Uniform in [0, 1) with 24 random bits (exactly representable as float).
  float uniform01();
  float uniform(float lo, float hi) { return lo + (hi - lo) * uniform01(); }
  // Uniform integer in [0, n), unbiased (rejection sampling).
  uint64_t below(uint64_t n);

  std::array<uint64_t, 4> state() const { return s_; }
  void set_state(const std::array<uint64_t, 4>& s) { s_ = s; }

 private:
  std::array<uint64_t, 4> s_{};
};

// Mixes several values into one well-spread seed (e.g. seed, epoch, purpose).
uint64_t mix_seed(uint64_t a, uint64_t b, uint64_t c = 0);

}  // namespace dpcnn
