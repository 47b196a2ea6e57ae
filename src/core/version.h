// What `--version` prints, for every dpcnn binary: the project version and the
// git commit it was built from (both fixed by CMake at configure time; the
// commit is "unknown" outside a git checkout), then one line per library the
// binary links, given by its main (core links none of them: the oneDNN line
// comes from layers/dnnl_info.h, MPI's from the worker's main, gRPC's and
// Protobuf's from the launcher). Plain functions over strings; any thread.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace dpcnn {

// "0.1.0"
std::string project_version();
// Short git commit hash of the source tree at configure time, or "unknown".
std::string git_commit();

// One library the binary links and what it reports about itself, e.g.
// {"oneDNN", "2.6.3 (commit 52b5f10), CPU ISA avx512_core_amx"}.
using VersionLine = std::pair<std::string, std::string>;

// "dpcnn-predict 0.1.0 (commit 1a2b3c4d5e6f)\n  oneDNN: ...\n", one line each.
std::string version_report(const std::string& tool, const std::vector<VersionLine>& libraries);

}  // namespace dpcnn
