// How dpcnn-status shows a JobStatus: the full text block (also the screen of
// --watch on a terminal), the one-line form (--watch piped, the launcher's live
// line), and the protobuf JSON of --json and of the run's final status.json.
// The running loss/accuracy are labelled as rank 0's mean of the epoch so far,
// the epoch rows as whole-epoch means over every rank. Pure functions, any
// thread.
#pragma once

#include <string>

#include "dpcnn/v1/status.pb.h"

namespace dpcnn::launcher {

std::string status_text(const v1::JobStatus& s);  // several lines, each ending in '\n'
std::string status_line(const v1::JobStatus& s);  // no newline
std::string status_json(const v1::JobStatus& s, bool pretty);
// Parses status_json's output (unknown fields ignored); false and `error` when
// it is not a JobStatus.
bool status_from_json(const std::string& json, v1::JobStatus* s, std::string* error);
// "2m08s", "done" (finished, or no step left), or "unknown" (no speed yet).
std::string eta_text(const v1::JobStatus& s);

}  // namespace dpcnn::launcher
