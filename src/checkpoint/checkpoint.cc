#include "checkpoint/checkpoint.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>

#include "core/error.h"
#include "dpcnn/v1/checkpoint.pb.h"

namespace dpcnn {
namespace {

namespace fs = std::filesystem;

constexpr char kMagic[8] = {'D', 'P', 'C', 'N', 'N', 'C', 'K', '1'};
constexpr size_t kHeader = 16;  // magic + payload length
constexpr size_t kSha = 32;
constexpr uint32_t kFormatVersion = 1;
constexpr const char* kLatest = "latest";
constexpr const char* kBest = "best";
constexpr const char* kTempMarker = ".tmp-";

std::string quoted(const std::string& name) { return "checkpoint '" + name + "'"; }

InputError bad(const std::string& name, const std::string& why) {
  return InputError(quoted(name) + ": " + why);
}

std::string sha256(const char* data, size_t n) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data, n, md, &len, EVP_sha256(), nullptr) != 1 || len != kSha)
    throw Error("SHA-256 failed (OpenSSL)");
  return std::string(reinterpret_cast<const char*>(md), len);
}

void put_u64(std::string* s, uint64_t v) {
  for (int i = 0; i < 8; ++i) s->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t get_u64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

void to_proto(const TensorData& t, v1::Tensor* p) {
  p->set_name(t.name);
  p->mutable_shape()->Add(t.shape.begin(), t.shape.end());
  p->mutable_data()->Add(t.data.begin(), t.data.end());
}

// Shapes come from the file, so their product must be computed without
// overflow before it is compared with the data size.
TensorData from_proto(const v1::Tensor& p, const std::string& name) {
  TensorData t;
  t.name = p.name();
  t.shape.assign(p.shape().begin(), p.shape().end());
  uint64_t count = 1;
  for (int64_t d : t.shape) {
    if (d < 0 || (d > 0 && count > std::numeric_limits<uint32_t>::max() / static_cast<uint64_t>(d)))
      throw bad(name, "tensor '" + t.name + "' has an impossible shape (damaged)");
    count *= static_cast<uint64_t>(d);
  }
  if (count != static_cast<uint64_t>(p.data_size()))
    throw bad(name, "tensor '" + t.name + "' holds " + std::to_string(p.data_size()) +
                        " values but its shape needs " + std::to_string(count) + " (damaged)");
  t.data.assign(p.data().begin(), p.data().end());
  return t;
}

std::string read_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw InputError(errno_message(quoted(path) + ": cannot open"));
  std::string bytes;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) bytes.append(buf, n);
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) throw InputError(errno_message(quoted(path) + ": cannot read"));
  return bytes;
}

std::string parent_dir(const std::string& path) {
  const fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? "." : parent.string();
}

void write_all(int fd, const std::string& bytes, const std::string& what) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) throw Error(errno_message("cannot write '" + what + "'"));
    done += static_cast<size_t>(w);
  }
}

// Parses "ckpt-<10 digits>.pb"; -1 for any other name (temp files, `latest`).
int64_t step_of(const std::string& file) {
  if (file.size() != 18 || file.compare(0, 5, "ckpt-") != 0 || file.compare(15, 3, ".pb") != 0)
    return -1;
  int64_t step = 0;
  for (size_t i = 5; i < 15; ++i) {
    if (file[i] < '0' || file[i] > '9') return -1;
    step = step * 10 + (file[i] - '0');
  }
  return step;
}

std::vector<std::pair<int64_t, std::string>> checkpoint_files(const std::string& dir) {
  std::vector<std::pair<int64_t, std::string>> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    const int64_t step = step_of(name);
    if (step >= 0) out.push_back({step, name});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  return out;
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t b = 0;
  while (b < s.size() && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  return s.substr(b);
}

}  // namespace

std::string serialize_checkpoint(const CheckpointData& c) {
  v1::Checkpoint p;
  p.set_format_version(c.format_version);
  p.set_model_spec(c.model_spec);
  p.set_config_yaml(c.config_yaml);
  p.set_ranks(c.ranks);
  p.mutable_position()->set_epoch(c.epoch);
  p.mutable_position()->set_step_in_epoch(c.step_in_epoch);
  p.mutable_position()->set_global_step(c.global_step);
  p.set_seed(c.seed);
  p.mutable_rng_state()->Add(c.rng_state.begin(), c.rng_state.end());
  for (const auto& t : c.params) to_proto(t, p.add_params());
  for (const auto& t : c.state) to_proto(t, p.add_state());
  p.mutable_optimizer()->set_type(c.optimizer_type);
  p.mutable_optimizer()->set_iterations(c.optimizer_iterations);
  for (const auto& t : c.optimizer_slots) to_proto(t, p.mutable_optimizer()->add_slots());
  for (const auto& m : c.metrics) {
    v1::MetricsRecord* r = p.add_metrics();
    r->set_epoch(m.epoch);
    r->set_step(m.step);
    r->set_loss(m.loss);
    r->set_accuracy(m.accuracy);
    r->set_val_loss(m.val_loss);
    r->set_val_accuracy(m.val_accuracy);
    r->set_lr(m.lr);
    r->set_seconds(m.seconds);
    r->set_images_per_sec(m.images_per_sec);
    r->set_split_naming(true);
    r->set_test_loss(m.test_loss);
    r->set_test_accuracy(m.test_accuracy);
    r->set_best(m.best);
  }
  std::string payload;
  if (!p.SerializeToString(&payload))
    throw Error("cannot serialise checkpoint (larger than Protobuf's 2 GB limit?)");
  std::string out(kMagic, sizeof kMagic);
  out.reserve(kHeader + payload.size() + kSha);
  put_u64(&out, payload.size());
  out += payload;
  out += sha256(payload.data(), payload.size());
  return out;
}

CheckpointData parse_checkpoint_bytes(const std::string& bytes, const std::string& name) {
  if (bytes.empty()) throw bad(name, "empty file, not a dpcnn checkpoint");
  if (bytes.size() < sizeof kMagic || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0) {
    if (bytes.size() < sizeof kMagic && std::memcmp(bytes.data(), kMagic, bytes.size()) == 0)
      throw bad(name, "truncated (" + std::to_string(bytes.size()) + " bytes)");
    throw bad(name, "not a dpcnn checkpoint (bad magic; expected \"DPCNNCK1\")");
  }
  if (bytes.size() < kHeader + kSha)
    throw bad(name, "truncated (" + std::to_string(bytes.size()) + " bytes, not even a header)");
  const uint64_t n = get_u64(bytes.data() + sizeof kMagic);
  const uint64_t have = bytes.size() - kHeader - kSha;
  if (n > have)
    throw bad(name, "truncated (" + std::to_string(bytes.size()) + " bytes; the header promises " +
                        std::to_string(n + kHeader + kSha) + ")");
  if (n < have)
    throw bad(name, std::to_string(have - n) + " unexpected bytes after the checksum (damaged)");
  const char* payload = bytes.data() + kHeader;
  if (sha256(payload, n) != bytes.substr(kHeader + n, kSha))
    throw bad(name, "checksum mismatch (damaged)");
  if (n > static_cast<uint64_t>(std::numeric_limits<int>::max()))
    throw bad(name, "payload larger than 2 GB cannot be parsed");
  v1::Checkpoint p;
  if (!p.ParseFromArray(payload, static_cast<int>(n)))
    throw bad(name, "payload does not parse as dpcnn.v1.Checkpoint (written by another program?)");
  if (p.format_version() != kFormatVersion)
    throw bad(name, "unsupported format_version " + std::to_string(p.format_version()) +
                        " (this build reads version " + std::to_string(kFormatVersion) + ")");

  CheckpointData c;
  c.format_version = p.format_version();
  c.model_spec = p.model_spec();
  c.config_yaml = p.config_yaml();
  c.ranks = p.ranks();
  c.epoch = p.position().epoch();
  c.step_in_epoch = p.position().step_in_epoch();
  c.global_step = p.position().global_step();
  c.seed = p.seed();
  c.rng_state.assign(p.rng_state().begin(), p.rng_state().end());
  for (const auto& t : p.params()) c.params.push_back(from_proto(t, name));
  for (const auto& t : p.state()) c.state.push_back(from_proto(t, name));
  c.optimizer_type = p.optimizer().type();
  c.optimizer_iterations = p.optimizer().iterations();
  for (const auto& t : p.optimizer().slots()) c.optimizer_slots.push_back(from_proto(t, name));
  for (const auto& r : p.metrics()) {
    MetricsRecord m;
    m.epoch = r.epoch();
    m.step = r.step();
    m.loss = r.loss();
    m.accuracy = r.accuracy();
    m.val_loss = r.val_loss();
    m.val_accuracy = r.val_accuracy();
    m.lr = r.lr();
    m.seconds = r.seconds();
    m.images_per_sec = r.images_per_sec();
    if (r.split_naming()) {
      m.test_loss = r.test_loss();
      m.test_accuracy = r.test_accuracy();
      m.best = r.best();
    } else {  // an older checkpoint: its val_* were the test set's scores
      m.test_loss = m.val_loss;
      m.test_accuracy = m.val_accuracy;
      m.val_loss = m.val_accuracy = -1;
    }
    c.metrics.push_back(m);
  }
  if (c.global_step < 0 || c.step_in_epoch < 0 || c.epoch < 0)
    throw bad(name, "negative position (damaged)");
  return c;
}

void write_file_durably(const std::string& path, const std::string& bytes) {
  const std::string dir = parent_dir(path);
  std::string tmpl = dir + "/." + fs::path(path).filename().string() + kTempMarker + "XXXXXX";
  const int fd = ::mkstemp(tmpl.data());
  if (fd < 0) throw Error(errno_message("cannot create a temp file for '" + path + "'"));
  try {
    write_all(fd, bytes, tmpl);
    // The data must be on disk before the rename makes it visible, or a crash
    // could leave the final name pointing at a file of zeros.
    if (::fsync(fd) != 0) throw Error(errno_message("cannot fsync '" + tmpl + "'"));
    // mkstemp creates 0600; checkpoints are ordinary output files.
    ::fchmod(fd, 0644);
  } catch (...) {
    ::close(fd);
    ::unlink(tmpl.c_str());
    throw;
  }
  if (::close(fd) != 0) {
    ::unlink(tmpl.c_str());
    throw Error(errno_message("cannot write '" + tmpl + "'"));
  }
  if (::rename(tmpl.c_str(), path.c_str()) != 0) {
    const Error e(errno_message("cannot rename '" + tmpl + "' to '" + path + "'"));
    ::unlink(tmpl.c_str());
    throw e;
  }
  // The rename itself lives in the directory; without this a crash may undo it.
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd < 0) throw Error(errno_message("cannot open directory '" + dir + "'"));
  const int rc = ::fsync(dfd);
  ::close(dfd);
  if (rc != 0) throw Error(errno_message("cannot fsync directory '" + dir + "'"));
}

void write_checkpoint(const std::string& path, const CheckpointData& c) {
  write_file_durably(path, serialize_checkpoint(c));
}

CheckpointData read_checkpoint(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec))
    throw bad(path, "is a directory (pass a checkpoint file, or use resolve_checkpoint_path)");
  return parse_checkpoint_bytes(read_file(path), path);
}

CheckpointDir::CheckpointDir(std::string dir) : dir_(std::move(dir)) {}

std::string CheckpointDir::file_name(int64_t global_step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "ckpt-%010lld.pb", static_cast<long long>(global_step));
  return buf;
}

std::vector<std::string> CheckpointDir::list() const {
  std::vector<std::string> out;
  for (const auto& [step, name] : checkpoint_files(dir_)) out.push_back(dir_ + "/" + name);
  return out;
}

std::string CheckpointDir::save(const CheckpointData& c, int keep) {
  if (c.global_step < 0) throw Error("cannot save a checkpoint at negative step");
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) throw Error("cannot create checkpoint directory '" + dir_ + "': " + ec.message());
  const std::string name = file_name(c.global_step);
  const std::string path = dir_ + "/" + name;
  write_checkpoint(path, c);
  write_file_durably(dir_ + "/" + kLatest, name + "\n");

  // This is the only writer, so any temp file here is a dead writer's.
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    const std::string f = e.path().filename().string();
    const bool ours = f.rfind(".ckpt-", 0) == 0 || f.rfind(std::string(".") + kLatest, 0) == 0 ||
                      f.rfind(std::string(".") + kBest, 0) == 0;
    if (ours && f.find(kTempMarker) != std::string::npos) fs::remove(e.path(), ec);
  }
  if (keep > 0) {
    const std::string best = best_name();
    int kept = 1;  // the file just written
    for (const auto& [step, f] : checkpoint_files(dir_)) {
      if (step >= c.global_step || f == best) continue;
      if (kept < keep)
        ++kept;
      else
        fs::remove(dir_ + "/" + f, ec);
    }
  }
  return path;
}

std::string CheckpointDir::set_best(int64_t global_step) {
  const std::string name = file_name(global_step);
  std::error_code ec;
  if (!fs::exists(dir_ + "/" + name, ec))
    throw Error("cannot mark '" + dir_ + "/" + name + "' as best: it does not exist");
  write_file_durably(dir_ + "/" + kBest, name + "\n");
  return dir_ + "/" + name;
}

std::string CheckpointDir::best_name() const {
  std::error_code ec;
  if (!fs::is_regular_file(dir_ + "/" + kBest, ec)) return "";
  try {
    const std::string name = trim(read_file(dir_ + "/" + kBest));
    return step_of(name) >= 0 ? name : "";
  } catch (const Error&) {
    return "";
  }
}

bool CheckpointDir::load_newest_valid(const std::string& model_spec, CheckpointData* out,
                                      std::string* path_out) const {
  const auto files = checkpoint_files(dir_);
  for (size_t i = 0; i < files.size(); ++i) {
    const std::string path = dir_ + "/" + files[i].second;
    const char* next = i + 1 < files.size() ? "; trying the previous one" : "; no older checkpoint";
    try {
      CheckpointData c = read_checkpoint(path);
      if (!model_spec.empty() && c.model_spec != model_spec) {
        std::fprintf(stderr, "%s: of another model%s\n", quoted(path).c_str(), next);
        continue;
      }
      *out = std::move(c);
      if (path_out) *path_out = path;
      return true;
    } catch (const Error& e) {
      std::fprintf(stderr, "%s%s\n", e.what(), next);
    }
  }
  return false;
}

std::string resolve_checkpoint_path(const std::string& path) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (!fs::exists(st)) throw bad(path, "no such file or directory");
  if (fs::is_directory(st)) {
    if (fs::exists(path + "/" + kLatest, ec)) return resolve_checkpoint_path(path + "/" + kLatest);
    const auto files = checkpoint_files(path);
    if (!files.empty()) return path + "/" + files.front().second;
    // A run directory (runs/<name>) holds its checkpoints one level down.
    if (fs::is_directory(path + "/checkpoints", ec))
      return resolve_checkpoint_path(path + "/checkpoints");
    throw InputError("checkpoint directory '" + path + "' holds no checkpoint (ckpt-*.pb)");
  }
  if (fs::path(path).filename() != kLatest) return path;
  std::string target = read_file(path);
  if (target.size() > 4096) throw bad(path, "is not a `latest` pointer (too large)");
  target = trim(target);
  if (target.empty() || target.find('\n') != std::string::npos ||
      target.find('\0') != std::string::npos)
    throw bad(path, "is not a `latest` pointer (one file name expected)");
  const std::string resolved =
      fs::path(target).is_absolute() ? target : parent_dir(path) + "/" + target;
  if (!fs::exists(resolved, ec))
    throw InputError("checkpoint pointer '" + path + "' names '" + target +
                     "', which does not exist");
  return resolved;
}

std::string resolve_model_checkpoint(const std::string& path, std::string* note) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    // The same directories resolve_checkpoint_path walks: checkpoints/, a run, an experiment.
    for (const std::string& dir : {path, path + "/checkpoints", path + "/latest/checkpoints"}) {
      if (!fs::is_directory(dir, ec)) continue;
      const std::string best = CheckpointDir(dir).best_name();
      if (!best.empty() && fs::exists(dir + "/" + best, ec)) {
        if (note) *note = "using the best checkpoint '" + dir + "/" + best + "' (checkpoints/best)";
        return dir + "/" + best;
      }
      // A checkpoints directory without `best`: its latest, as resolve_checkpoint_path.
      if (!checkpoint_files(dir).empty() || fs::is_regular_file(dir + "/" + kLatest, ec)) break;
    }
  }
  return resolve_checkpoint_path(path);
}

}  // namespace dpcnn
