#include "config/config.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"

namespace dpcnn {
namespace {

// A small valid config; tests edit it line by line. Line numbers matter.
const char* kBase =
    "name: t\n"                                      // 1
    "train:\n"                                       // 2
    "  epochs: 2\n"                                  // 3
    "  batch_size: 8\n"                              // 4
    "optimizer:\n"                                   // 5
    "  type: sgd\n"                                  // 6
    "  learning_rate: 0.1\n"                         // 7
    "model:\n"                                       // 8
    "  input: [1, 8, 8]\n"                           // 9
    "  classes: 3\n"                                 // 10
    "  layers:\n"                                    // 11
    "    - {type: conv2d, filters: 4, kernel: 3}\n"  // 12
    "    - type: maxpool2d\n"                        // 13
    "      pool: 2\n"                                // 14
    "    - {type: flatten}\n"                        // 15
    "    - {type: dense, units: 3}\n";               // 16

// The message of the dpcnn::Error that `f` throws ("" if it throws none).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::string parse_error(const std::string& text, const std::vector<std::string>& sets = {}) {
  return error_of([&] { parse_config(text, "configs/x.yaml", sets); });
}

std::string replace(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

std::vector<std::string> types(const Config& c) {
  std::vector<std::string> out;
  for (const LayerSpec& l : c.model.layers) out.push_back(l.type);
  return out;
}

TEST(Config, MnistLoads) {
  const Config c = load_config("configs/mnist.yaml");
  EXPECT_EQ(c.source, "configs/mnist.yaml");
  EXPECT_EQ(c.name, "mnist");
  EXPECT_EQ(c.seed, 42u);
  EXPECT_EQ(c.data.dir, "data/mnist");
  EXPECT_EQ(c.train.batch_size, 64);
  EXPECT_EQ(c.train.epochs, 5);
  EXPECT_EQ(c.optimizer.type, "rmsprop");
  EXPECT_FLOAT_EQ(c.optimizer.learning_rate, 1e-3f);
  EXPECT_FLOAT_EQ(c.optimizer.rho, 0.9f);
  EXPECT_FLOAT_EQ(c.optimizer.epsilon, 1e-7f);
  EXPECT_EQ(c.checkpoint.every_steps, 0);
  EXPECT_EQ(c.checkpoint.keep, 3);
  EXPECT_EQ(c.model.input, (std::vector<int>{1, 28, 28}));
  EXPECT_EQ(types(c), (std::vector<std::string>{"conv2d", "maxpool2d", "conv2d", "maxpool2d",
                                                "conv2d", "flatten", "dense", "dense"}));
  const auto& L = c.model.layers;
  EXPECT_EQ(L[0].filters, 32);
  EXPECT_EQ(L[0].kernel[0], 3);
  EXPECT_EQ(L[0].kernel[1], 3);
  EXPECT_EQ(L[0].strides[0], 1);
  EXPECT_EQ(L[0].activation, "relu");
  EXPECT_EQ(L[0].padding, "valid");
  EXPECT_EQ(L[1].pool[0], 2);
  EXPECT_EQ(L[1].strides[0], 2);  // defaults to the pool size
  EXPECT_EQ(L[1].strides[1], 2);
  EXPECT_EQ(L[2].filters, 64);
  EXPECT_EQ(L[4].filters, 64);
  EXPECT_EQ(L[6].units, 64);
  EXPECT_EQ(L[6].activation, "relu");
  EXPECT_EQ(L[7].units, 10);
  EXPECT_EQ(L[7].activation, "none");
  for (const LayerSpec& l : L) EXPECT_GT(l.line, 0);
}

TEST(Config, MnistSmallLoads) {
  const Config c = load_config("configs/mnist-small.yaml");
  EXPECT_EQ(c.name, "mnist-small");
  EXPECT_EQ(c.optimizer.type, "adam");
  EXPECT_FLOAT_EQ(c.optimizer.learning_rate, 1e-3f);
  EXPECT_EQ(c.train.batch_size, 32);
  EXPECT_EQ(c.train.epochs, 5);
  EXPECT_EQ(types(c),
            (std::vector<std::string>{"conv2d", "maxpool2d", "flatten", "dense", "dense"}));
  EXPECT_EQ(c.model.layers[3].units, 128);
  EXPECT_EQ(c.model.layers[4].units, 10);
}

TEST(Config, FashionMnistLoads) {
  const Config c = load_config("configs/fashion-mnist.yaml");
  const Config m = load_config("configs/mnist.yaml");
  EXPECT_EQ(c.name, "fashion-mnist");
  EXPECT_EQ(c.data.dir, "data/fashion-mnist");
  ASSERT_EQ(c.data.class_names.size(), 10u);
  EXPECT_EQ(c.data.class_names[5], "Sandal");
  EXPECT_EQ(c.data.class_names[9], "Ankle boot");
  EXPECT_EQ(c.optimizer.type, "rmsprop");
  EXPECT_EQ(c.train.batch_size, 64);
  EXPECT_EQ(c.train.epochs, 5);
  ASSERT_EQ(types(c), types(m));
  for (size_t i = 0; i < c.model.layers.size(); ++i) {
    EXPECT_EQ(c.model.layers[i].filters, m.model.layers[i].filters);
    EXPECT_EQ(c.model.layers[i].units, m.model.layers[i].units);
  }
}

TEST(Config, ClassNames) {
  EXPECT_TRUE(parse_config(kBase, "x").data.class_names.empty());
  const Config c =
      parse_config(std::string(kBase) + "data: {class_names: [cat, dog, 'T-shirt/top']}\n", "x");
  EXPECT_EQ(c.data.class_names, (std::vector<std::string>{"cat", "dog", "T-shirt/top"}));
  // One name a class, each a non-empty string.
  EXPECT_NE(parse_error(std::string(kBase) + "data: {class_names: [cat, dog]}\n")
                .find("configs/x.yaml:17: 'data.class_names' must be a list of model.classes (3) "
                      "non-empty strings"),
            std::string::npos)
      << parse_error(std::string(kBase) + "data: {class_names: [cat, dog]}\n");
  EXPECT_NE(
      parse_error(std::string(kBase) + "data: {class_names: [a, [b], c]}\n").find("class_names"),
      std::string::npos);
  EXPECT_NE(parse_error(std::string(kBase) + "data: {class_names: cat}\n").find("class_names"),
            std::string::npos);
}

TEST(Config, ImageFolderKeys) {
  const Config d = parse_config(kBase, "x");
  EXPECT_EQ(d.data.format, "idx");
  EXPECT_EQ(d.data.preprocess, "resize");
  EXPECT_EQ(d.data.cache_dir, "");
  const Config c = parse_config(
      std::string(kBase) + "data: {format: Folder, preprocess: none, cache_dir: /tmp/c}\n", "x");
  EXPECT_EQ(c.data.format, "folder");
  EXPECT_EQ(c.data.preprocess, "none");
  EXPECT_EQ(c.data.cache_dir, "/tmp/c");
  EXPECT_NE(parse_error(std::string(kBase) + "data: {format: folders}\n").find("'data.format'"),
            std::string::npos);
  EXPECT_NE(
      parse_error(std::string(kBase) + "data: {preprocess: crop}\n").find("'data.preprocess'"),
      std::string::npos);
  // MNIST-style preprocessing makes 1-channel digits.
  std::string rgb = kBase;
  rgb.replace(rgb.find("[1, 8, 8]"), 9, "[3, 8, 8]");
  EXPECT_NO_THROW(parse_config(rgb + "data: {preprocess: resize}\n", "x"));
  EXPECT_NE(parse_error(rgb + "data: {preprocess: mnist}\n")
                .find("'data.preprocess' mnist makes 1-channel digits but model.input has 3"),
            std::string::npos)
      << parse_error(rgb + "data: {preprocess: mnist}\n");
  // Names found in folders go into the config and its YAML (so into checkpoints).
  const Config named = with_class_names(c, {"cat", "dog", "T-shirt/top"});
  EXPECT_EQ(named.data.class_names, (std::vector<std::string>{"cat", "dog", "T-shirt/top"}));
  EXPECT_EQ(parse_config(named.yaml, "again").data.class_names, named.data.class_names);
  EXPECT_EQ(named.data.cache_dir, "/tmp/c");
}

TEST(Config, DefaultsAndLines) {
  const Config c = parse_config(kBase, "configs/x.yaml");
  EXPECT_EQ(c.train.eval_batch_size, 64);
  EXPECT_TRUE(c.distributed.overlap);
  EXPECT_EQ(c.status.listen, "127.0.0.1:0");
  EXPECT_EQ(c.model.layers[0].line, 12);
  EXPECT_EQ(c.model.layers[1].line, 13);
  EXPECT_EQ(c.model.layers[3].line, 16);
}

// launcher.probe_port: ssh's port unless told; a bad one is named with its
// file and line like every other key.
TEST(Config, ProbePort) {
  EXPECT_EQ(parse_config(kBase, "configs/x.yaml").launcher.probe_port, 22);
  EXPECT_EQ(parse_config(kBase, "configs/x.yaml", {"launcher.probe_port=2222"}).launcher.probe_port,
            2222);
  EXPECT_EQ(parse_error(std::string(kBase) + "launcher:\n  probe_port: -22\n"),
            "configs/x.yaml:18: 'launcher.probe_port' must be an integer in [1, 65535], got '-22'");
}

TEST(Config, ResolvedYamlRoundTrips) {
  const Config a = parse_config(kBase, "configs/x.yaml", {"train.epochs=7"});
  EXPECT_NE(a.yaml.find("epochs: 7"), std::string::npos) << a.yaml;
  const Config b = parse_config(a.yaml, "checkpoint");
  EXPECT_EQ(b.train.epochs, 7);
  EXPECT_EQ(types(b), types(a));
  EXPECT_EQ(b.yaml, a.yaml);
}

TEST(Config, UnknownKeySuggests) {
  const std::string e = parse_error(replace(kBase, "  learning_rate: 0.1", "  lerning_rate: 0.1"));
  EXPECT_EQ(e,
            "configs/x.yaml:7: unknown key 'optimizer.lerning_rate' (did you mean "
            "'learning_rate'?)");
  EXPECT_NE(parse_error(std::string(kBase) + "trian: {}\n").find("(did you mean 'train'?)"),
            std::string::npos);
  // Far from everything: list what is allowed instead.
  EXPECT_NE(parse_error(std::string(kBase) + "zzzzzz: 1\n").find("known keys: name, seed"),
            std::string::npos);
}

TEST(Config, FieldOfAnotherLayerTypeIsUnknown) {
  const std::string e = parse_error(replace(kBase, "{type: conv2d, filters: 4, kernel: 3}",
                                            "{type: conv2d, filters: 4, kernel: 3, units: 5}"));
  EXPECT_NE(e.find("configs/x.yaml:12: unknown key 'model.layers[0].units'"), std::string::npos)
      << e;
  EXPECT_NE(e.find("conv2d layers take filters, kernel"), std::string::npos) << e;
}

TEST(Config, WrongType) {
  EXPECT_EQ(parse_error(replace(kBase, "batch_size: 8", "batch_size: sixty")),
            "configs/x.yaml:4: 'train.batch_size' must be a positive integer, got 'sixty'");
  EXPECT_EQ(parse_error(replace(kBase, "batch_size: 8", "batch_size: 0")),
            "configs/x.yaml:4: 'train.batch_size' must be a positive integer, got '0'");
  EXPECT_EQ(parse_error(replace(kBase, "learning_rate: 0.1", "learning_rate: -1")),
            "configs/x.yaml:7: 'optimizer.learning_rate' must be a positive number, got '-1'");
  EXPECT_NE(parse_error(replace(kBase, "input: [1, 8, 8]", "input: [1, 8]"))
                .find("configs/x.yaml:9: 'model.input' must be a list [C, H, W]"),
            std::string::npos);
  EXPECT_EQ(parse_error(replace(kBase, "name: t\n", "name: t\ndata: 5\n")),
            "configs/x.yaml:2: 'data' must be a map, got '5'");
}

TEST(Config, DropoutRateRange) {
  const std::string text = replace(kBase, "    - {type: flatten}\n",
                                   "    - {type: flatten}\n    - {type: dropout, rate: 1}\n");
  EXPECT_EQ(parse_error(text),
            "configs/x.yaml:16: 'model.layers[3].rate' must be a number in [0, 1), got '1'");
  EXPECT_EQ(parse_config(replace(text, "rate: 1", "rate: 0.5"), "x").model.layers[3].rate, 0.5f);
}

TEST(Config, BadEnumListsAllowed) {
  const std::string e = parse_error(replace(kBase, "type: sgd", "type: adamw"));
  EXPECT_EQ(e,
            "configs/x.yaml:6: 'optimizer.type' must be one of sgd, rmsprop, adam, got 'adamw' "
            "(did you mean 'adam'?)");
  const std::string t = parse_error(replace(kBase, "type: maxpool2d", "type: MaxPooling2D"));
  EXPECT_NE(t.find("configs/x.yaml:13: unknown layer type 'MaxPooling2D'"), std::string::npos) << t;
  EXPECT_NE(t.find("conv2d, maxpool2d, dense"), std::string::npos) << t;
  EXPECT_NE(t.find("did you mean 'maxpool2d'?"), std::string::npos) << t;
  // Keras spellings differing only in case are accepted.
  EXPECT_EQ(parse_config(replace(kBase, "type: sgd", "type: SGD"), "x").optimizer.type, "sgd");
}

TEST(Config, KernelLargerThanInput) {
  const std::string e = parse_error(replace(kBase, "kernel: 3}", "kernel: 9}"));
  EXPECT_EQ(e,
            "configs/x.yaml:12: model.layers[0] (conv2d): kernel 9x9 is larger than its input "
            "1x8x8");
  // "same" padding never runs out of input.
  EXPECT_NO_THROW(parse_config(replace(kBase, "kernel: 3}", "kernel: 9, padding: same}"), "x"));
  const std::string p = parse_error(replace(kBase, "pool: 2", "pool: [2, 7]"));
  EXPECT_EQ(p,
            "configs/x.yaml:13: model.layers[1] (maxpool2d): pool 2x7 is larger than its "
            "input 4x6x6");
}

TEST(Config, DenseNeedsFlatten) {
  const std::string e = parse_error(replace(kBase, "    - {type: flatten}\n", ""));
  EXPECT_EQ(e,
            "configs/x.yaml:15: model.layers[2] (dense) needs a flatten before it; its input is "
            "4x3x3");
}

TEST(Config, LastLayerMustMatchClasses) {
  EXPECT_EQ(parse_error(replace(kBase, "classes: 3", "classes: 4")),
            "configs/x.yaml:16: model.layers[3] (dense): the last layer has 3 units but "
            "model.classes is 4");
  EXPECT_NE(parse_error(std::string(kBase) + "    - {type: relu}\n")
                .find("model.layers[4] (relu): the last layer must be dense"),
            std::string::npos);
  EXPECT_NE(parse_error(replace(kBase, "units: 3}", "units: 3, activation: softmax}"))
                .find("the loss applies softmax"),
            std::string::npos);
}

TEST(Config, MissingLayers) {
  EXPECT_NE(parse_error("name: t\n").find("'model.layers' is required"), std::string::npos);
  EXPECT_NE(parse_error(replace(kBase, "  layers:\n", "  layers: []\n  old_layers:\n"))
                .find("unknown key 'model.old_layers'"),
            std::string::npos);
}

TEST(Config, SyntaxErrorHasLine) {
  const std::string e = parse_error("name: t\ntrain:\n  epochs: [1, 2\n");
  EXPECT_EQ(e.rfind("configs/x.yaml:", 0), 0u) << e;
  EXPECT_NE(e.find(": YAML syntax error: "), std::string::npos) << e;
}

TEST(Config, DuplicateKey) {
  const std::string e =
      parse_error(replace(kBase, "  batch_size: 8\n", "  batch_size: 8\n  epochs: 3\n"));
  EXPECT_EQ(e, "configs/x.yaml:5: duplicate key 'train.epochs' (first at configs/x.yaml:3)");
}

TEST(Config, OverrideScalarListAndLayerField) {
  const Config c = parse_config(
      kBase, "configs/x.yaml",
      {"train.batch_size=16", "optimizer.learning_rate=0.01", "model.input=[1, 10, 10]",
       "model.layers[0].kernel=[3, 5]", "model.layers.3.use_bias=false",
       "optimizer.schedule.type=cosine", "distributed.overlap=false"});
  EXPECT_EQ(c.train.batch_size, 16);
  EXPECT_FLOAT_EQ(c.optimizer.learning_rate, 0.01f);
  EXPECT_EQ(c.model.input, (std::vector<int>{1, 10, 10}));
  EXPECT_EQ(c.model.layers[0].kernel[0], 3);
  EXPECT_EQ(c.model.layers[0].kernel[1], 5);
  EXPECT_FALSE(c.model.layers[3].use_bias);
  EXPECT_EQ(c.optimizer.schedule.type, "cosine");
  EXPECT_FALSE(c.distributed.overlap);
  EXPECT_NE(c.yaml.find("batch_size: 16"), std::string::npos) << c.yaml;
}

TEST(Config, OverrideReplacesAndAppendsLayers) {
  const Config c = parse_config(kBase, "x",
                                {"model.layers[3]={type: dense, units: 8, activation: relu}",
                                 "model.layers[4]={type: dense, units: 3}"});
  ASSERT_EQ(c.model.layers.size(), 5u);
  EXPECT_EQ(c.model.layers[3].units, 8);
  EXPECT_EQ(c.model.layers[4].line, 0);  // came from --set
}

TEST(Config, OverrideErrorsNameTheOverride) {
  EXPECT_EQ(parse_error(kBase, {"optimizer.lerning_rate=0.1"}),
            "--set optimizer.lerning_rate: unknown key 'optimizer.lerning_rate' (did you mean "
            "'learning_rate'?)");
  EXPECT_EQ(parse_error(kBase, {"train.epochs=x"}),
            "--set train.epochs: 'train.epochs' must be a positive integer, got 'x'");
  EXPECT_EQ(parse_error(kBase, {"model.layers.2.units=5"}),
            "--set model.layers.2.units: unknown key 'model.layers[2].units' (flatten layers "
            "take no fields besides 'type')");
  EXPECT_EQ(parse_error(kBase, {"model.layers[0].kernel=9"}),
            "--set model.layers[0].kernel: model.layers[0] (conv2d): kernel 9x9 is larger than "
            "its input 1x8x8");
  // A new section that does not exist names the override too.
  EXPECT_NE(parse_error(kBase, {"schedule.type=step"})
                .find("--set schedule.type: unknown key "
                      "'schedule'"),
            std::string::npos);
  EXPECT_NE(parse_error(kBase, {"model.layers[9].units=5"}).find("out of range"),
            std::string::npos);
  EXPECT_NE(parse_error(kBase, {"train.epochs.x=5"}).find("'train.epochs' is not a map"),
            std::string::npos);
}

TEST(Config, MalformedOverride) {
  EXPECT_EQ(parse_error(kBase, {"train.epochs"}),
            "--set train.epochs: expected key=value, e.g. --set train.epochs=3");
  EXPECT_NE(parse_error(kBase, {"train..epochs=3"}).find("malformed key"), std::string::npos);
  EXPECT_NE(parse_error(kBase, {"=3"}).find("the key is empty"), std::string::npos);
  EXPECT_NE(parse_error(kBase, {"train.epochs=[1"}).find("--set train.epochs: YAML syntax error"),
            std::string::npos);
}

// Each kind of value has its own wording, and every error names the key (and
// the --set that gave it, or the file and line).
TEST(Config, ErrorsSayWhatEachKeyWants) {
  const struct {
    std::string set, want;
  } cases[] = {
      {"train.eval=3", "--set train.eval: 'train.eval' must be true or false, got '3'"},
      {"seed=-1", "--set seed: 'seed' must be a non-negative integer below 2^64, got '-1'"},
      {"launcher.max_restarts=-1",
       "--set launcher.max_restarts: 'launcher.max_restarts' must be a non-negative integer, got "
       "'-1'"},
      {"launcher.elastic=2",
       "--set launcher.elastic: 'launcher.elastic' must be true or false, got '2'"},
      {"launcher.min_ranks=0",
       "--set launcher.min_ranks: 'launcher.min_ranks' must be an integer in [1, 4096], got '0'"},
      {"launcher.min_ranks=9",
       "--set launcher.min_ranks: 'launcher.min_ranks' is 9, more than train.batch_size 8: "
       "every rank needs at least one sample of the global batch"},
      {"launcher.host_timeout_s=0",
       "--set launcher.host_timeout_s: 'launcher.host_timeout_s' must be an integer in [1, "
       "3600], got '0'"},
      {"launcher.probe_port=0",
       "--set launcher.probe_port: 'launcher.probe_port' must be an integer in [1, 65535], got "
       "'0'"},
      {"launcher.probe_port=65536",
       "--set launcher.probe_port: 'launcher.probe_port' must be an integer in [1, 65535], got "
       "'65536'"},
      {"launcher.probe_port=ssh",
       "--set launcher.probe_port: 'launcher.probe_port' must be an integer in [1, 65535], got "
       "'ssh'"},
      {"distributed.bucket_kb=0",
       "--set distributed.bucket_kb: 'distributed.bucket_kb' must be an integer in [1, 1048576], "
       "got '0'"},
      {"optimizer.rho=1.5",
       "--set optimizer.rho: 'optimizer.rho' must be a number in [0, 1), got "
       "'1.5'"},
      {"model.layers[0].kernel=[3,x]",
       "--set model.layers[0].kernel: 'model.layers[0].kernel' must be a positive integer or a "
       "list [h, w] of positive integers, got ['3', 'x']"},
      {"model.layers[0].kernel=[3,3,3]",
       "--set model.layers[0].kernel: 'model.layers[0].kernel' must be a positive integer or a "
       "list [h, w] of positive integers, got a list of 3"},
      {"name=a/b",
       "--set name: 'name' names the run directory <runs_dir>/<name>; use letters, digits, '.', "
       "'_' and '-', got 'a/b'"},
      {"model.input=[1,-8,8]",
       "--set model.input: 'model.input[1]' must be a positive integer, got '-8'"},
      {"status.listen=[1]",
       "--set status.listen: 'status.listen' must be a non-empty string, got a list of 1"},
      {"model.layers=[]",
       "--set model.layers: 'model.layers' must be a non-empty list of layers, got a list of 0"},
      {"model.layers[9].units=3",
       "--set model.layers[9].units: index 9 is out of range; 'model.layers' has 4 entries"},
      {"train.batch_size.x=3",
       "--set train.batch_size.x: 'train.batch_size' is not a map, it holds '8'"},
  };
  for (const auto& c : cases) EXPECT_EQ(parse_error(kBase, {c.set}), c.want) << c.set;
  EXPECT_EQ(parse_error(kBase, {"optimizer.schedule.type=cosine", "optimizer.schedule.min_lr=1"}),
            "--set optimizer.schedule.min_lr: 'optimizer.schedule.min_lr' (1) must not exceed "
            "'optimizer.learning_rate' (0.1)");
  // Whole files that are not one map of settings.
  EXPECT_EQ(parse_error("- a\n"),
            "configs/x.yaml:1: a config is a map of settings, got a list of 1");
  EXPECT_EQ(parse_error("{[1]: 2}\n"),
            "configs/x.yaml:1: keys must be plain names, got a list of 1 in 'the config'");
  EXPECT_EQ(parse_error("name: a\n---\nname: b\n"),
            "configs/x.yaml:2: expected one YAML document, found 2");
  EXPECT_EQ(parse_error("name: a\n---\nname: b\n---\nname: c\n"),
            "configs/x.yaml:2: expected one YAML document, found 3");
  // A flow token outside a collection makes yaml-cpp's LoadAll loop forever
  // (allocating until the machine runs out): here it is one line.
  EXPECT_EQ(parse_error(","), "configs/x.yaml:1: YAML syntax error: unexpected ','");
  EXPECT_EQ(parse_error("[1],"), "configs/x.yaml:1: YAML syntax error: unexpected ','");
  EXPECT_EQ(parse_error("name: a\n...\n,\n"),
            "configs/x.yaml:3: YAML syntax error: unexpected ','");
  EXPECT_EQ(parse_error("name: a\n...\n]\n"),
            "configs/x.yaml:3: YAML syntax error: illegal flow end");
  EXPECT_EQ(parse_error(replace(kBase, "    - type: maxpool2d\n", "    - pool: 2\n")),
            "configs/x.yaml:13: 'model.layers[1]' has no 'type' (one of conv2d, maxpool2d, dense, "
            "relu, flatten, dropout, batchnorm)");
}

TEST(Config, MissingFile) {
  const std::string e = error_of([] { load_config("configs/no-such-file.yaml"); });
  EXPECT_EQ(e, "cannot open config 'configs/no-such-file.yaml': No such file or directory");
}

TEST(Config, LoadConfigNamesThePath) {
  const std::string path = testing::TempDir() + "dpcnn_config_test.yaml";
  std::ofstream(path) << replace(kBase, "batch_size: 8", "batch_size: sixty");
  const std::string e = error_of([&] { load_config(path); });
  EXPECT_EQ(e, path + ":4: 'train.batch_size' must be a positive integer, got 'sixty'");
  std::remove(path.c_str());
}

}  // namespace
}  // namespace dpcnn
