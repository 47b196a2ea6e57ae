// How dpcnn-status shows a JobStatus: the full text block, the one-line form
// of --watch, and the protobuf JSON of --json. Pure functions, any thread.
#pragma once

#include <string>

#include "dpcnn/v1/status.pb.h"

namespace dpcnn::launcher {

std::string status_text(const v1::JobStatus& s);  // several lines, each ending in '\n'
std::string status_line(const v1::JobStatus& s);  // no newline
std::string status_json(const v1::JobStatus& s, bool pretty);

}  // namespace dpcnn::launcher
