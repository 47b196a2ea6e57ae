// The launcher's reads of checkpoints, with the same reader the worker resumes
// with (src/checkpoint: magic, checksum, parse; no oneDNN). After a Stop the
// launcher exits 0 only if the checkpoint of the stop step reads back cleanly;
// a --resume PATH is read before anything starts. Main thread.
#pragma once

#include <cstdint>
#include <string>

namespace dpcnn::launcher {

struct StopCheck {
  bool ok = false;
  std::string path;     // the checkpoint of the stop step (verified when ok)
  std::string problem;  // why not ok, one clause for the user
};

// Verifies `<run_dir>/checkpoints/ckpt-<step>.pb` holds global step `step`.
StopCheck verify_checkpoint_at(const std::string& run_dir, int64_t step);

// Reads the checkpoint that `--resume PATH` names (file, `latest` pointer or
// checkpoints directory); throws std::runtime_error naming the file and what
// is wrong with it.
void check_resumable(const std::string& path);

// The newest checkpoint of the run that reads cleanly, as "PATH (step N)", or
// "none": said beside a failed stop so the user knows where a resume starts.
std::string newest_good_checkpoint(const std::string& run_dir);

}  // namespace dpcnn::launcher
