#include "launcher/run_paths.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <regex>

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
      fs::exists(d / "status.addr", ec))
    return dir;
  const std::string newest = dpcnn::newest_run(dir);
  return newest;
}

ResumeTarget resolve_resume(const std::string& arg, const std::string& experiment_dir) {
  if (arg == "auto") {
    const std::string run = dpcnn::newest_run(experiment_dir);
    if (run.empty())
      throw InputError("--resume auto: no run of this experiment under '" + experiment_dir +
                       "' to continue (start without --resume for a new run)");
    return {run, "auto"};
  }
  std::error_code ec;
  if (!fs::exists(arg, ec))
    throw InputError("--resume: no such checkpoint, run or experiment directory '" + arg + "'");
  const std::string abs = fs::absolute(arg).lexically_normal().string();
  if (is_dir(arg) && is_dir(fs::path(arg) / "checkpoints")) {
    if (const std::string v = dpcnn::run_of(arg); !v.empty()) return {v, "auto"};
    return {abs, "auto"};  // a run directory of the layout before versions
  }
  if (is_dir(arg) && !is_version_name(fs::path(abs).filename().string())) {
    // An experiment directory: its newest run. (A checkpoints directory has
    // no version_N inside, so it falls through to the checkpoint case.)
    if (const std::string run = dpcnn::newest_run(arg); !run.empty()) return {run, "auto"};
  }
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
