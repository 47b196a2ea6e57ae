// Checkpoints: everything needed to continue a run exactly (weights, optimizer
// state, position, config, metrics), stored as the Protobuf message
// dpcnn.v1.Checkpoint (proto/dpcnn/v1/checkpoint.proto) with every tensor in
// plain NCHW / OI layout, independent of oneDNN's internal layouts, and a
// SHA-256 of the payload. Writing is atomic (temp file in the same directory,
// fsync, rename, fsync the directory); a damaged or foreign file is reported by
// name and never loaded. No MPI, no oneDNN: the trainer (rank 0) and the predict
// tool call these from one thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dpcnn {

struct TensorData {
  std::string name;            // e.g. "layers.0.conv2d.weight", "opt.velocity"
  std::vector<int64_t> shape;  // plain layout
  std::vector<float> data;
};

struct MetricsRecord {  // one epoch of metrics.jsonl
  int epoch = 0;
  int64_t step = 0;
  double loss = 0, accuracy = 0, val_loss = -1, val_accuracy = -1, lr = 0, seconds = 0,
         images_per_sec = 0;
};

struct CheckpointData {
  uint32_t format_version = 1;
  std::string model_spec;   // canonical text of the model section (checked on load)
  std::string config_yaml;  // the resolved config of the run
  int32_t ranks = 1;
  // Position: the next step to run is step_in_epoch of epoch (0-based);
  // global_step steps are done.
  int32_t epoch = 0;
  int64_t step_in_epoch = 0;
  int64_t global_step = 0;
  uint64_t seed = 0;
  std::vector<uint64_t> rng_state;  // reserved: all randomness derives from seed+position today
  std::vector<TensorData> params;   // in model buffer order
  std::vector<TensorData> state;    // non-trainable (BatchNorm running stats)
  std::string optimizer_type;
  int64_t optimizer_iterations = 0;
  std::vector<TensorData> optimizer_slots;  // one per slot, flat over all parameters
  std::vector<MetricsRecord> metrics;
};

// Serialises and writes `c` atomically to `path`. Throws dpcnn::Error.
void write_checkpoint(const std::string& path, const CheckpointData& c);

// Reads, verifies (magic, format version, checksum, parse) and returns the
// checkpoint. Throws dpcnn::Error naming the file and what is wrong:
// "not a dpcnn checkpoint", "truncated", "checksum mismatch (damaged)", ...
CheckpointData read_checkpoint(const std::string& path);

// The run's checkpoint directory: <dir>/ckpt-<global_step 10 digits>.pb files
// and a `latest` file naming the newest (replaced atomically).
class CheckpointDir {
 public:
  explicit CheckpointDir(std::string dir);
  // Writes ckpt-<step>.pb, points `latest` at it, deletes all but the newest
  // `keep`. Returns the path written.
  std::string save(const CheckpointData& c, int keep);
  // Newest checkpoint that reads cleanly and whose model_spec equals
  // `model_spec` (if non-empty); damaged or foreign ones are reported on stderr
  // by name and skipped for the one before. Returns false when none.
  bool load_newest_valid(const std::string& model_spec, CheckpointData* out,
                         std::string* path_out) const;
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

// Resolves what a user passes as a checkpoint: a checkpoint file, a `latest`
// pointer file, or a checkpoints directory (its `latest`, else its newest file).
std::string resolve_checkpoint_path(const std::string& path);

}  // namespace dpcnn
