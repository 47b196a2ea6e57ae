#include "core/version.h"

#ifndef DPCNN_VERSION
#define DPCNN_VERSION "unknown"
#endif
#ifndef DPCNN_GIT_COMMIT
#define DPCNN_GIT_COMMIT "unknown"
#endif

namespace dpcnn {

std::string project_version() { return DPCNN_VERSION; }
std::string git_commit() { return DPCNN_GIT_COMMIT; }

std::string version_report(const std::string& tool, const std::vector<VersionLine>& libraries) {
  std::string out = tool + " " + project_version() + " (commit " + git_commit() + ")\n";
  for (const auto& [name, text] : libraries) out += "  " + name + ": " + text + "\n";
  return out;
}

}  // namespace dpcnn
