// A trained network rebuilt from a checkpoint alone, for the tools that use a
// model without training it (dpcnn-predict, dpcnn-export): the checkpoint's own
// config gives the layers, input shape and class names, and load_model checks
// every tensor before the weights are used. Also what `--checkpoint` means when
// it is left out. Single-threaded; oneDNN runs its own threads inside.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "config/config.h"
#include "model/model.h"

namespace dpcnn {

struct SavedModel {
  std::string path;  // the checkpoint file that was read
  std::string note;  // set when a directory gave its best checkpoint: a line for stderr
  Config cfg;        // the run's resolved config, from the checkpoint
  std::unique_ptr<Model> model;
  int64_t global_step = 0;
  int channels = 0, height = 0, width = 0, classes = 0;
  // cfg.data.class_names, or "0", "1", ... when the config names none.
  std::vector<std::string> class_names;
};

// Reads `what` (anything resolve_checkpoint_path takes; a directory gives its
// checkpoints/best when it has one, see resolve_model_checkpoint) and rebuilds its model.
// Throws InputError naming the file for a missing, damaged or foreign checkpoint.
// Checkpoints hold f32 weights whatever precision trained them; `precision`
// is what the rebuilt network computes in.
SavedModel open_saved_model(const std::string& what, Precision precision = Precision::kFp32);

// What a tool uses when given no --checkpoint: the checkpoint of the run under
// `runs_dir` (every <name>/version_N, and older <name>/checkpoints layouts) whose
// newest checkpoint was written last: its checkpoints/best when it has one,
// else its latest. Returns the checkpoint file and sets `*why` to a
// line for stderr saying which it chose and among how many runs. Throws
// InputError when there is none ("no --checkpoint given and no checkpoint
// under 'runs'").
std::string default_checkpoint(const std::string& runs_dir, std::string* why);

}  // namespace dpcnn
