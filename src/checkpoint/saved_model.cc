#include "checkpoint/saved_model.h"

#include <filesystem>

#include "checkpoint/model_io.h"
#include "core/error.h"

namespace dpcnn {
namespace fs = std::filesystem;

SavedModel open_saved_model(const std::string& what, Precision precision) {
  SavedModel s;
  s.path = resolve_model_checkpoint(what, &s.note);
  const CheckpointData c = read_checkpoint(s.path);
  if (c.config_yaml.empty())
    throw InputError("checkpoint '" + s.path + "' holds no config; cannot rebuild its model");
  s.cfg = parse_config(c.config_yaml, "checkpoint '" + s.path + "' (its config)");
  s.model = std::make_unique<Model>(s.cfg.model, precision);
  load_model(c, s.path, s.model.get(), nullptr);
  s.global_step = c.global_step;
  s.channels = s.cfg.model.input[0];
  s.height = s.cfg.model.input[1];
  s.width = s.cfg.model.input[2];
  s.classes = s.cfg.model.classes;
  s.class_names = s.cfg.data.class_names;
  if (s.class_names.empty())
    for (int k = 0; k < s.classes; ++k) s.class_names.push_back(std::to_string(k));
  return s;
}

std::string default_checkpoint(const std::string& runs_dir, std::string* why) {
  std::error_code ec;
  std::string best, chosen;  // the newest run's latest, and what it gives a model
  fs::file_time_type best_time{};
  int runs = 0;
  // A run's checkpoints directory (or the experiment's, in the older layout).
  auto consider = [&](const fs::path& run) {
    if (!fs::is_directory(run / "checkpoints", ec)) return;
    std::string path;
    try {
      path = resolve_checkpoint_path((run / "checkpoints").string());
    } catch (const Error&) {
      return;  // an empty run (stopped before its first checkpoint)
    }
    const auto t = fs::last_write_time(path, ec);
    if (ec) return;
    ++runs;
    if (best.empty() || t > best_time) {
      best = path, best_time = t;
      chosen = resolve_model_checkpoint((run / "checkpoints").string());
    }
  };
  for (const auto& exp : fs::directory_iterator(runs_dir, ec)) {
    if (!exp.is_directory(ec) || exp.is_symlink(ec)) continue;
    consider(exp.path());
    for (const auto& run : fs::directory_iterator(exp.path(), ec))
      if (run.path().filename().string().rfind("version_", 0) == 0 && !run.is_symlink(ec))
        consider(run.path());
  }
  if (best.empty())
    throw InputError("no --checkpoint given and no checkpoint under '" + runs_dir +
                     "' (train a model first, or pass --checkpoint)");
  if (why)
    *why = "using checkpoint '" + chosen + "' (the " + (chosen == best ? "latest" : "best") +
           " of the newest of " + std::to_string(runs) + " run(s) under '" + runs_dir +
           "'; pass --checkpoint to choose)";
  return chosen;
}

}  // namespace dpcnn
