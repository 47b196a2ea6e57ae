#include "launcher/run_paths.h"

#include <sys/stat.h>

#include <algorithm>

#include <filesystem>
#include <fstream>
#include <regex>

#include "checkpoint/checkpoint.h"
#include "core/error.h"
#include "run/run_dir.h"

namespace dpcnn::launcher {
namespace {

namespace fs = std::filesystem;

bool is_version_name(const std::string& name) {
  static const std::regex re("version_[0-9]+");
  return std::regex_match(name, re);
}

bool is_dir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

}  // namespace

std::string run_to_query(const std::string& dir) {
  const fs::path d = dir;
  std::error_code ec;
  if (is_version_name(fs::weakly_canonical(fs::absolute(d), ec).filename().string()) ||
      fs::exists(d / "status.addr", ec) || fs::exists(d / "status.json", ec))
    return dir;
  const std::string newest = dpcnn::newest_run(dir);
  return newest;
}

ResumeTarget resolve_resume(const std::string& arg, const std::string& experiment_dir) {
  // The run the worker's own --resume auto would continue: a newer run that
  // failed before its first checkpoint is passed over, not resumed from zero.
  auto newest_resumable = [](const std::string& exp, const std::string& what) {
    const std::string run = newest_run_with_checkpoint(exp);
    if (run.empty())
      throw InputError(what + ": no run under '" + exp +
                       "' has a checkpoint to continue from (start without --resume for a new "
                       "run)");
    return run;
  };
  if (arg == "auto") return {newest_resumable(experiment_dir, "--resume auto"), "auto"};
  std::error_code ec;
  if (!fs::exists(arg, ec))
    throw InputError("--resume: no such checkpoint, run or experiment directory '" + arg + "'");
  const std::string abs = fs::absolute(arg).lexically_normal().string();
  if (is_dir(arg)) {
    const std::string name = fs::weakly_canonical(abs, ec).filename().string();
    if (is_version_name(name)) return {abs, "auto"};  // a run directory: its newest checkpoint
    const bool checkpoints_dir =
        !CheckpointDir(arg).list().empty() || fs::is_regular_file(fs::path(arg) / "latest", ec);
    if (!checkpoints_dir)  // an experiment directory (or a run of the layout before versions)
      return {newest_resumable(arg, "--resume " + arg), "auto"};
  }
  // A checkpoint file, `latest` pointer or checkpoints directory: continued in
  // the run it belongs to, or in a new run when it belongs to none.
  return {dpcnn::run_of(arg), abs};
}

namespace {

// Calls f(run) for every run under runs_root that has a status.addr.
template <class F>
void for_each_served_run(const std::string& runs_root, F f) {
  auto consider = [&](const fs::path& run) {
    std::error_code ec;
    if (fs::exists(run / "status.addr", ec)) f(run);
  };
  std::error_code ec;
  for (const auto& exp : fs::directory_iterator(runs_root, ec)) {
    if (!is_dir(exp.path()) || fs::is_symlink(exp.path(), ec)) continue;
    consider(exp.path());  // a run of the layout before versions
    std::error_code ec2;
    for (const auto& run : fs::directory_iterator(exp.path(), ec2))
      if (is_version_name(run.path().filename().string())) consider(run.path());
  }
}

}  // namespace

std::string newest_served_run(const std::string& runs_root) {
  std::string best;
  fs::file_time_type best_time{};
  for_each_served_run(runs_root, [&](const fs::path& run) {
    std::error_code ec;
    const auto t = fs::last_write_time(run / "status.addr", ec);
    if (!ec && (best.empty() || t > best_time)) best = run.string(), best_time = t;
  });
  return best;
}

std::string served_run_at(const std::string& runs_root, const std::string& addr) {
  std::string found;
  for_each_served_run(runs_root, [&](const fs::path& run) {
    std::ifstream f(run / "status.addr");
    std::string line;
    std::getline(f, line);
    if (line == addr) found = run.string();
  });
  return found;
}

}  // namespace dpcnn::launcher
