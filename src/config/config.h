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

// data.augment: random affine distortions of training images (never of the
// validation or test set), drawn per (seed, epoch, sample index) so every rank
// count sees the same images. All zero/false: off.
struct AugmentConfig {
  float shift = 0;     // max translation in pixels, each axis, uniform in [-shift, shift]
  float rotation = 0;  // max rotation in degrees, uniform in [-rotation, rotation]
  float scale = 0;     // zoom factor uniform in [1 - scale, 1 + scale]
  bool hflip = false;  // mirror left-right with probability 1/2 (not for digits)
  bool enabled() const { return shift > 0 || rotation > 0 || scale > 0 || hflip; }
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
  // The config names data.preprocess: dpcnn-predict then uses it for any
  // format (an IDX-trained model knows best what its images looked like).
  bool preprocess_given = false;
  // folder: where the decoded images are kept ("" = <dir>/.dpcnn-cache).
  std::string cache_dir;
  // One name per class (model.classes of them), for dpcnn-predict's output and
  // the exported model's metadata; empty: classes are named by their index
  // (idx) or by their folders (folder, filled in when the data is loaded).
  // With folder it names the class folders in label order (as Keras's
  // class_names), instead of sorted.
  std::vector<std::string> class_names;
  AugmentConfig augment;
};

// train.early_stopping, as Keras's EarlyStopping callback: stop when `monitor`
// has not improved by more than min_delta for `patience` epochs. Enabled when
// the section is present (monitor then defaults to val_loss).
struct EarlyStoppingConfig {
  bool enabled = false;
  std::string monitor = "val_loss";  // val_loss | val_accuracy | test_loss | test_accuracy
  int patience = 0;
  float min_delta = 0;
  std::string mode = "auto";  // auto (min for *_loss, max for *_accuracy) | min | max
};

struct TrainConfig {
  int epochs = 5;
  int batch_size = 64;       // the GLOBAL batch, split across ranks
  int eval_batch_size = 64;  // global, for evaluation only (bounds its memory)
  int max_steps = 0;         // > 0: stop after this many steps (tests, benchmarks)
  // Per-epoch evaluation at all (validation split and test_each_epoch); false
  // skips both (tests, benchmarks). The final test evaluation always runs.
  bool eval = true;
  // Fraction of the training set held out for val_loss / val_accuracy,
  // stratified by class and chosen by the seed (the same for every rank count).
  float validation_split = 0;
  bool test_each_epoch = false;  // also score the test set every epoch (test_loss, test_accuracy)
  EarlyStoppingConfig early_stopping;
  // Without a live bar (logs, mpirun): a progress line this often inside an
  // epoch, besides the epoch's last line; 0: epoch lines only.
  int progress_interval_s = 10;
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
  int ranks = 1;             // dpcnn-launch's rank count when no --np is given
};

struct CheckpointConfig {
  int every_steps = 0;  // 0: only at epoch ends
  int keep = 3;
  // Metric that picks checkpoints/best: "auto" (early stopping's monitor, else
  // val_loss with a validation split, else none), "none", or a metric name.
  std::string best_monitor = "auto";
};

struct StatusConfig {
  // Port 0: a free port, recorded in the run's status.addr, so two jobs never
  // collide by default.
  std::string listen = "127.0.0.1:0";
  // PEM files; both needed to serve TLS (required off loopback unless the
  // launcher is given --insecure).
  std::string tls_cert, tls_key;
  // The HTTP side (Prometheus /metrics and the web page), on its own port;
  // recorded in the run's metrics.addr. "off" (or "") serves none. It follows
  // listen's rules: TLS with the same files, loopback unless TLS or --insecure.
  std::string metrics_listen = "127.0.0.1:0";
};

struct LauncherConfig {
  int max_restarts = 3;
  int stall_timeout_s = 120;
  // Elastic restarts (dpcnn-launch with --hostfile): a host that stops
  // answering (or whose ranks fail twice in a row) is left out and the job
  // restarts from its last checkpoint on the others, with the same global
  // batch, down to min_ranks; a host that answers again is taken back at the
  // next checkpoint. host_timeout_s bounds one reachability probe: a TCP
  // connect to probe_port (ssh's, which mpirun uses; a refusal counts as an
  // answer, so the port needs no listener, only no firewall that drops it).
  bool elastic = false;
  int min_ranks = 1;
  int host_timeout_s = 10;
  int probe_port = 22;
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
