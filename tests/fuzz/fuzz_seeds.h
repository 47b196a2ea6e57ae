// The seed inputs of one fuzzer (a valid checkpoint; a few small images),
// made by the code under test rather than stored as binary files. Used by
// scripts/fuzz.sh (through <fuzzer>_seeds DIR) and by the replay tests that
// run every ctest build. Single-threaded test code.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

std::vector<std::string> fuzz_seeds();

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
