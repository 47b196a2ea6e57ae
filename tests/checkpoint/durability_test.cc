// The atomic-write contract at the system-call level: a checkpoint's bytes
// are fsynced in a temp file before the rename gives them the final name, and
// the directory is fsynced after the rename (or a crash may undo it). Skipping
// either is invisible to a test that only reads files back, so this binary
// records the calls: it defines fsync() and rename() itself, which the linker
// prefers for the statically linked checkpoint code, notes each call (with
// the path the fd refers to, from /proc/self/fd) and forwards it to libc.
// Only this test binary has these wrappers; single-threaded.
#include <dlfcn.h>
#include <limits.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"

namespace {
bool recording = false;
std::vector<std::string> calls;

std::string fd_path(int fd) {
  char buf[PATH_MAX];
  const std::string link = "/proc/self/fd/" + std::to_string(fd);
  const ssize_t n = readlink(link.c_str(), buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "?";
}
}  // namespace

extern "C" int fsync(int fd) {
  using Fn = int (*)(int);
  static const Fn real = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "fsync"));
  if (recording) calls.push_back("fsync " + fd_path(fd));
  return real(fd);
}

extern "C" int rename(const char* from, const char* to) noexcept {
  using Fn = int (*)(const char*, const char*);
  static const Fn real = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "rename"));
  if (recording) calls.push_back(std::string("rename ") + from + " " + to);
  return real(from, to);
}

namespace dpcnn {
namespace {

namespace fs = std::filesystem;

std::string fresh_dir() {
  const fs::path d = fs::temp_directory_path() / ("dpcnn-durable-" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return fs::canonical(d).string();  // /proc/self/fd shows resolved paths
}

CheckpointData sample() {
  CheckpointData c;
  c.model_spec = "spec";
  c.global_step = 12;
  c.params = {{"w", {3}, {1, 2, 3}}};
  return c;
}

// Checks that calls[at..at+2] are: fsync of a temp file in `dir` named after
// `final_name`, the rename of that temp file to dir/final_name, fsync of dir.
void expect_durable_write(const std::vector<std::string>& calls, size_t at, const std::string& dir,
                          const std::string& final_name) {
  ASSERT_GE(calls.size(), at + 3);
  const std::string temp_prefix = "fsync " + dir + "/." + final_name + ".tmp-";
  EXPECT_EQ(calls[at].rfind(temp_prefix, 0), 0u) << calls[at];
  const std::string temp = calls[at].substr(6);
  EXPECT_EQ(calls[at + 1], "rename " + temp + " " + dir + "/" + final_name);
  EXPECT_EQ(calls[at + 2], "fsync " + dir);
}

TEST(Durability, WriteFsyncsTheTempFileThenRenamesThenFsyncsTheDirectory) {
  const std::string dir = fresh_dir();
  calls.clear();
  recording = true;
  write_checkpoint(dir + "/one.pb", sample());
  recording = false;
  ASSERT_EQ(calls.size(), 3u) << ::testing::PrintToString(calls);
  expect_durable_write(calls, 0, dir, "one.pb");
  EXPECT_EQ(read_checkpoint(dir + "/one.pb").global_step, 12);
  fs::remove_all(dir);
}

// CheckpointDir::save: the checkpoint is durable before `latest` names it, so
// after a crash `latest` never points at a file the crash took away.
TEST(Durability, SaveMakesTheCheckpointDurableBeforeLatestNamesIt) {
  const std::string dir = fresh_dir();
  CheckpointDir(dir).save(sample(), 3);  // the directory exists from now on
  calls.clear();
  recording = true;
  CheckpointData c = sample();
  c.global_step = 13;
  CheckpointDir(dir).save(c, 3);
  recording = false;
  ASSERT_EQ(calls.size(), 6u) << ::testing::PrintToString(calls);
  expect_durable_write(calls, 0, dir, CheckpointDir::file_name(13));
  expect_durable_write(calls, 3, dir, "latest");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace dpcnn
