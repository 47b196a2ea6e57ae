// Helpers for the robustness suite: a scratch project directory, a snapshot of
// every file under a tree (to prove a command changed nothing), and the
// one-line error check.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <string>

#include "../integration/process_testing.h"

namespace dpcnn::testing {

// A short fingerprint of a file's bytes (size and FNV-1a), so a failing
// comparison prints lines, not megabytes.
inline std::string fingerprint(const std::string& bytes) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ULL;
  return std::to_string(bytes.size()) + " bytes, fnv " + std::to_string(h);
}

// path -> fingerprint of every regular file under `root` (symlinks as their
// target). run.lock is left out: it is the lock's own note of its holder,
// which any process that takes the lock rewrites.
inline std::map<std::string, std::string> snapshot(const std::filesystem::path& root) {
  namespace fs = std::filesystem;
  std::map<std::string, std::string> out;
  std::error_code ec;
  if (!fs::exists(root, ec)) return out;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    const std::string rel = fs::relative(it->path(), root).string();
    if (it->is_symlink(ec))
      out[rel] = "-> " + fs::read_symlink(it->path(), ec).string();
    else if (it->path().filename() == "run.lock")
      continue;
    else if (it->is_regular_file(ec))
      out[rel] = fingerprint(slurp(it->path()));
    else if (it->is_directory(ec))
      out[rel + "/"] = "";
  }
  return out;
}

// stderr must be exactly one non-empty line, starting with `tool: ` and
// containing `needle`.
inline void expect_one_line(const std::string& err, const std::string& tool,
                            const std::string& needle) {
  std::string trimmed = err;
  while (!trimmed.empty() && trimmed.back() == '\n') trimmed.pop_back();
  EXPECT_EQ(trimmed.find('\n'), std::string::npos) << "more than one line:\n" << err;
  EXPECT_EQ(trimmed.rfind(tool + ": ", 0), 0u) << err;
  EXPECT_NE(trimmed.find(needle), std::string::npos) << "expected '" << needle << "' in:\n" << err;
  EXPECT_EQ(trimmed.find("terminate called"), std::string::npos) << err;
}

}  // namespace dpcnn::testing
