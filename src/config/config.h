// Experiment configuration: a YAML file (see configs/ and the README's config
// reference) turned into plain structs. Loading validates everything it can
// without building the model: unknown keys, wrong types, out-of-range values and
// impossible shapes are reported as one dpcnn::Error naming the file, the key
// (dotted path) and its line. Pure data; safe to copy and share across threads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dpcnn {

// One entry of model.layers. `type` picks which of the fields below matter.
//   conv2d:    filters, kernel[h,w], strides[h,w], padding, activation, use_bias
//   maxpool2d: pool[h,w], strides[h,w] (default = pool), padding
//   dense:     units, activation, use_bias
//   relu, flatten: no fields
//   dropout:   rate
//   batchnorm: momentum (Keras 0.99), epsilon (Keras 1e-3), sync (statistics of the
//              global batch across ranks; false: each rank's slice)
struct LayerSpec {
  std::string type;
  int line = 0;  // line in the YAML file, for errors found later (shape checks)
  int filters = 0;
  int units = 0;
  int kernel[2] = {0, 0};
  int pool[2] = {2, 2};
  int strides[2] = {1, 1};
  std::string padding = "valid";    // valid | same
  std::string activation = "none";  // none | relu
  bool use_bias = true;
  float rate = 0.0f;
  float momentum = 0.99f;
  float epsilon = 1e-3f;
  bool sync = true;
};

struct ScheduleConfig {
  std::string type = "constant";  // constant | step | cosine
  int step_epochs = 1;            // step: multiply by gamma every step_epochs epochs
  float gamma = 0.1f;
  float min_lr = 0.0f;   // cosine: floor of the decay
  int warmup_steps = 0;  // linear warm-up from 0, any schedule
};

struct OptimizerConfig {
  std::string type = "rmsprop";  // sgd | rmsprop | adam
  float learning_rate = 1e-3f;
  float momentum = 0.0f;  // sgd momentum; rmsprop momentum
  bool nesterov = false;
  float rho = 0.9f;           // rmsprop (Keras default)
  float beta1 = 0.9f;         // adam
  float beta2 = 0.999f;       // adam
  float epsilon = 1e-7f;      // Keras default
  float weight_decay = 0.0f;  // decoupled, as Keras/AdamW: p -= lr * wd * p
  ScheduleConfig schedule;
};

struct DataConfig {
  // idx: dir holds {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz];
  // folder: dir/train/<class>/*.png|jpg|... and dir/test/<class>/... (ImageFolder).
  std::string format = "idx";
  std::string dir = "data/mnist";
  bool broadcast = false;  // rank 0 reads and broadcasts (multi-host without shared fs)
  // folder: how a decoded image becomes the model's input (src/image/pipeline.h):
  // mnist | resize | none.
  std::string preprocess = "resize";
  // folder: where the decoded images are kept ("" = <dir>/.dpcnn-cache).
  std::string cache_dir;
  // One name per class (model.classes of them), for dpcnn-predict's output and
  // the exported model's metadata; empty: classes are named by their index
  // (idx) or by their folders (folder, filled in when the data is loaded).
  // With folder it names the class folders in label order (as Keras's
  // class_names), instead of sorted.
  std::vector<std::string> class_names;
};

struct TrainConfig {
  int epochs = 5;
  int batch_size = 64;       // the GLOBAL batch, split across ranks
  int eval_batch_size = 64;  // global, for evaluation only (bounds its memory)
  int max_steps = 0;         // > 0: stop after this many steps (tests, benchmarks)
  bool eval = true;          // evaluate on the test set after each epoch
  // fp32 | bf16 | auto: bf16 mixed precision where the CPU pays for it (layers/precision.h).
  std::string precision = "auto";
};

struct ModelConfig {
  std::vector<int> input = {1, 28, 28};  // C, H, W
  int classes = 10;
  std::vector<LayerSpec> layers;
};

struct DistributedConfig {
  bool overlap = true;       // bucketed MPI_Iallreduce during backward
  int bucket_kb = 64;        // small model: small buckets start reducing while conv2 runs backward
  int threads_per_rank = 0;  // 0: host cores / ranks on the host
};

struct CheckpointConfig {
  int every_steps = 0;  // 0: only at epoch ends
  int keep = 3;
};

struct StatusConfig {
  // Port 0: a free port, recorded in the run's status.addr, so two jobs never
  // collide by default.
  std::string listen = "127.0.0.1:0";
  // PEM files; both needed to serve TLS (required off loopback unless the
  // launcher is given --insecure).
  std::string tls_cert, tls_key;
};

struct LauncherConfig {
  int max_restarts = 3;
  int stall_timeout_s = 120;
  // Elastic restarts (dpcnn-launch with --hostfile): a host that stops
  // answering (or whose ranks fail twice in a row) is left out and the job
  // restarts from its last checkpoint on the others, with the same global
  // batch, down to min_ranks; a host that answers again is taken back at the
  // next checkpoint. host_timeout_s bounds one reachability probe.
  bool elastic = false;
  int min_ranks = 1;
  int host_timeout_s = 10;
};

struct Config {
  std::string source;  // file path it came from ("" for built-in)
  std::string name = "run";
  uint64_t seed = 42;
  std::string runs_dir = "runs";  // outputs go to <runs_dir>/<name>/
  DataConfig data;
  TrainConfig train;
  OptimizerConfig optimizer;
  ModelConfig model;
  DistributedConfig distributed;
  CheckpointConfig checkpoint;
  StatusConfig status;
  LauncherConfig launcher;
  std::string yaml;  // the resolved config (after --set), re-emitted as YAML
};

// Loads `path`, applies `overrides` ("dotted.key=value", value parsed as YAML;
// list entries as model.layers[2].units or model.layers.2.units; index == size
// appends), validates, and returns the result. Throws dpcnn::Error with one line such as
//   configs/x.yaml:12: unknown key 'optimizer.lerning_rate' (did you mean 'learning_rate'?)
//   configs/x.yaml:7: 'train.batch_size' must be a positive integer, got 'sixty'
//   --set train.epochs: 'train.epochs' must be a positive integer, got 'x'
// Enum values (optimizer.type, layer type, padding, ...) are case-insensitive and
// stored lower-case; activation 'linear' is stored as 'none'.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});

// `cfg` with data.class_names set to `names` (also in cfg.yaml, so the names
// travel in checkpoints).
Config with_class_names(const Config& cfg, const std::vector<std::string>& names);

// Same, from YAML text (tests, checkpoints); `source` names it in errors.
Config parse_config(const std::string& yaml_text, const std::string& source,
                    const std::vector<std::string>& overrides = {});

}  // namespace dpcnn
