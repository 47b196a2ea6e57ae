#include "train/memory_estimate.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace dpcnn {
namespace {

int64_t out_dim(int64_t in, int k, int s, const std::string& padding) {
  if (padding == "same") return (in + s - 1) / s;
  return in >= k ? (in - k) / s + 1 : 0;
}

std::string gib(double bytes) {
  char buf[32];
  if (bytes >= 1024.0 * 1024 * 1024)
    std::snprintf(buf, sizeof buf, "%.1f GiB", bytes / (1024.0 * 1024 * 1024));
  else
    std::snprintf(buf, sizeof buf, "%.0f MiB", bytes / (1024.0 * 1024));
  return buf;
}

// A number from a cgroup v2 file ("max" or missing: none).
double cgroup_value(const std::string& file) {
  std::ifstream f("/sys/fs/cgroup/" + file);
  std::string s;
  if (!(f >> s) || s == "max") return -1;
  try {
    return std::stod(s);
  } catch (...) {
    return -1;
  }
}

}  // namespace

MemoryEstimate estimate_memory(const Config& cfg, const DataSplit& data, int ranks) {
  MemoryEstimate e;
  const ModelConfig& m = cfg.model;
  int64_t c = m.input.size() == 3 ? m.input[0] : 1, h = m.input.size() == 3 ? m.input[1] : 1,
          w = m.input.size() == 3 ? m.input[2] : 1;
  double params = 0, largest = -1, widest = 0;
  double per_sample = static_cast<double>(c * h * w);  // the input
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const LayerSpec& l = m.layers[i];
    double p = 0;
    const std::string key = "model.layers[" + std::to_string(i) + "]";
    if (l.type == "conv2d") {
      p = static_cast<double>(l.filters) * c * l.kernel[0] * l.kernel[1] +
          (l.use_bias ? l.filters : 0);
      h = out_dim(h, l.kernel[0], l.strides[0], l.padding);
      w = out_dim(w, l.kernel[1], l.strides[1], l.padding);
      c = l.filters;
      if (p > largest) largest = p, e.largest_layer_key = key + ".filters";
    } else if (l.type == "maxpool2d") {
      h = out_dim(h, l.pool[0], l.strides[0], l.padding);
      w = out_dim(w, l.pool[1], l.strides[1], l.padding);
    } else if (l.type == "dense") {
      p = static_cast<double>(l.units) * c * h * w + (l.use_bias ? l.units : 0);
      c = l.units;
      h = w = 1;
      if (p > largest) largest = p, e.largest_layer_key = key + ".units";
    } else if (l.type == "flatten") {
      c = c * h * w;
      h = w = 1;
    } else if (l.type == "batchnorm") {
      p = 2.0 * c;
    }
    params += p;
    // dst and diff_src of each layer (pooling adds its workspace, about dst).
    const double act = (l.type == "maxpool2d" ? 3.0 : 2.0) * static_cast<double>(c * h * w);
    per_sample += act;
    if ((l.type == "conv2d" || l.type == "dense") && act > widest) {
      widest = act;
      e.widest_layer_key = key + (l.type == "conv2d" ? ".filters" : ".units");
    }
  }
  e.widest_share = per_sample > 0 ? widest / per_sample : 0;
  const std::string& opt = cfg.optimizer.type;
  const double slots = opt == "adam"      ? 2
                       : opt == "rmsprop" ? 1 + (cfg.optimizer.momentum > 0)
                                          : (cfg.optimizer.momentum > 0);
  // weights, gradients, optimizer slots, and a serialised checkpoint copy.
  e.params = 4.0 * params * (3 + slots);
  const int64_t global = std::min<int64_t>(cfg.train.batch_size, std::max(1, data.train.count));
  const int64_t eval = std::min<int64_t>(
      cfg.train.eval_batch_size > 0 ? cfg.train.eval_batch_size : cfg.train.batch_size,
      std::max(1, data.test.count));
  const double slice = static_cast<double>((std::max(global, eval) + ranks - 1) / ranks);
  e.activations = 4.0 * per_sample * slice;
  const double input = static_cast<double>(data.train.image_size());
  e.data = static_cast<double>(data.train.images.size() + data.val.images.size() +
                               data.test.images.size() + data.train.labels.size() +
                               data.test.labels.size()) +
           4.0 * input * slice * 2;  // the step's batch buffer and the eval buffer
  return e;
}

double available_memory() {
  double avail = -1;
  std::ifstream f("/proc/meminfo");
  std::string key;
  double kb;
  std::string unit;
  while (f >> key >> kb >> unit)
    if (key == "MemAvailable:") {
      avail = kb * 1024;
      break;
    }
  const double max = cgroup_value("memory.max"), cur = cgroup_value("memory.current");
  if (max > 0) {
    const double room = std::max(0.0, max - std::max(0.0, cur));
    avail = avail < 0 ? room : std::min(avail, room);
  }
  return std::max(0.0, avail);
}

void check_memory(const Config& cfg, const DataSplit& data, int ranks, int local_ranks) {
  const MemoryEstimate e = estimate_memory(cfg, data, ranks);
  const double avail = available_memory();
  if (avail <= 0) return;  // unknown: nothing to compare with
  // oneDNN's blocked layouts, scratchpads and the process itself: 15% + 64 MiB.
  const double need = e.total() * 1.15 + 64.0 * 1024 * 1024;
  const double share = avail / std::max(1, local_ranks);
  if (need <= share) return;
  const bool model_heavy = e.params > e.activations;
  std::ostringstream msg;
  msg << "this run needs about " << gib(need) << " per rank (parameters and optimizer "
      << gib(e.params) << ", activations " << gib(e.activations) << ", data " << gib(e.data)
      << ") but this host has " << gib(avail) << " available for " << local_ranks << " rank(s): ";
  if (model_heavy && !e.largest_layer_key.empty())
    msg << "make '" << e.largest_layer_key << "' smaller";
  else
    msg << "lower 'train.batch_size' (now " << cfg.train.batch_size
        << ") or 'train.eval_batch_size', or use more ranks";
  if (!model_heavy && e.widest_share > 0.5)
    msg << ", or make '" << e.widest_layer_key << "' smaller";
  throw InputError(msg.str());
}

}  // namespace dpcnn
