// The worker's side of the launcher link: a TrainingObserver that sends rank
// 0's progress and events to dpcnn-launch over gRPC (dpcnn.v1.Reporter) and
// hands back the launcher's commands (stop, checkpoint now).
//
// Created by dpcnn-train's main when it is given --report-to/--run-id; only
// rank 0's Trainer calls it, from the training thread. The on_* methods only
// copy into a buffer under a mutex and return: a background thread owns the
// network. It sends at most every `interval` (progress and a heartbeat that
// fetches commands) and at once for start, epoch end, checkpoint and finish.
// An unreachable launcher costs the training thread nothing: failed reports are
// kept, merged with newer ones and retried; training continues.
// Destroying the reporter flushes what is left, waiting at most ~2 s.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "train/observer.h"

namespace dpcnn {

struct ReporterOptions {
  std::chrono::milliseconds interval{1000};     // progress/heartbeat period
  std::chrono::milliseconds rpc_timeout{2000};  // per report
  std::string token;                            // the run token; empty: none sent
};

// The token comes from the DPCNN_RUN_TOKEN environment variable (set by
// dpcnn-launch) so that it never shows in `ps`.
std::unique_ptr<TrainingObserver> make_grpc_reporter(const std::string& address,
                                                     const std::string& run_id);
std::unique_ptr<TrainingObserver> make_grpc_reporter(const std::string& address,
                                                     const std::string& run_id,
                                                     const ReporterOptions& options);

}  // namespace dpcnn
