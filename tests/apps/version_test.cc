// --version on every binary: the project version and commit, then the
// libraries that binary links (the launcher's tools without oneDNN), exit 0,
// even where other options are required.
#include <gtest/gtest.h>

#include <regex>

#include "../integration/process_testing.h"

namespace dpcnn {
namespace {

using testing::sh;

const char* kHead = R"(^%s \d+\.\d+\.\d+ \(commit ([0-9a-f]{12}|unknown)\)\n)";
const char* kOneDnn =
    R"(  oneDNN: \d+\.\d+\.\d+.*, CPU ISA (sse41|avx|avx2|avx512_\w+|avx2_vnni)\n)";
const char* kRpc = R"(  gRPC: \d+\.\d+\.\d+\n  Protobuf: \d+\.\d+\.\d+\n)";

std::string head(const char* tool) {
  char buf[256];
  std::snprintf(buf, sizeof buf, kHead, tool);
  return buf;
}

void expect_version(const char* tool, const std::string& rest) {
  const auto r = sh(std::string(DPCNN_BIN_DIR) + "/" + tool + " --version");
  EXPECT_EQ(r.status, 0) << tool << "\n" << r.output;
  EXPECT_TRUE(std::regex_match(r.output, std::regex(head(tool) + rest + "$"))) << tool << "\n"
                                                                               << r.output;
}

TEST(Version, EveryBinaryNamesItsVersionCommitAndLibraries) {
  expect_version("dpcnn-train",
                 std::string(kOneDnn) + R"(  MPI: Open MPI v\d+\.\d+\.\d+\n)" + kRpc);
  expect_version("dpcnn-launch", kRpc);
  expect_version("dpcnn-status", kRpc);
  expect_version("dpcnn-predict", kOneDnn);
  expect_version("dpcnn-export", kOneDnn);
  expect_version("dpcnn-dataset", "");
}

}  // namespace
}  // namespace dpcnn
