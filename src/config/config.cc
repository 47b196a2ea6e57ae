// YAML -> Config. The YAML tree is walked once against a fixed schema; every
// check throws one dpcnn::Error whose prefix says where the bad value came
// from: "<file>:<line>" for the file, "--set <key>" for an override.
#include "config/config.h"

#include <fcntl.h>
#include <unistd.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <string_view>
#include <utility>

#include "core/error.h"

namespace dpcnn {
namespace {

constexpr int64_t kIntMax = std::numeric_limits<int>::max();

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string join(const std::vector<std::string>& words, const char* sep = ", ") {
  std::string out;
  for (const std::string& w : words) {
    if (!out.empty()) out += sep;
    out += w;
  }
  return out;
}

std::string join_path(const std::string& base, const std::string& key) {
  return base.empty() ? key : base + "." + key;
}

// Optimal string alignment distance: edits plus adjacent transpositions, so
// "filtres" is one typo away from "filters".
int edit_distance(std::string_view a, std::string_view b) {
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<int>> d(n + 1, std::vector<int>(m + 1));
  for (size_t i = 0; i <= n; ++i) d[i][0] = static_cast<int>(i);
  for (size_t j = 0; j <= m; ++j) d[0][j] = static_cast<int>(j);
  for (size_t i = 1; i <= n; ++i) {
    for (size_t j = 1; j <= m; ++j) {
      const int cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[n][m];
}

// Names people carry over from Keras or habit that are too far from ours for
// the edit distance to find.
const std::map<std::string, std::string>& aliases() {
  static const std::map<std::string, std::string> kAliases = {
      {"lr", "learning_rate"},
      {"kernel_size", "kernel"},
      {"pool_size", "pool"},
      {"stride", "strides"},
      {"batch", "batch_size"},
      {"maxpooling2d", "maxpool2d"},
      {"max_pooling2d", "maxpool2d"},
      {"maxpool", "maxpool2d"},
      {"pool", "maxpool2d"},
      {"batchnormalization", "batchnorm"},
      {"batch_normalization", "batchnorm"},
      {"linear", "dense"},
      {"fc", "dense"},
      {"conv", "conv2d"},
      {"convolution2d", "conv2d"},
  };
  return kAliases;
}

// The closest candidate within edit distance 2, or "" when none is close.
std::string suggest(const std::string& word, const std::vector<std::string>& candidates) {
  const std::string w = lower(word);
  auto alias = aliases().find(w);
  if (alias != aliases().end() &&
      std::find(candidates.begin(), candidates.end(), alias->second) != candidates.end()) {
    return alias->second;
  }
  std::string best;
  int best_d = 3;
  for (const std::string& c : candidates) {
    const int d = edit_distance(w, c);
    if (d < best_d && d < static_cast<int>(w.size())) {
      best = c;
      best_d = d;
    }
  }
  return best;
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
  const std::string s = suggest(word, candidates);
  return s.empty() ? "" : " (did you mean '" + s + "'?)";
}

// How a value looks in a message: 'text' for scalars, a word for the rest.
std::string describe(const YAML::Node& n) {
  if (!n.IsDefined()) return "nothing";
  if (n.IsNull()) return "null";
  if (n.IsSequence()) return "a list of " + std::to_string(n.size());
  if (n.IsMap()) return "a map";
  std::string s = n.Scalar();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return "'" + s + "'";
}

std::optional<int64_t> to_int(const std::string& text) {
  std::string_view v = text;
  if (!v.empty() && v.front() == '+') v.remove_prefix(1);
  int64_t x = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (v.empty() || ec != std::errc() || end != v.data() + v.size()) return std::nullopt;
  return x;
}

std::optional<double> to_double(const std::string& text) {
  std::string_view v = text;
  if (!v.empty() && v.front() == '+') v.remove_prefix(1);
  double x = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (v.empty() || ec != std::errc() || end != v.data() + v.size() || !std::isfinite(x)) {
    return std::nullopt;
  }
  return x;
}

std::string int_desc(int64_t min, int64_t max) {
  if (max >= kIntMax) {
    if (min == 1) return "a positive integer";
    if (min == 0) return "a non-negative integer";
    return "an integer >= " + std::to_string(min);
  }
  return "an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
}

enum class Range { kPositive, kNonNegative, kUnit };  // kUnit: [0, 1)

const char* range_desc(Range r) {
  switch (r) {
    case Range::kPositive:
      return "a positive number";
    case Range::kNonNegative:
      return "a non-negative number";
    case Range::kUnit:
      return "a number in [0, 1)";
  }
  return "a number";
}

bool in_range(double x, Range r) {
  switch (r) {
    case Range::kPositive:
      return x > 0;
    case Range::kNonNegative:
      return x >= 0;
    case Range::kUnit:
      return x >= 0 && x < 1;
  }
  return false;
}

const std::vector<std::string> kLayerTypes = {"conv2d",  "maxpool2d", "dense",    "relu",
                                              "flatten", "dropout",   "batchnorm"};

const std::vector<std::string>& layer_fields(const std::string& type) {
  static const std::map<std::string, std::vector<std::string>> kFields = {
      {"conv2d", {"filters", "kernel", "strides", "padding", "activation", "use_bias"}},
      {"maxpool2d", {"pool", "strides", "padding"}},
      {"dense", {"units", "activation", "use_bias"}},
      {"relu", {}},
      {"flatten", {}},
      {"dropout", {"rate"}},
      {"batchnorm", {"momentum", "epsilon", "sync"}},
  };
  return kFields.at(type);
}

struct Entry {
  std::string key;
  YAML::Mark key_mark;
  YAML::Node value;
};

struct Shape {
  int64_t c, h, w;
  std::string str() const {
    return std::to_string(c) + "x" + std::to_string(h) + "x" + std::to_string(w);
  }
};

class Parser {
 public:
  explicit Parser(std::string source) : source_(std::move(source)) {}

  // "--set <key>" when an override wrote `path` or a map or list above it,
  // else "<file>:<line>".
  std::string where(const std::string& path, const YAML::Mark& mark) const {
    const std::pair<const std::string, std::string>* best = nullptr;
    for (const auto& origin : origins_) {
      if (covers(origin.first, path) && (!best || origin.first.size() > best->first.size())) {
        best = &origin;
      }
    }
    if (best) return "--set " + best->second;
    return source_ + ":" + std::to_string(mark.is_null() || mark.line < 0 ? 1 : mark.line + 1);
  }

  [[noreturn]] void fail(const std::string& path, const YAML::Mark& mark,
                         const std::string& message) const {
    throw InputError(where(path, mark) + ": " + message);
  }

  void apply_override(YAML::Node& root, const std::string& text);
  Config parse(const YAML::Node& root) const;

 private:
  struct Seg {
    std::string name;  // map key (or a bare number, which indexes a list)
    bool bracket = false;
    size_t index = 0;
  };

  static bool covers(const std::string& prefix, const std::string& path) {
    if (path.size() < prefix.size() || path.compare(0, prefix.size(), prefix) != 0) return false;
    return path.size() == prefix.size() || path[prefix.size()] == '.' || path[prefix.size()] == '[';
  }

  std::string apply(YAML::Node node, const std::vector<Seg>& segs, size_t i,
                    const YAML::Node& value, const std::string& canon, const std::string& key,
                    std::string& created) const;
  void parse_layers(const Entry& entry, const Shape& input, int classes,
                    std::vector<LayerSpec>& out) const;

  std::string source_;
  std::map<std::string, std::string> origins_;  // canonical path -> override key as typed
};

// One YAML map checked against the keys it may hold. A missing or null map
// reads as empty, so every field keeps its default.
class Section {
 public:
  using Hint = std::function<std::string(const std::string& key)>;

  Section(const Parser& p, const YAML::Node& node, std::string path, YAML::Mark mark,
          const std::vector<std::string>& allowed, const Hint& hint = {})
      : p_(p),
        path_(std::move(path)),
        mark_(node.IsDefined() && !node.Mark().is_null() ? node.Mark() : mark) {
    if (!node.IsDefined() || node.IsNull()) return;
    if (!node.IsMap()) {
      if (path_.empty())
        p_.fail(path_, mark_, "a config is a map of settings, got " + describe(node));
      p_.fail(path_, mark_, "'" + path_ + "' must be a map, got " + describe(node));
    }
    for (const auto& kv : node) {
      const YAML::Node k = kv.first;
      if (!k.IsScalar()) {
        p_.fail(path_, k.Mark(),
                "keys must be plain names, got " + describe(k) + " in '" +
                    (path_.empty() ? "the config" : path_) + "'");
      }
      const std::string key = k.Scalar();
      if (const Entry* first = find(key)) {
        p_.fail(child(key), k.Mark(),
                "duplicate key '" + child(key) + "' (first at " +
                    p_.where(child(key), first->key_mark) + ")");
      }
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        std::string why = did_you_mean(key, allowed);
        if (why.empty() && hint) why = hint(key);
        if (why.empty()) why = " (known keys: " + join(allowed) + ")";
        p_.fail(child(key), k.Mark(), "unknown key '" + child(key) + "'" + why);
      }
      entries_.push_back({key, k.Mark(), kv.second});
    }
  }

  const std::string& path() const { return path_; }
  const YAML::Mark& mark() const { return mark_; }
  std::string child(const std::string& key) const { return join_path(path_, key); }

  const Entry* find(const std::string& key) const {
    for (const Entry& e : entries_) {
      if (e.key == key) return &e;
    }
    return nullptr;
  }

  [[noreturn]] void fail_value(const Entry& e, const std::string& message) const {
    p_.fail(child(e.key), e.key_mark, message);
  }

  [[noreturn]] void fail_type(const Entry& e, const std::string& what) const {
    fail_value(e, "'" + child(e.key) + "' must be " + what + ", got " + describe(e.value));
  }

  const Entry& require(const std::string& key, const std::string& what) const {
    const Entry* e = find(key);
    if (!e) p_.fail(path_, mark_, "'" + child(key) + "' is required (" + what + ")");
    return *e;
  }

  // The readers below leave `out` alone when the key is absent and return
  // the entry they read (nullptr when absent).
  const Entry* read_int(const std::string& key, int& out, int64_t min,
                        int64_t max = kIntMax) const {
    const Entry* e = find(key);
    if (!e) return nullptr;
    std::optional<int64_t> v = e->value.IsScalar() ? to_int(e->value.Scalar()) : std::nullopt;
    if (!v || *v < min || *v > max) fail_type(*e, int_desc(min, max));
    out = static_cast<int>(*v);
    return e;
  }

  const Entry* read_u64(const std::string& key, uint64_t& out) const {
    const Entry* e = find(key);
    if (!e) return nullptr;
    std::string_view v;
    if (e->value.IsScalar()) v = e->value.Scalar();
    if (!v.empty() && v.front() == '+') v.remove_prefix(1);
    uint64_t x = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
    if (v.empty() || ec != std::errc() || end != v.data() + v.size()) {
      fail_type(*e, "a non-negative integer below 2^64");
    }
    out = x;
    return e;
  }

  const Entry* read_float(const std::string& key, float& out, Range range) const {
    const Entry* e = find(key);
    if (!e) return nullptr;
    std::optional<double> v = e->value.IsScalar() ? to_double(e->value.Scalar()) : std::nullopt;
    if (!v || !in_range(*v, range) || std::fabs(*v) > std::numeric_limits<float>::max() ||
        (range == Range::kPositive && static_cast<float>(*v) == 0.0f)) {
      fail_type(*e, range_desc(range));
    }
    out = static_cast<float>(*v);
    return e;
  }

  const Entry* read_bool(const std::string& key, bool& out) const {
    const Entry* e = find(key);
    if (!e) return nullptr;
    bool b = false;
    if (!e->value.IsScalar() || !YAML::convert<bool>::decode(e->value, b)) {
      fail_type(*e, "true or false");
    }
    out = b;
    return e;
  }

  const Entry* read_string(const std::string& key, std::string& out) const {
    const Entry* e = find(key);
    if (!e) return nullptr;
    if (!e->value.IsScalar() || e->value.Scalar().empty()) fail_type(*e, "a non-empty string");
    out = e->value.Scalar();
    return e;
  }

  // Case-insensitive ("RMSprop" is Keras' spelling); stored lower-case.
  const Entry* read_enum(const std::string& key, std::string& out,
                         const std::vector<std::string>& allowed,
                         const std::string& note = "") const {
    const Entry* e = find(key);
    if (!e) return nullptr;
    const std::string v = e->value.IsScalar() ? lower(e->value.Scalar()) : "";
    if (std::find(allowed.begin(), allowed.end(), v) == allowed.end()) {
      std::string why = e->value.IsScalar() ? did_you_mean(v, allowed) : "";
      fail_value(*e, "'" + child(key) + "' must be one of " + join(allowed) + ", got " +
                         describe(e->value) + why + note);
    }
    out = v;
    return e;
  }

  // An int for both dimensions or a list [h, w].
  const Entry* read_pair(const std::string& key, int (&out)[2]) const {
    const Entry* e = find(key);
    if (!e) return nullptr;
    const char* what = "a positive integer or a list [h, w] of positive integers";
    auto positive = [](const YAML::Node& n) -> std::optional<int64_t> {
      std::optional<int64_t> v = n.IsScalar() ? to_int(n.Scalar()) : std::nullopt;
      if (!v || *v < 1 || *v > kIntMax) return std::nullopt;
      return v;
    };
    if (e->value.IsScalar()) {
      std::optional<int64_t> v = positive(e->value);
      if (!v) fail_type(*e, what);
      out[0] = out[1] = static_cast<int>(*v);
    } else if (e->value.IsSequence() && e->value.size() == 2) {
      std::optional<int64_t> h = positive(e->value[0]), w = positive(e->value[1]);
      if (!h || !w) {
        fail_value(*e, "'" + child(key) + "' must be " + what + ", got [" + describe(e->value[0]) +
                           ", " + describe(e->value[1]) + "]");
      }
      out[0] = static_cast<int>(*h);
      out[1] = static_cast<int>(*w);
    } else {
      fail_type(*e, what);
    }
    return e;
  }

 private:
  const Parser& p_;
  std::string path_;
  YAML::Mark mark_;
  std::vector<Entry> entries_;
};

// A sub-map of `parent`, empty when absent.
Section sub(const Parser& p, const Section& parent, const std::string& key,
            const std::vector<std::string>& allowed) {
  const Entry* e = parent.find(key);
  return e ? Section(p, e->value, parent.child(key), e->key_mark, allowed)
           : Section(p, YAML::Node(), parent.child(key), parent.mark(), allowed);
}

// ---- training callbacks and augmentation ----

void read_augment(const Section& s, AugmentConfig& a) {
  s.read_float("shift", a.shift, Range::kNonNegative);
  if (const Entry* e = s.read_float("rotation", a.rotation, Range::kNonNegative))
    if (a.rotation > 180) s.fail_type(*e, "a number of degrees in [0, 180]");
  s.read_float("scale", a.scale, Range::kUnit);
  s.read_bool("hflip", a.hflip);
}

// A per-epoch metric exists only when something computes it: val_* needs
// train.validation_split, test_* needs train.test_each_epoch.
void check_metric_available(const Section& s, const Entry& e, const std::string& metric,
                            const Config& cfg) {
  const std::string key = s.child(e.key);
  if (metric.rfind("val_", 0) == 0 && cfg.train.validation_split <= 0)
    s.fail_value(e, "'" + key + "' needs " + metric +
                        ", but there is no validation set: set train.validation_split (e.g. 0.1), "
                        "or monitor test_* with train.test_each_epoch: true");
  if (metric.rfind("test_", 0) == 0 && !cfg.train.test_each_epoch)
    s.fail_value(e, "'" + key + "' needs " + metric +
                        ", but the test set is scored only at the end: set "
                        "train.test_each_epoch: true (or monitor val_* with "
                        "train.validation_split)");
  if ((metric != "none" && metric != "auto") && !cfg.train.eval)
    s.fail_value(e, "'" + key + "' needs per-epoch evaluation, but train.eval is false");
}

void read_early_stopping(const Parser& p, const Section& train, Config& cfg) {
  const Entry* present = train.find("early_stopping");
  EarlyStoppingConfig& es = cfg.train.early_stopping;
  const Section s = sub(p, train, "early_stopping", {"monitor", "patience", "min_delta", "mode"});
  if (!present || present->value.IsNull()) return;
  es.enabled = true;
  const Entry* m = s.read_enum("monitor", es.monitor,
                               {"val_loss", "val_accuracy", "test_loss", "test_accuracy"});
  s.read_int("patience", es.patience, 0);
  s.read_float("min_delta", es.min_delta, Range::kNonNegative);
  s.read_enum("mode", es.mode, {"auto", "min", "max"});
  if (m)
    check_metric_available(s, *m, es.monitor, cfg);
  else
    check_metric_available(train, *present, es.monitor, cfg);  // the default monitor
}

// ---- overrides ----

std::string Parser::apply(YAML::Node node, const std::vector<Seg>& segs, size_t i,
                          const YAML::Node& value, const std::string& canon, const std::string& key,
                          std::string& created) const {
  const Seg& seg = segs[i];
  const bool last = i + 1 == segs.size();
  const std::string where_now = canon.empty() ? "the config" : "'" + canon + "'";
  const bool digits =
      !seg.name.empty() && seg.name.size() <= 9 &&
      std::all_of(seg.name.begin(), seg.name.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (seg.bracket || (digits && node.IsSequence())) {
    if (!node.IsSequence()) {
      throw InputError("--set " + key + ": " + where_now + " is not a list, it holds " +
                       describe(node));
    }
    const size_t idx = seg.bracket ? seg.index : std::stoul(seg.name);
    const std::string here = canon + "[" + std::to_string(idx) + "]";
    const size_t size = node.size();
    if (idx > size || (idx == size && !last)) {
      throw InputError("--set " + key + ": index " + std::to_string(idx) + " is out of range; " +
                       where_now + " has " + std::to_string(size) + " entries");
    }
    if (idx == size) {  // appending one entry
      node.push_back(value);
      if (created.empty()) created = here;
      return here;
    }
    if (last) {
      node[idx] = value;
      return here;
    }
    return apply(node[idx], segs, i + 1, value, here, key, created);
  }
  if (!node.IsMap() && !node.IsNull()) {
    throw InputError("--set " + key + ": " + where_now + " is not a map, it holds " +
                     describe(node));
  }
  const std::string here = join_path(canon, seg.name);
  const YAML::Node& cnode = node;  // const lookups do not insert keys
  const bool exists = node.IsMap() && cnode[seg.name].IsDefined();
  if (last) {
    node[seg.name] = value;
    if (!exists && created.empty()) created = here;
    return here;
  }
  if (!exists) {
    node[seg.name] = YAML::Node(YAML::NodeType::Map);
    if (created.empty()) created = here;
  }
  return apply(node[seg.name], segs, i + 1, value, here, key, created);
}

void Parser::apply_override(YAML::Node& root, const std::string& text) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos) {
    throw InputError("--set " + text + ": expected key=value, e.g. --set train.epochs=3");
  }
  auto trim = [](std::string s) {
    const char* ws = " \t\r\n";
    s.erase(0, s.find_first_not_of(ws));
    s.erase(s.find_last_not_of(ws) + 1);
    return s;
  };
  const std::string key = trim(text.substr(0, eq));
  const std::string value_text = text.substr(eq + 1);
  if (key.empty()) throw InputError("--set " + text + ": expected key=value, the key is empty");

  // "model.layers[2].units" and "model.layers.2.units" both work.
  const std::string malformed =
      "--set " + key + ": malformed key; use dotted names such as model.layers[2].units";
  std::vector<Seg> segs;
  size_t pos = 0;
  while (true) {
    size_t end = pos;
    while (end < key.size() && (std::isalnum(static_cast<unsigned char>(key[end])) ||
                                key[end] == '_' || key[end] == '-')) {
      ++end;
    }
    if (end == pos) throw InputError(malformed);
    segs.push_back({key.substr(pos, end - pos)});
    pos = end;
    while (pos < key.size() && key[pos] == '[') {
      const size_t close = key.find(']', pos);
      if (close == std::string::npos || close == pos + 1 || close - pos > 10)
        throw InputError(malformed);
      Seg s;
      s.bracket = true;
      for (size_t j = pos + 1; j < close; ++j) {
        if (key[j] < '0' || key[j] > '9') throw InputError(malformed);
        s.index = s.index * 10 + static_cast<size_t>(key[j] - '0');
      }
      segs.push_back(s);
      pos = close + 1;
    }
    if (pos == key.size()) break;
    if (key[pos] != '.') throw InputError(malformed);
    ++pos;
  }

  YAML::Node value;
  try {
    value = YAML::Load(value_text);
  } catch (const YAML::Exception& e) {
    throw InputError("--set " + key + ": YAML syntax error in value '" + value_text +
                     "': " + e.msg);
  }
  if (!root.IsDefined() || root.IsNull()) root.reset(YAML::Node(YAML::NodeType::Map));

  std::string created;
  const std::string path = apply(root, segs, 0, value, "", key, created);
  const std::string recorded = created.empty() ? path : created;
  for (auto it = origins_.begin(); it != origins_.end();) {
    it = covers(recorded, it->first) ? origins_.erase(it) : std::next(it);
  }
  origins_[recorded] = key;
}

// ---- schema ----

void Parser::parse_layers(const Entry& entry, const Shape& input, int classes,
                          std::vector<LayerSpec>& out) const {
  const YAML::Node& list = entry.value;
  if (!list.IsSequence() || list.size() == 0) {
    fail("model.layers", entry.key_mark,
         "'model.layers' must be a non-empty list of layers, got " + describe(list));
  }
  Shape shape = input;
  for (size_t i = 0; i < list.size(); ++i) {
    const YAML::Node& node = list[i];
    const std::string path = "model.layers[" + std::to_string(i) + "]";
    const YAML::Mark mark = node.Mark().is_null() ? entry.key_mark : node.Mark();
    if (!node.IsMap()) {
      fail(path, mark, "'" + path + "' must be a map with a 'type', got " + describe(node));
    }
    // The type decides which other keys are valid, so it is read first.
    const YAML::Node type_node = node["type"];
    if (!type_node.IsDefined()) {
      fail(path, mark, "'" + path + "' has no 'type' (one of " + join(kLayerTypes) + ")");
    }
    const std::string type = type_node.IsScalar() ? lower(type_node.Scalar()) : "";
    if (std::find(kLayerTypes.begin(), kLayerTypes.end(), type) == kLayerTypes.end()) {
      fail(path + ".type", type_node.Mark().is_null() ? mark : type_node.Mark(),
           "unknown layer type " + describe(type_node) + " in '" + path +
               ".type'; expected one of " + join(kLayerTypes) +
               (type.empty() ? "" : did_you_mean(type, kLayerTypes)));
    }
    std::vector<std::string> allowed = {"type"};
    const std::vector<std::string>& fields = layer_fields(type);
    allowed.insert(allowed.end(), fields.begin(), fields.end());
    auto hint = [&](const std::string&) {
      return fields.empty() ? " (" + type + " layers take no fields besides 'type')"
                            : " (" + type + " layers take " + join(fields) + ")";
    };
    Section s(*this, node, path, mark, allowed, hint);

    LayerSpec L;
    L.type = type;
    L.line = where(path, mark).rfind("--set ", 0) == 0 ? 0 : mark.line + 1;
    const std::string name = path + " (" + type + ")";
    auto activation = [&] {
      const Entry* a = s.find("activation");
      const bool softmax = a && a->value.IsScalar() && lower(a->value.Scalar()) == "softmax";
      s.read_enum(
          "activation", L.activation, {"none", "relu", "linear"},
          softmax ? "; the loss applies softmax, so leave the last layer linear ('none')" : "");
      if (L.activation == "linear") L.activation = "none";
    };
    // A window must fit in its input when nothing pads it.
    auto check_window = [&](const char* what, const int(&win)[2], const char* key) {
      if (L.padding == "valid" && (win[0] > shape.h || win[1] > shape.w)) {
        fail(path + "." + key, mark,
             name + ": " + what + " " + std::to_string(win[0]) + "x" + std::to_string(win[1]) +
                 " is larger than its input " + shape.str());
      }
    };
    auto window_out = [&](int64_t x, int win, int stride) {
      return L.padding == "valid" ? (x - win) / stride + 1 : (x + stride - 1) / stride;
    };

    if (type == "conv2d") {
      s.read_int("filters", L.filters, 1);
      s.require("filters", "the number of output channels");
      s.read_pair("kernel", L.kernel);
      s.require("kernel", "an int or [h, w]");
      s.read_pair("strides", L.strides);
      s.read_enum("padding", L.padding, {"valid", "same"});
      activation();
      s.read_bool("use_bias", L.use_bias);
      check_window("kernel", L.kernel, "kernel");
      shape = {L.filters, window_out(shape.h, L.kernel[0], L.strides[0]),
               window_out(shape.w, L.kernel[1], L.strides[1])};
    } else if (type == "maxpool2d") {
      s.read_pair("pool", L.pool);
      if (!s.read_pair("strides", L.strides)) {
        L.strides[0] = L.pool[0];
        L.strides[1] = L.pool[1];
      }
      s.read_enum("padding", L.padding, {"valid", "same"});
      check_window("pool", L.pool, "pool");
      shape = {shape.c, window_out(shape.h, L.pool[0], L.strides[0]),
               window_out(shape.w, L.pool[1], L.strides[1])};
    } else if (type == "dense") {
      s.read_int("units", L.units, 1);
      s.require("units", "the number of outputs");
      activation();
      s.read_bool("use_bias", L.use_bias);
      if (shape.h != 1 || shape.w != 1) {
        fail(path, mark, name + " needs a flatten before it; its input is " + shape.str());
      }
      shape = {L.units, 1, 1};
    } else if (type == "flatten") {
      shape = {shape.c * shape.h * shape.w, 1, 1};
    } else if (type == "dropout") {
      s.read_float("rate", L.rate, Range::kUnit);
      s.require("rate", "the fraction of inputs to drop, in [0, 1)");
    } else if (type == "batchnorm") {
      s.read_float("momentum", L.momentum, Range::kUnit);
      s.read_float("epsilon", L.epsilon, Range::kPositive);
      s.read_bool("sync", L.sync);
    }
    if (shape.c * shape.h * shape.w > kIntMax) {
      fail(path, mark, name + ": its output " + shape.str() + " is too large");
    }

    if (i + 1 == list.size()) {
      if (type != "dense") {
        fail(path, mark,
             name + ": the last layer must be dense with model.classes (" +
                 std::to_string(classes) + ") units");
      }
      if (L.units != classes) {
        fail(path + ".units", mark,
             name + ": the last layer has " + std::to_string(L.units) +
                 " units but model.classes is " + std::to_string(classes));
      }
      if (L.activation != "none") {
        fail(path + ".activation", mark,
             name + ": the last layer must have no activation (the loss applies softmax), got '" +
                 L.activation + "'");
      }
    }
    out.push_back(L);
  }
}

Config Parser::parse(const YAML::Node& root) const {
  Config cfg;
  Section top(*this, root, "", root.Mark(),
              {"name", "seed", "runs_dir", "data", "train", "optimizer", "model", "distributed",
               "checkpoint", "status", "launcher"});

  if (const Entry* e = top.read_string("name", cfg.name)) {
    const bool ok =
        cfg.name != "." && cfg.name != ".." &&
        std::all_of(cfg.name.begin(), cfg.name.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
        });
    if (!ok) {
      top.fail_value(*e,
                     "'name' names the run directory <runs_dir>/<name>; use letters, digits, "
                     "'.', '_' and '-', got " +
                         describe(e->value));
    }
  }
  top.read_u64("seed", cfg.seed);
  top.read_string("runs_dir", cfg.runs_dir);

  const Section data =
      sub(*this, top, "data",
          {"format", "dir", "broadcast", "preprocess", "cache_dir", "class_names", "augment"});
  data.read_enum("format", cfg.data.format, {"idx", "folder"});
  data.read_string("dir", cfg.data.dir);
  data.read_bool("broadcast", cfg.data.broadcast);
  const Entry* preprocess =
      data.read_enum("preprocess", cfg.data.preprocess, {"mnist", "resize", "none"});
  cfg.data.preprocess_given = preprocess != nullptr;
  data.read_string("cache_dir", cfg.data.cache_dir);
  read_augment(sub(*this, data, "augment", {"shift", "rotation", "scale", "hflip"}),
               cfg.data.augment);

  const Section train =
      sub(*this, top, "train",
          {"epochs", "batch_size", "eval_batch_size", "max_steps", "eval", "progress_interval_s",
           "validation_split", "test_each_epoch", "early_stopping", "precision"});
  train.read_int("epochs", cfg.train.epochs, 1);
  train.read_int("batch_size", cfg.train.batch_size, 1);
  train.read_int("eval_batch_size", cfg.train.eval_batch_size, 1);
  train.read_int("max_steps", cfg.train.max_steps, 0);
  train.read_bool("eval", cfg.train.eval);
  train.read_int("progress_interval_s", cfg.train.progress_interval_s, 0, 86400);
  train.read_float("validation_split", cfg.train.validation_split, Range::kUnit);
  train.read_bool("test_each_epoch", cfg.train.test_each_epoch);
  read_early_stopping(*this, train, cfg);
  train.read_enum("precision", cfg.train.precision, {"fp32", "bf16", "auto"});

  OptimizerConfig& o = cfg.optimizer;
  const Section opt = sub(*this, top, "optimizer",
                          {"type", "learning_rate", "momentum", "nesterov", "rho", "beta1", "beta2",
                           "epsilon", "weight_decay", "schedule"});
  opt.read_enum("type", o.type, {"sgd", "rmsprop", "adam"});
  const Entry* lr = opt.read_float("learning_rate", o.learning_rate, Range::kPositive);
  opt.read_float("momentum", o.momentum, Range::kUnit);
  opt.read_bool("nesterov", o.nesterov);
  opt.read_float("rho", o.rho, Range::kUnit);
  opt.read_float("beta1", o.beta1, Range::kUnit);
  opt.read_float("beta2", o.beta2, Range::kUnit);
  opt.read_float("epsilon", o.epsilon, Range::kPositive);
  opt.read_float("weight_decay", o.weight_decay, Range::kNonNegative);
  const Section sched =
      sub(*this, opt, "schedule", {"type", "step_epochs", "gamma", "min_lr", "warmup_steps"});
  sched.read_enum("type", o.schedule.type, {"constant", "step", "cosine"});
  sched.read_int("step_epochs", o.schedule.step_epochs, 1);
  sched.read_float("gamma", o.schedule.gamma, Range::kPositive);
  if (const Entry* e = sched.read_float("min_lr", o.schedule.min_lr, Range::kNonNegative)) {
    if (o.schedule.min_lr > o.learning_rate) {
      sched.fail_value(*e, "'optimizer.schedule.min_lr' (" + e->value.Scalar() +
                               ") must not exceed 'optimizer.learning_rate' (" +
                               (lr ? lr->value.Scalar() : std::to_string(o.learning_rate)) + ")");
    }
  }
  sched.read_int("warmup_steps", o.schedule.warmup_steps, 0);

  const Section model = sub(*this, top, "model", {"input", "classes", "layers"});
  if (const Entry* e = model.find("input")) {
    const YAML::Node& in = e->value;
    if (!in.IsSequence() || in.size() != 3) {
      model.fail_type(*e, "a list [C, H, W] of 3 positive integers");
    }
    for (size_t i = 0; i < 3; ++i) {
      std::optional<int64_t> v = in[i].IsScalar() ? to_int(in[i].Scalar()) : std::nullopt;
      if (!v || *v < 1 || *v > kIntMax) {
        const std::string p = "model.input[" + std::to_string(i) + "]";
        fail(p, in[i].Mark().is_null() ? e->key_mark : in[i].Mark(),
             "'" + p + "' must be a positive integer, got " + describe(in[i]));
      }
      cfg.model.input[i] = static_cast<int>(*v);
    }
  }
  model.read_int("classes", cfg.model.classes, 2);
  const Entry& layers =
      model.require("layers", "a list of layers ending in a dense layer with model.classes units");
  parse_layers(layers, {cfg.model.input[0], cfg.model.input[1], cfg.model.input[2]},
               cfg.model.classes, cfg.model.layers);
  // After model.classes, which fixes how many names there must be.
  if (const Entry* e = data.find("class_names")) {
    const YAML::Node& n = e->value;
    const std::string what =
        "a list of model.classes (" + std::to_string(cfg.model.classes) + ") non-empty strings";
    if (!n.IsSequence() || n.size() != static_cast<size_t>(cfg.model.classes))
      data.fail_type(*e, what);
    for (const YAML::Node& v : n) {
      if (!v.IsScalar() || v.Scalar().empty()) data.fail_type(*e, what);
      cfg.data.class_names.push_back(v.Scalar());
    }
  }

  if (preprocess && cfg.data.preprocess == "mnist" && cfg.model.input[0] != 1)
    data.fail_value(*preprocess,
                    "'data.preprocess' mnist makes 1-channel digits but model.input has " +
                        std::to_string(cfg.model.input[0]) + " channels; use resize or none");

  const Section dist =
      sub(*this, top, "distributed", {"overlap", "bucket_kb", "threads_per_rank", "ranks"});
  dist.read_bool("overlap", cfg.distributed.overlap);
  dist.read_int("bucket_kb", cfg.distributed.bucket_kb, 1, 1 << 20);
  dist.read_int("threads_per_rank", cfg.distributed.threads_per_rank, 0, 4096);
  dist.read_int("ranks", cfg.distributed.ranks, 1, 4096);

  const Section ckpt = sub(*this, top, "checkpoint", {"every_steps", "keep", "best_monitor"});
  ckpt.read_int("every_steps", cfg.checkpoint.every_steps, 0);
  ckpt.read_int("keep", cfg.checkpoint.keep, 1);
  if (const Entry* e = ckpt.read_enum(
          "best_monitor", cfg.checkpoint.best_monitor,
          {"auto", "none", "val_loss", "val_accuracy", "test_loss", "test_accuracy"}))
    check_metric_available(ckpt, *e, cfg.checkpoint.best_monitor, cfg);

  const Section status =
      sub(*this, top, "status", {"listen", "tls_cert", "tls_key", "metrics_listen"});
  status.read_string("tls_cert", cfg.status.tls_cert);
  status.read_string("tls_key", cfg.status.tls_key);
  auto check_host_port = [&](const Entry& e, const std::string& l) {
    const size_t colon = l.rfind(':');
    const std::string host = colon == std::string::npos ? "" : l.substr(0, colon);
    const std::string port = colon == std::string::npos ? "" : l.substr(colon + 1);
    const bool bracketed = !host.empty() && host.front() == '[';
    const bool host_ok = !host.empty() && (!bracketed || host.back() == ']') &&
                         (bracketed || host.find(':') == std::string::npos);
    const bool port_ok =
        !port.empty() && port.size() <= 5 &&
        std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
        std::stoi(port) <= 65535;
    if (!host_ok || !port_ok) {
      status.fail_type(e, "host:port, such as 127.0.0.1:50051 or [::1]:50051");
    }
  };
  if (const Entry* e = status.read_string("listen", cfg.status.listen))
    check_host_port(*e, cfg.status.listen);
  if (const Entry* e = status.read_string("metrics_listen", cfg.status.metrics_listen)) {
    if (cfg.status.metrics_listen == "") cfg.status.metrics_listen = "off";
    if (cfg.status.metrics_listen != "off") check_host_port(*e, cfg.status.metrics_listen);
  }

  const Section launcher = sub(
      *this, top, "launcher",
      {"max_restarts", "stall_timeout_s", "elastic", "min_ranks", "host_timeout_s", "probe_port"});
  launcher.read_int("max_restarts", cfg.launcher.max_restarts, 0);
  launcher.read_int("stall_timeout_s", cfg.launcher.stall_timeout_s, 1);
  launcher.read_bool("elastic", cfg.launcher.elastic);
  if (const Entry* e = launcher.read_int("min_ranks", cfg.launcher.min_ranks, 1, 4096);
      e && cfg.launcher.min_ranks > cfg.train.batch_size) {
    fail(launcher.child("min_ranks"), e->key_mark,
         "'launcher.min_ranks' is " + std::to_string(cfg.launcher.min_ranks) +
             ", more than train.batch_size " + std::to_string(cfg.train.batch_size) +
             ": every rank needs at least one sample of the global batch");
  }
  launcher.read_int("host_timeout_s", cfg.launcher.host_timeout_s, 1, 3600);
  launcher.read_int("probe_port", cfg.launcher.probe_port, 1, 65535);
  return cfg;
}

// Where each YAML document of `text` starts. Not YAML::LoadAll: yaml-cpp 0.7
// never returns from it on a flow token outside a collection (a lone ','), as
// its parser hands back an empty document there without consuming the token,
// forever, allocating as it goes (found by tests/fuzz/config_fuzz.cc). A
// document that starts where the one before it did is that token.
class DocumentStarts : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> marks;
  void OnDocumentStart(const YAML::Mark& mark) override { marks.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

std::vector<YAML::Mark> document_starts(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentStarts docs;
  while (parser.HandleNextDocument(docs)) {
    const std::vector<YAML::Mark>& m = docs.marks;
    if (m.size() < 2 || m.back().pos != m[m.size() - 2].pos) continue;
    const size_t at = static_cast<size_t>(std::max(0, m.back().pos));
    const unsigned char c = at < text.size() ? static_cast<unsigned char>(text[at]) : 0;
    throw InputError(name + ":" + std::to_string(m.back().line + 1) + ": YAML syntax error: " +
                     (std::isprint(c) ? "unexpected '" + std::string(1, static_cast<char>(c)) + "'"
                                      : std::string("unexpected character")));
  }
  return docs.marks;
}

}  // namespace

Config parse_config(const std::string& yaml_text, const std::string& source,
                    const std::vector<std::string>& overrides) {
  const std::string name = source.empty() ? "<config>" : source;
  try {
    std::vector<YAML::Mark> starts;
    YAML::Node first;
    try {
      starts = document_starts(yaml_text, name);
      if (!starts.empty()) first = YAML::Load(yaml_text);
    } catch (const YAML::ParserException& e) {
      throw InputError(name + ":" + std::to_string(e.mark.is_null() ? 1 : e.mark.line + 1) +
                       ": YAML syntax error: " + e.msg);
    }
    if (starts.size() > 1) {
      throw InputError(name + ":" + std::to_string(starts[1].line + 1) +
                       ": expected one YAML document, found " + std::to_string(starts.size()));
    }
    YAML::Node root = first;
    Parser parser(name);
    for (const std::string& o : overrides) parser.apply_override(root, o);
    Config cfg = parser.parse(root);
    cfg.source = source;
    YAML::Emitter out;
    out << root;
    cfg.yaml = std::string(out.c_str()) + "\n";
    return cfg;
  } catch (const YAML::Exception& e) {
    // Not expected past parsing; keep the promise that only Error escapes.
    throw InputError(name + ": " + e.what());
  }
}

Config with_class_names(const Config& cfg, const std::vector<std::string>& names) {
  YAML::Node root = YAML::Load(cfg.yaml);
  YAML::Node seq(YAML::NodeType::Sequence);
  for (const std::string& n : names) seq.push_back(n);
  root["data"]["class_names"] = seq;
  YAML::Emitter out;
  out << root;
  Config c = parse_config(std::string(out.c_str()) + "\n", cfg.source);
  return c;
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  const std::string what = "cannot open config '" + path + "'";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw InputError(errno_message(what));
  std::string text;
  char buf[1 << 16];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int saved = errno;
      ::close(fd);
      errno = saved;
      throw InputError(errno_message(what));
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return parse_config(text, path, overrides);
}

}  // namespace dpcnn
