// The settings in which two resolved configs differ (a checkpoint's and the
// one a resumed run was started with), as dotted keys with both values, so a
// resume can list every change and say which value it uses. Any thread.
#pragma once

#include <string>
#include <vector>

namespace dpcnn {

struct ConfigChange {
  std::string key;          // e.g. "optimizer.learning_rate", "model.layers[2].units"
  std::string before, now;  // YAML scalars; "(default)" when the key is absent
};

// Both texts are resolved configs (Config::yaml). Keys in document order.
std::vector<ConfigChange> diff_configs(const std::string& before_yaml, const std::string& now_yaml);

}  // namespace dpcnn
