// Runs a fuzzer's entry point on its seeds and on a few thousand deterministic
// mutations of them (bit flips, truncations, overwritten and inserted bytes)
// in every ordinary build, so the parsers' robustness is checked without
// clang; scripts/fuzz.sh does the real, coverage-guided fuzzing. Also replays
// tests/fuzz/regressions/<fuzzer>/*: inputs that once crashed.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/rng.h"
#include "fuzz_seeds.h"

namespace {

void feed(const std::string& s) {
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

TEST(FuzzReplay, SeedsAndMutationsAreHandled) {
  const auto seeds = fuzz_seeds();
  ASSERT_FALSE(seeds.empty());
  dpcnn::Rng r(2024);
  for (const std::string& seed : seeds) {
    feed(seed);
    for (int i = 0; i < 400 && !seed.empty(); ++i) {
      std::string s = seed;
      const size_t at = r.below(s.size());
      switch (r.below(4)) {
        case 0:
          s[at] = static_cast<char>(s[at] ^ (1 << r.below(8)));
          break;
        case 1:
          s.resize(at);
          break;
        case 2:
          s[at] = static_cast<char>(r.below(256));
          break;
        default:
          s.insert(at, std::string(1 + r.below(8), static_cast<char>(r.below(256))));
      }
      if (!s.empty() && at == 0 && seed.size() > 1) s[0] = seed[0];  // keep the mode byte mostly
      feed(s);
    }
  }
}

TEST(FuzzReplay, PastCrashesStayFixed) {
  const std::filesystem::path dir =
      std::filesystem::path(DPCNN_SOURCE_DIR) / "tests/fuzz/regressions" / DPCNN_FUZZER;
  // A missing or empty directory would make this test pass while replaying
  // nothing: both fuzzers have regression inputs, so that is a failure.
  ASSERT_TRUE(std::filesystem::is_directory(dir)) << dir;
  size_t replayed = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    ++replayed;
    std::ifstream in(e.path(), std::ios::binary);
    SCOPED_TRACE(e.path().string());
    feed(std::string(std::istreambuf_iterator<char>(in), {}));
  }
  EXPECT_GT(replayed, 0u) << dir;
}

}  // namespace
