#include "config/config_diff.h"

#include <yaml-cpp/yaml.h>

#include <map>

#include "core/error.h"

namespace dpcnn {
namespace {

void flatten(const YAML::Node& n, const std::string& key, std::vector<std::string>* order,
             std::map<std::string, std::string>* out) {
  if (n.IsMap()) {
    for (const auto& kv : n)
      flatten(kv.second,
              key.empty() ? kv.first.as<std::string>() : key + "." + kv.first.as<std::string>(),
              order, out);
  } else if (n.IsSequence()) {
    for (size_t i = 0; i < n.size(); ++i)
      flatten(n[i], key + "[" + std::to_string(i) + "]", order, out);
    if (n.size() == 0) (*out)[key] = "[]", order->push_back(key);
  } else {
    (*out)[key] = n.IsNull() ? "null" : n.Scalar();
    order->push_back(key);
  }
}

std::map<std::string, std::string> leaves(const std::string& text, const char* what,
                                          std::vector<std::string>* order) {
  std::map<std::string, std::string> out;
  try {
    flatten(YAML::Load(text), "", order, &out);
  } catch (const YAML::Exception& e) {
    throw InputError(std::string(what) + " config does not parse: " + e.msg);
  }
  return out;
}

}  // namespace

std::vector<ConfigChange> diff_configs(const std::string& before_yaml,
                                       const std::string& now_yaml) {
  std::vector<std::string> order_before, order_now;
  const auto before = leaves(before_yaml, "the checkpoint's", &order_before);
  const auto now = leaves(now_yaml, "the current", &order_now);
  std::vector<ConfigChange> out;
  for (const auto& k : order_now) {
    const auto it = before.find(k);
    const std::string b = it == before.end() ? "(default)" : it->second;
    if (b != now.at(k)) out.push_back({k, b, now.at(k)});
  }
  for (const auto& k : order_before)
    if (!now.count(k)) out.push_back({k, before.at(k), "(default)"});
  return out;
}

}  // namespace dpcnn
