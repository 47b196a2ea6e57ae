// The job's status as Prometheus metrics (text exposition format 0.0.4), for
// the launcher's HTTP /metrics. Built with prometheus-cpp's Registry and
// TextSerializer from one JobStatus snapshot per scrape, so a series exists
// exactly while the status has it (a rank's series go when the rank does).
// Pure function of its arguments; any thread.
#pragma once

#include <chrono>
#include <string>

#include "dpcnn/v1/status.pb.h"

namespace dpcnn::launcher {

// `now` turns the last checkpoint's time into dpcnn_last_checkpoint_age_seconds.
std::string render_metrics(const v1::JobStatus& status, std::chrono::system_clock::time_point now);

// JOB_STATE_RUNNING -> "running": the `state` label of dpcnn_job_state.
std::string state_label(v1::JobState state);

}  // namespace dpcnn::launcher
