#include "checkpoint/checkpoint.h"
#include "fuzz_seeds.h"

std::vector<std::string> fuzz_seeds() {
  dpcnn::CheckpointData c;
  c.model_spec =
      "input 1x28x28 classes 10\n0 flatten\n1 dense units=10 activation=none use_bias=true\n";
  c.config_yaml = "name: fuzz\n";
  c.global_step = 3;
  c.epoch = 1;
  c.rng_state = {1, 2};
  c.params = {{"layers.1.dense.weight", {2, 3}, {1, 2, 3, 4, 5, 6}},
              {"layers.1.dense.bias", {2}, {0, 1}}};
  c.state = {{"s", {1}, {0.5f}}};
  c.optimizer_type = "adam";
  c.optimizer_iterations = 3;
  c.optimizer_slots = {{"opt.m", {8}, std::vector<float>(8, 0.1f)}};
  c.metrics.resize(2);
  const std::string file = dpcnn::serialize_checkpoint(c);
  // Odd first byte: the payload alone (the fuzzer wraps it).
  const std::string payload = file.substr(16, file.size() - 48);
  return {std::string(1, '\0') + file, std::string(1, '\1') + payload,
          std::string(1, '\0') + "DPCNNCK1", std::string(1, '\1')};
}
