#include "launcher/checkpoint_check.h"

#include <exception>

#include "checkpoint/checkpoint.h"

namespace dpcnn::launcher {

StopCheck verify_checkpoint_at(const std::string& run_dir, int64_t step) {
  StopCheck r;
  if (step <= 0) {
    r.problem = "no step was trained";
    return r;
  }
  r.path = run_dir + "/checkpoints/" + CheckpointDir::file_name(step);
  try {
    const CheckpointData c = read_checkpoint(r.path);  // throws on a missing or damaged file
    if (c.global_step != step) {
      r.problem = "'" + r.path + "' holds step " + std::to_string(c.global_step);
      return r;
    }
  } catch (const std::exception& e) {
    r.problem = e.what();
    return r;
  }
  r.ok = true;
  return r;
}

void check_resumable(const std::string& path) {
  (void)read_checkpoint(resolve_checkpoint_path(path));
}

std::string newest_good_checkpoint(const std::string& run_dir) {
  for (const std::string& p : CheckpointDir(run_dir + "/checkpoints").list()) {
    try {
      const CheckpointData c = read_checkpoint(p);
      return p + " (step " + std::to_string(c.global_step) + ")";
    } catch (const std::exception&) {
      // damaged: the one before it is where a resume would start
    }
  }
  return "none";
}

}  // namespace dpcnn::launcher
