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
  double test_loss = -1, test_accuracy = -1;  // per-epoch test set (test_each_epoch)
  bool best = false;
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

// The file format without the file: the bytes write_checkpoint puts on disk,
// and the checks read_checkpoint makes on them (`name` stands for the file in
// messages). For tests, fuzzing and sending a checkpoint over the wire.
std::string serialize_checkpoint(const CheckpointData& c);
CheckpointData parse_checkpoint_bytes(const std::string& bytes, const std::string& name);

// Writes `bytes` to `path` atomically: a temp file in the same directory,
// fsync, rename over `path`, fsync the directory. Readers see the old file or
// the new one, never a mix. Throws dpcnn::Error.
void write_file_durably(const std::string& path, const std::string& bytes);

// The run's checkpoint directory: <dir>/ckpt-<global_step 10 digits>.pb files
// and a `latest` file naming the newest (replaced atomically). One writer per
// directory (rank 0); any number of readers, even while it writes.
class CheckpointDir {
 public:
  explicit CheckpointDir(std::string dir);
  // Writes ckpt-<step>.pb (creating the directory), points `latest` at it,
  // deletes older checkpoints beyond the newest `keep` (keep <= 0 keeps all)
  // and temp files left by a writer that was killed. Files of later steps
  // (a run resumed from an older checkpoint) are left alone. Returns the path.
  // The checkpoint named by `best` is never deleted by this rotation (nor
  // counted in `keep`).
  std::string save(const CheckpointData& c, int keep);
  // Points `best` (replaced atomically, like `latest`) at the checkpoint of
  // `global_step`, which must exist. Returns that checkpoint's path.
  std::string set_best(int64_t global_step);
  // The file `best` names ("" when there is none).
  std::string best_name() const;
  // Newest checkpoint that reads cleanly and whose model_spec equals
  // `model_spec` (if non-empty); damaged or foreign ones are reported on stderr
  // by name and skipped for the one before. Returns false when none.
  bool load_newest_valid(const std::string& model_spec, CheckpointData* out,
                         std::string* path_out) const;
  const std::string& dir() const { return dir_; }
  // ckpt-*.pb paths in this directory, newest (highest step) first.
  std::vector<std::string> list() const;
  static std::string file_name(int64_t global_step);  // "ckpt-0000000123.pb"

 private:
  std::string dir_;
};

// Resolves what a user passes as a checkpoint: a checkpoint file, a `latest`
// pointer file, a checkpoints directory (its `latest`, else its newest file), a
// run directory (its checkpoints/) or an experiment directory (its `latest`
// run). Throws InputError naming the path when none of these holds one.
std::string resolve_checkpoint_path(const std::string& path);

// What a tool that uses a model (dpcnn-predict, dpcnn-export) reads: like
// resolve_checkpoint_path, but a directory gives its `best` checkpoint when it
// has one (then `*note`, if given, says so). Resuming always uses `latest`.
std::string resolve_model_checkpoint(const std::string& path, std::string* note = nullptr);

}  // namespace dpcnn
