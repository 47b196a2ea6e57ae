#include "checkpoint/checkpoint.h"

#include <gtest/gtest.h>
#include <openssl/sha.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "core/error.h"
#include "core/rng.h"
#include "dpcnn/v1/checkpoint.pb.h"

namespace dpcnn {
namespace {

namespace fs = std::filesystem;

std::string fresh_dir(const std::string& tag) {
  const fs::path d =
      fs::temp_directory_path() / ("dpcnn-ckpt-" + tag + "-" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void spit(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

CheckpointData sample(int64_t step = 7, size_t n = 1000) {
  CheckpointData c;
  c.model_spec = "input 1x28x28 classes 10\n0 dense units=10 activation=none use_bias=true\n";
  c.config_yaml = "name: t\nseed: 5\n";
  c.ranks = 2;
  c.epoch = 1;
  c.step_in_epoch = 3;
  c.global_step = step;
  c.seed = 0xdeadbeefcafeULL;
  c.rng_state = {1, 2, 3, ~0ULL};
  Rng r(static_cast<uint64_t>(step));
  TensorData w{"layers.0.dense.weight", {static_cast<int64_t>(n / 10), 10}, {}};
  for (size_t i = 0; i < n; ++i) w.data.push_back(r.uniform(-1, 1));
  c.params = {w, {"layers.0.dense.bias", {10}, std::vector<float>(10, 0.25f)}};
  c.state = {{"layers.1.batchnorm.running_mean", {2}, {0.5f, -0.5f}}};
  c.optimizer_type = "rmsprop";
  c.optimizer_iterations = step;
  c.optimizer_slots = {
      {"opt.velocity", {static_cast<int64_t>(n + 10)}, std::vector<float>(n + 10, 1e-3f)}};
  MetricsRecord m;
  m.epoch = 1;
  m.step = 5;
  m.loss = 0.3;
  m.accuracy = 0.9;
  m.val_loss = 0.25;
  m.val_accuracy = 0.92;
  m.lr = 1e-3;
  m.seconds = 1.5;
  m.images_per_sec = 1234.5;
  m.test_loss = 0.27;
  m.test_accuracy = 0.91;
  m.best = true;
  c.metrics = {m};
  return c;
}

void expect_same_tensors(const std::vector<TensorData>& a, const std::vector<TensorData>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].name, b[i].name);
    EXPECT_EQ(a[i].shape, b[i].shape);
    EXPECT_EQ(a[i].data, b[i].data);
  }
}

void expect_same(const CheckpointData& a, const CheckpointData& b) {
  EXPECT_EQ(a.format_version, b.format_version);
  EXPECT_EQ(a.model_spec, b.model_spec);
  EXPECT_EQ(a.config_yaml, b.config_yaml);
  EXPECT_EQ(a.ranks, b.ranks);
  EXPECT_EQ(a.epoch, b.epoch);
  EXPECT_EQ(a.step_in_epoch, b.step_in_epoch);
  EXPECT_EQ(a.global_step, b.global_step);
  EXPECT_EQ(a.seed, b.seed);
  EXPECT_EQ(a.rng_state, b.rng_state);
  expect_same_tensors(a.params, b.params);
  expect_same_tensors(a.state, b.state);
  EXPECT_EQ(a.optimizer_type, b.optimizer_type);
  EXPECT_EQ(a.optimizer_iterations, b.optimizer_iterations);
  expect_same_tensors(a.optimizer_slots, b.optimizer_slots);
  ASSERT_EQ(a.metrics.size(), b.metrics.size());
  for (size_t i = 0; i < a.metrics.size(); ++i) {
    EXPECT_EQ(a.metrics[i].epoch, b.metrics[i].epoch);
    EXPECT_EQ(a.metrics[i].step, b.metrics[i].step);
    EXPECT_EQ(a.metrics[i].loss, b.metrics[i].loss);
    EXPECT_EQ(a.metrics[i].accuracy, b.metrics[i].accuracy);
    EXPECT_EQ(a.metrics[i].val_loss, b.metrics[i].val_loss);
    EXPECT_EQ(a.metrics[i].val_accuracy, b.metrics[i].val_accuracy);
    EXPECT_EQ(a.metrics[i].lr, b.metrics[i].lr);
    EXPECT_EQ(a.metrics[i].seconds, b.metrics[i].seconds);
    EXPECT_EQ(a.metrics[i].images_per_sec, b.metrics[i].images_per_sec);
    EXPECT_EQ(a.metrics[i].test_loss, b.metrics[i].test_loss);
    EXPECT_EQ(a.metrics[i].test_accuracy, b.metrics[i].test_accuracy);
    EXPECT_EQ(a.metrics[i].best, b.metrics[i].best);
  }
}

// The message read_checkpoint gives for `bytes` stored as a file.
std::string error_for(const std::string& dir, const std::string& bytes) {
  const std::string path = dir + "/bad.pb";
  spit(path, bytes);
  try {
    read_checkpoint(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Checkpoint, RoundTripKeepsEveryField) {
  const std::string dir = fresh_dir("roundtrip");
  const CheckpointData c = sample();
  write_checkpoint(dir + "/a.pb", c);
  expect_same(c, read_checkpoint(dir + "/a.pb"));
  expect_same(c, parse_checkpoint_bytes(serialize_checkpoint(c), "mem"));
  // Only the final file is left: the temp file was renamed.
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
  fs::remove_all(dir);
}

TEST(Checkpoint, FileStartsWithMagicAndEndsWithSha256OfPayload) {
  const std::string bytes = serialize_checkpoint(sample());
  ASSERT_GT(bytes.size(), 48u);
  EXPECT_EQ(bytes.substr(0, 8), "DPCNNCK1");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[8 + i]);
  ASSERT_EQ(n + 48, bytes.size());
  unsigned char md[32];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data() + 16), n, md);
  EXPECT_EQ(bytes.substr(16 + n), std::string(reinterpret_cast<char*>(md), 32));
}

TEST(Checkpoint, DamageIsReportedByNameAndKind) {
  const std::string dir = fresh_dir("damage");
  const std::string good = serialize_checkpoint(sample());
  const std::string path = dir + "/bad.pb";
  const std::string who = "checkpoint '" + path + "': ";

  EXPECT_EQ(error_for(dir, good.substr(0, good.size() - 10)).rfind(who + "truncated", 0), 0u);
  EXPECT_EQ(error_for(dir, good.substr(0, 20)).rfind(who + "truncated", 0), 0u);
  EXPECT_EQ(error_for(dir, good.substr(0, 5)).rfind(who + "truncated", 0), 0u);
  std::string flipped = good;
  flipped[good.size() / 2] ^= 0x10;
  EXPECT_EQ(error_for(dir, flipped), who + "checksum mismatch (damaged)");
  std::string flipped_sum = good;
  flipped_sum[good.size() - 1] ^= 0x01;
  EXPECT_EQ(error_for(dir, flipped_sum), who + "checksum mismatch (damaged)");
  std::string magic = good;
  magic[7] = '2';
  EXPECT_NE(error_for(dir, magic).find(who + "not a dpcnn checkpoint"), std::string::npos);
  Rng r(3);
  std::string garbage(5000, '\0');
  for (char& ch : garbage) ch = static_cast<char>(r.below(256));
  EXPECT_NE(error_for(dir, garbage).find(who + "not a dpcnn checkpoint"), std::string::npos);
  EXPECT_EQ(error_for(dir, ""), who + "empty file, not a dpcnn checkpoint");
  EXPECT_NE(error_for(dir, good + "xx").find("unexpected bytes after the checksum"),
            std::string::npos);

  // A payload that is not a Checkpoint, under a correct checksum.
  const std::string payload = "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01";
  std::string forged = "DPCNNCK1";
  for (int i = 0; i < 8; ++i) forged += static_cast<char>((payload.size() >> (8 * i)) & 0xff);
  unsigned char md[32];
  SHA256(reinterpret_cast<const unsigned char*>(payload.data()), payload.size(), md);
  forged += payload + std::string(reinterpret_cast<char*>(md), 32);
  EXPECT_NE(error_for(dir, forged).find(who + "payload does not parse"), std::string::npos);

  CheckpointData future = sample();
  future.format_version = 2;
  EXPECT_EQ(error_for(dir, serialize_checkpoint(future)),
            who + "unsupported format_version 2 (this build reads version 1)");

  try {
    read_checkpoint(dir + "/missing.pb");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "checkpoint '" + dir + "/missing.pb': cannot open: No such file or directory");
  }
  fs::remove_all(dir);
}

// The damaged files in tests/fuzz/regressions/checkpoint (hand-encoded by
// tests/fuzz/make_checkpoint_regressions.py) are refused with the reason each
// one was made for. The fuzz replay only shows they do not crash; this shows
// the reader says what is wrong. Every file there must be in this table.
TEST(Checkpoint, FuzzRegressionFilesAreRefusedWithTheirReason) {
  const std::map<std::string, std::string> want = {
      {"empty-file.ckpt", "empty file, not a dpcnn checkpoint"},
      {"magic-only-half.ckpt", "truncated (5 bytes)"},
      {"wrong-magic.ckpt", "not a dpcnn checkpoint (bad magic"},
      {"header-cut.ckpt", "truncated (11 bytes, not even a header)"},
      {"payload-cut.ckpt", "truncated (136 bytes; the header promises 176)"},
      {"length-claims-2-to-63.ckpt", "truncated (176 bytes; the header promises"},
      {"length-claims-less.ckpt", "5 unexpected bytes after the checksum (damaged)"},
      {"checksum-flipped.ckpt", "checksum mismatch (damaged)"},
      {"payload-bit-flipped.ckpt", "checksum mismatch (damaged)"},
      {"payload-not-protobuf.ckpt", "payload does not parse as dpcnn.v1.Checkpoint"},
      {"format-version-2.ckpt", "unsupported format_version 2"},
      {"shape-overflows.ckpt", "tensor 'w' has an impossible shape (damaged)"},
      {"shape-negative.ckpt", "tensor 'w' has an impossible shape (damaged)"},
      {"shape-disagrees-with-data.ckpt", "tensor 'w' holds 5 values but its shape needs 6"},
      {"negative-global-step.ckpt", "negative position (damaged)"},
  };
  const fs::path dir = fs::path(DPCNN_SOURCE_DIR) / "tests/fuzz/regressions/checkpoint";
  size_t seen = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename();
    SCOPED_TRACE(name);
    ASSERT_TRUE(want.count(name)) << "add the expected message of " << name << " to this table";
    std::string bytes = slurp(e.path().string());
    ASSERT_FALSE(bytes.empty());
    ASSERT_EQ(bytes[0], '\0');  // fuzz mode byte: the rest is the file
    bytes.erase(0, 1);
    try {
      parse_checkpoint_bytes(bytes, name);
      ADD_FAILURE() << "loaded";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("'" + name + "': " + want.at(name)), std::string::npos)
          << e.what();
    }
    ++seen;
  }
  EXPECT_EQ(seen, want.size());
}

TEST(Checkpoint, TensorWhoseShapeDisagreesWithItsDataIsRefused) {
  CheckpointData c = sample();
  c.params[0].shape = {3, 3};
  try {
    parse_checkpoint_bytes(serialize_checkpoint(c), "x.pb");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'layers.0.dense.weight' holds 1000 values"),
              std::string::npos)
        << e.what();
  }
}

TEST(CheckpointDir, KeepsNewestAndPointsLatestAtIt) {
  const std::string dir = fresh_dir("keep") + "/checkpoints";
  CheckpointDir d(dir);
  for (int64_t s : {100, 200, 300, 400, 500}) {
    CheckpointData c = sample(s);
    EXPECT_EQ(d.save(c, 3), dir + "/" + CheckpointDir::file_name(s));
  }
  EXPECT_EQ(d.list(),
            (std::vector<std::string>{dir + "/ckpt-0000000500.pb", dir + "/ckpt-0000000400.pb",
                                      dir + "/ckpt-0000000300.pb"}));
  EXPECT_EQ(slurp(dir + "/latest"), "ckpt-0000000500.pb\n");
  EXPECT_EQ(resolve_checkpoint_path(dir), dir + "/ckpt-0000000500.pb");
  EXPECT_EQ(resolve_checkpoint_path(dir + "/latest"), dir + "/ckpt-0000000500.pb");
  EXPECT_EQ(resolve_checkpoint_path(dir + "/ckpt-0000000300.pb"), dir + "/ckpt-0000000300.pb");
  const std::string run = fs::path(dir).parent_path().string();
  EXPECT_EQ(resolve_checkpoint_path(run), dir + "/ckpt-0000000500.pb");

  // Without `latest`, the directory's newest file.
  fs::remove(dir + "/latest");
  EXPECT_EQ(resolve_checkpoint_path(dir), dir + "/ckpt-0000000500.pb");
  EXPECT_THROW(resolve_checkpoint_path(dir + "/nothing"), Error);
  const std::string empty = fresh_dir("empty");
  try {
    resolve_checkpoint_path(empty);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "checkpoint directory '" + empty + "' holds no checkpoint (ckpt-*.pb)");
  }
  fs::remove_all(run);
  fs::remove_all(empty);
}

// Checkpoints written before held-out validation kept the per-epoch TEST
// scores in val_loss/val_accuracy: they load as test_* (and no val_*).
TEST(Checkpoint, OlderMetricsWithoutSplitNamingLoadAsTestScores) {
  const std::string bytes = serialize_checkpoint(sample());
  const uint64_t n = bytes.size() - 16 - 32;
  v1::Checkpoint p;
  ASSERT_TRUE(p.ParseFromString(bytes.substr(16, n)));
  ASSERT_TRUE(p.metrics(0).split_naming());
  auto* r = p.mutable_metrics(0);
  r->clear_split_naming();
  r->clear_test_loss();
  r->clear_test_accuracy();
  r->clear_best();
  std::string payload = p.SerializeAsString();
  std::string old = bytes.substr(0, 8);
  for (int i = 0; i < 8; ++i) old.push_back(static_cast<char>((payload.size() >> (8 * i)) & 0xff));
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(payload.data()), payload.size(), md);
  old += payload + std::string(reinterpret_cast<char*>(md), sizeof md);
  const CheckpointData c = parse_checkpoint_bytes(old, "old");
  ASSERT_EQ(c.metrics.size(), 1u);
  EXPECT_EQ(c.metrics[0].test_loss, 0.25);
  EXPECT_EQ(c.metrics[0].test_accuracy, 0.92);
  EXPECT_LT(c.metrics[0].val_loss, 0);
  EXPECT_LT(c.metrics[0].val_accuracy, 0);
}

// checkpoints/best is never rotated away, and a model tool given the
// directory reads it (saying so); resuming still reads `latest`.
TEST(CheckpointDir, BestSurvivesRotationAndIsWhatModelToolsRead) {
  const std::string run = fresh_dir("best");
  const std::string dir = run + "/checkpoints";
  CheckpointDir d(dir);
  d.save(sample(100), 2);
  EXPECT_EQ(d.set_best(100), dir + "/ckpt-0000000100.pb");
  EXPECT_EQ(slurp(dir + "/best"), "ckpt-0000000100.pb\n");
  for (int64_t s : {200, 300, 400, 500}) d.save(sample(s), 2);
  EXPECT_EQ(d.list(),
            (std::vector<std::string>{dir + "/ckpt-0000000500.pb", dir + "/ckpt-0000000400.pb",
                                      dir + "/ckpt-0000000100.pb"}));
  EXPECT_EQ(d.best_name(), "ckpt-0000000100.pb");
  std::string note;
  EXPECT_EQ(resolve_model_checkpoint(run, &note), dir + "/ckpt-0000000100.pb");
  EXPECT_NE(note.find("best"), std::string::npos);
  EXPECT_EQ(resolve_model_checkpoint(dir), dir + "/ckpt-0000000100.pb");
  EXPECT_EQ(resolve_checkpoint_path(run), dir + "/ckpt-0000000500.pb");  // resume: latest
  // A file given by name is that file.
  EXPECT_EQ(resolve_model_checkpoint(dir + "/ckpt-0000000400.pb"), dir + "/ckpt-0000000400.pb");
  // Moving best on lets rotation take the old one.
  d.set_best(500);
  d.save(sample(600), 2);
  EXPECT_FALSE(fs::exists(dir + "/ckpt-0000000100.pb"));
  EXPECT_TRUE(fs::exists(dir + "/ckpt-0000000500.pb"));
  EXPECT_THROW(d.set_best(100), Error);  // it must exist
  // Without best, the latest.
  fs::remove(dir + "/best");
  note.clear();
  EXPECT_EQ(resolve_model_checkpoint(run, &note), dir + "/ckpt-0000000600.pb");
  EXPECT_EQ(note, "");
  fs::remove_all(run);
}

TEST(CheckpointDir, KeepZeroKeepsAll) {
  const std::string dir = fresh_dir("keepall");
  CheckpointDir d(dir);
  for (int64_t s = 1; s <= 4; ++s) d.save(sample(s), 0);
  EXPECT_EQ(d.list().size(), 4u);
  fs::remove_all(dir);
}

TEST(CheckpointDir, LoadNewestValidSkipsDamagedAndForeignOnes) {
  const std::string dir = fresh_dir("newest");
  CheckpointDir d(dir);
  for (int64_t s : {1, 2, 3, 4}) d.save(sample(s), 10);
  std::string bytes = slurp(dir + "/ckpt-0000000004.pb");
  bytes[bytes.size() / 3] ^= 0x40;
  spit(dir + "/ckpt-0000000004.pb", bytes);
  CheckpointData other = sample(3);
  other.model_spec = "something else\n";
  write_checkpoint(dir + "/ckpt-0000000003.pb", other);

  CheckpointData c;
  std::string path;
  ::testing::internal::CaptureStderr();
  ASSERT_TRUE(d.load_newest_valid(sample().model_spec, &c, &path));
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(path, dir + "/ckpt-0000000002.pb");
  EXPECT_EQ(c.global_step, 2);
  EXPECT_EQ(err, "checkpoint '" + dir +
                     "/ckpt-0000000004.pb': checksum mismatch (damaged); trying the previous one\n"
                     "checkpoint '" +
                     dir + "/ckpt-0000000003.pb': of another model; trying the previous one\n");

  // An empty spec accepts any model.
  ::testing::internal::CaptureStderr();
  ASSERT_TRUE(d.load_newest_valid("", &c, &path));
  ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(c.global_step, 3);

  fs::remove(dir + "/ckpt-0000000002.pb");
  fs::remove(dir + "/ckpt-0000000001.pb");
  ::testing::internal::CaptureStderr();
  EXPECT_FALSE(d.load_newest_valid(sample().model_spec, &c, &path));
  EXPECT_NE(::testing::internal::GetCapturedStderr().find("; no older checkpoint\n"),
            std::string::npos);
  fs::remove_all(dir);
}

TEST(CheckpointDir, SaveRemovesDeadWritersTempFilesButNotOtherFiles) {
  const std::string dir = fresh_dir("temps");
  CheckpointDir d(dir);
  spit(dir + "/.ckpt-0000000009.pb.tmp-abc123", "half");
  spit(dir + "/.latest.tmp-xyz789", "half");
  spit(dir + "/notes.txt", "mine");
  d.save(sample(10), 3);
  EXPECT_FALSE(fs::exists(dir + "/.ckpt-0000000009.pb.tmp-abc123"));
  EXPECT_FALSE(fs::exists(dir + "/.latest.tmp-xyz789"));
  EXPECT_TRUE(fs::exists(dir + "/notes.txt"));
  fs::remove_all(dir);
}

// Every value of a checkpoint written at `step` is derived from `step`, so a
// reader can tell a complete file of one step from any mixture.
CheckpointData large(int64_t step) {
  CheckpointData c = sample(step, 10);
  c.params[0].shape = {1 << 22};
  c.params[0].data.assign(1 << 22, static_cast<float>(step));
  return c;
}

TEST(CheckpointDir, WriterKilledMidWriteNeverLeavesAPartialCheckpoint) {
  const std::string dir = fresh_dir("kill");
  int leftovers = 0;
  for (int round = 0; round < 6; ++round) {
    const int64_t first = 1000 * (round + 1);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      try {
        CheckpointDir d(dir);
        for (int64_t s = first;; ++s) d.save(large(s), 2);
      } catch (...) {
      }
      ::_exit(1);
    }
    // Let at least one save of this round finish, then kill at a random moment.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (slurp(dir + "/latest") < CheckpointDir::file_name(first) &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::this_thread::sleep_for(std::chrono::microseconds(3000 + 7919 * round % 40000));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the writer stopped by itself";

    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().filename().string().find(".tmp-") != std::string::npos) ++leftovers;
    CheckpointDir d(dir);
    // No file under a final name is partial.
    for (const std::string& f : d.list()) {
      const CheckpointData c = read_checkpoint(f);
      EXPECT_EQ(f, dir + "/" + CheckpointDir::file_name(c.global_step));
      EXPECT_EQ(c.params[0].data.front(), static_cast<float>(c.global_step));
      EXPECT_EQ(c.params[0].data.back(), static_cast<float>(c.global_step));
    }
    CheckpointData c;
    std::string path;
    ASSERT_TRUE(d.load_newest_valid(sample().model_spec, &c, &path));
    EXPECT_GE(c.global_step, first);
    const CheckpointData latest = read_checkpoint(resolve_checkpoint_path(dir));
    EXPECT_EQ(latest.params[0].data[12345], static_cast<float>(latest.global_step));
  }
  // Informational: how often the kill landed inside a write.
  RecordProperty("kills_mid_write", leftovers);
  std::printf("kills that left a temp file: %d of 6\n", leftovers);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace dpcnn
