// Exit codes shared by every dpcnn tool (dpcnn-train, dpcnn-launch,
// dpcnn-status, dpcnn-predict), so scripts and schedulers can tell a finished
// job from bad input or a lost checkpoint. The README has the same table.
// Plain constants: safe from any thread.
#pragma once

namespace dpcnn::exit_code {

// Finished, or stopped on request with a verified checkpoint at the stop step.
constexpr int kOk = 0;
// A runtime failure: I/O error, a worker died, an internal error.
constexpr int kFailure = 1;
// Bad input: command line, config, data, image, checkpoint, a model that does
// not fit in memory. Nothing was written.
constexpr int kBadInput = 2;
// Busy: the run directory is locked by another process, or the port is taken.
constexpr int kBusy = 3;
// A stop was requested but no verified checkpoint holds the stop step.
constexpr int kStoppedNoCheckpoint = 4;
// The job failed again after the launcher's last restart.
constexpr int kGaveUp = 5;
// A second interrupt (Ctrl-C) ended the tool at once.
constexpr int kInterrupted = 130;

}  // namespace dpcnn::exit_code
