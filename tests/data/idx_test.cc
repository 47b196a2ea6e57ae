#include "data/idx.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"

namespace dpcnn {
namespace {

namespace fs = std::filesystem;

class IdxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("dpcnn_idx_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  void write_bytes(const std::string& p, const std::vector<uint8_t>& b) const {
    std::ofstream f(p, std::ios::binary);
    f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  }

  fs::path dir_;
};

IdxArray sample() {
  IdxArray a;
  a.dims = {3, 2, 5};
  for (int i = 0; i < 30; ++i) a.data.push_back(static_cast<uint8_t>(i * 8 + 1));
  return a;
}

// Header for an unsigned-byte IDX with the given dims, written by hand so the
// reader is checked against the format, not against write_idx alone.
std::vector<uint8_t> header(std::vector<uint32_t> dims, uint8_t type = 0x08) {
  std::vector<uint8_t> h = {0, 0, type, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims) {
    h.push_back(static_cast<uint8_t>(d >> 24));
    h.push_back(static_cast<uint8_t>(d >> 16));
    h.push_back(static_cast<uint8_t>(d >> 8));
    h.push_back(static_cast<uint8_t>(d));
  }
  return h;
}

std::string error_of(const std::string& p) {
  try {
    read_idx(p);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST_F(IdxTest, RawRoundTrip) {
  const IdxArray a = sample();
  write_idx(path("a-idx3-ubyte"), a);
  EXPECT_EQ(fs::file_size(path("a-idx3-ubyte")), 4u + 3 * 4 + 30);
  const IdxArray b = read_idx(path("a-idx3-ubyte"));
  EXPECT_EQ(b.dims, a.dims);
  EXPECT_EQ(b.data, a.data);
}

TEST_F(IdxTest, RawMatchesHandWrittenBytes) {
  std::vector<uint8_t> bytes = header({2, 3});
  for (uint8_t v : {1, 2, 3, 250, 251, 252}) bytes.push_back(v);
  write_bytes(path("h"), bytes);
  const IdxArray a = read_idx(path("h"));
  EXPECT_EQ(a.dims, (std::vector<uint32_t>{2, 3}));
  EXPECT_EQ(a.data, (std::vector<uint8_t>{1, 2, 3, 250, 251, 252}));
  IdxArray w;
  w.dims = {2, 3};
  w.data = a.data;
  write_idx(path("w"), w);
  std::ifstream f(path("w"), std::ios::binary);
  std::vector<uint8_t> back((std::istreambuf_iterator<char>(f)), {});
  EXPECT_EQ(back, bytes);
}

TEST_F(IdxTest, GzRoundTrip) {
  const IdxArray a = sample();
  write_idx(path("a-idx3-ubyte.gz"), a);
  std::ifstream f(path("a-idx3-ubyte.gz"), std::ios::binary);
  unsigned char magic[2] = {0, 0};
  f.read(reinterpret_cast<char*>(magic), 2);
  EXPECT_EQ(magic[0], 0x1f);
  EXPECT_EQ(magic[1], 0x8b);
  const IdxArray b = read_idx(path("a-idx3-ubyte.gz"));
  EXPECT_EQ(b.dims, a.dims);
  EXPECT_EQ(b.data, a.data);
}

TEST_F(IdxTest, LargeGzRoundTrip) {
  IdxArray a;
  a.dims = {100, 28, 28};
  for (size_t i = 0; i < 78400; ++i) a.data.push_back(static_cast<uint8_t>((i * 2654435761u) >> 7));
  write_idx(path("big.gz"), a);
  EXPECT_EQ(read_idx(path("big.gz")).data, a.data);
}

TEST_F(IdxTest, Rank1) {
  IdxArray a;
  a.dims = {4};
  a.data = {9, 8, 7, 6};
  write_idx(path("l"), a);
  EXPECT_EQ(read_idx(path("l")).data, a.data);
}

TEST_F(IdxTest, Truncated) {
  std::vector<uint8_t> bytes = header({3, 2, 5});
  bytes.resize(bytes.size() + 29, 7);
  write_bytes(path("t"), bytes);
  const std::string e = error_of(path("t"));
  EXPECT_NE(e.find(path("t")), std::string::npos) << e;
  EXPECT_NE(e.find("truncated: header says 30 bytes of data, file has 29"), std::string::npos) << e;
}

// Writes `bytes` then `zeros` zero bytes as one gzip member.
void write_gz(const std::string& p, const std::vector<uint8_t>& bytes, size_t zeros = 0) {
  gzFile gz = gzopen(p.c_str(), "wb");
  ASSERT_NE(gz, nullptr);
  gzwrite(gz, bytes.data(), static_cast<unsigned>(bytes.size()));
  const std::vector<uint8_t> block(1 << 20, 0);
  for (size_t left = zeros; left > 0;) {
    const size_t n = std::min(left, block.size());
    gzwrite(gz, block.data(), static_cast<unsigned>(n));
    left -= n;
  }
  gzclose(gz);
}

TEST_F(IdxTest, TruncatedGz) {
  std::vector<uint8_t> bytes = header({3, 2, 5});
  bytes.resize(bytes.size() + 10, 7);
  write_gz(path("t.gz"), bytes);
  const std::string e = error_of(path("t.gz"));
  EXPECT_NE(e.find("truncated: header says 30 bytes of data, file has 10"), std::string::npos) << e;
}

long peak_rss_kb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

TEST_F(IdxTest, TrailingBytesInGzAreCountedExactly) {
  std::vector<uint8_t> bytes = header({3, 2, 5});
  bytes.resize(bytes.size() + 31, 7);
  write_gz(path("t.gz"), bytes);
  EXPECT_EQ(error_of(path("t.gz")),
            path("t.gz") + ": trailing bytes: header says 30 bytes of data, file has 31");
}

TEST_F(IdxTest, GzipBombIsRefusedWithoutInflatingItAll) {
  // 784 bytes announced, 512 MiB of zeros behind them: half a megabyte of gzip.
  std::vector<uint8_t> bytes = header({1, 28, 28});
  bytes.resize(bytes.size() + 784, 1);
  write_gz(path("bomb.gz"), bytes, size_t{512} << 20);
  ASSERT_LT(fs::file_size(path("bomb.gz")), 1u << 20);
  const long before = peak_rss_kb();
  // Inflating stops a little past 64 MiB of excess, wherever zlib's chunks end.
  const std::string e = error_of(path("bomb.gz"));
  const std::string head =
      path("bomb.gz") + ": trailing bytes: header says 784 bytes of data, file has ";
  ASSERT_EQ(e.substr(0, head.size()), head) << e;
  ASSERT_GE(e.size(), head.size() + 8);
  EXPECT_EQ(e.substr(e.size() - 8), " or more") << e;
  EXPECT_GT(std::stoll(e.substr(head.size())), 784 + (64LL << 20)) << e;
  EXPECT_LT(peak_rss_kb() - before, 32 * 1024) << "KB of peak RSS grew reading it";
}

TEST_F(IdxTest, GzHeaderAnnouncingMoreThanTheMachineHasIsRefused) {
  write_gz(path("huge.gz"), header({0xFFFFFFFFu, 0xFFFFu}));
  const std::string e = error_of(path("huge.gz"));
  EXPECT_NE(e.find(path("huge.gz") + ": header says 281470681677825 bytes of data, more than "
                                     "this machine's memory ("),
            std::string::npos)
      << e;
}

TEST_F(IdxTest, TruncatedHeader) {
  std::vector<uint8_t> bytes = header({3, 2, 5});
  bytes.resize(9);
  write_bytes(path("h"), bytes);
  EXPECT_NE(error_of(path("h")).find("too short"), std::string::npos) << error_of(path("h"));
  write_bytes(path("e"), {});
  EXPECT_NE(error_of(path("e")).find("too short"), std::string::npos) << error_of(path("e"));
}

TEST_F(IdxTest, TrailingBytes) {
  std::vector<uint8_t> bytes = header({3, 2, 5});
  bytes.resize(bytes.size() + 31, 7);
  write_bytes(path("t"), bytes);
  const std::string e = error_of(path("t"));
  EXPECT_NE(e.find(path("t")), std::string::npos) << e;
  EXPECT_NE(e.find("trailing bytes"), std::string::npos) << e;
}

TEST_F(IdxTest, WrongMagic) {
  std::vector<uint8_t> bytes = header({2});
  bytes[0] = 0x12;
  bytes.push_back(1);
  bytes.push_back(2);
  write_bytes(path("m"), bytes);
  const std::string e = error_of(path("m"));
  EXPECT_NE(e.find(path("m")), std::string::npos) << e;
  EXPECT_NE(e.find("bad magic"), std::string::npos) << e;
}

TEST_F(IdxTest, WrongTypeCode) {
  std::vector<uint8_t> bytes = header({2}, 0x0D);
  bytes.resize(bytes.size() + 8, 0);
  write_bytes(path("f"), bytes);
  const std::string e = error_of(path("f"));
  EXPECT_NE(e.find("0x0D (float)"), std::string::npos) << e;
  EXPECT_NE(e.find("0x08"), std::string::npos) << e;
}

TEST_F(IdxTest, BadRankAndZeroDimension) {
  std::vector<uint8_t> r0 = {0, 0, 8, 0};
  write_bytes(path("r0"), r0);
  EXPECT_NE(error_of(path("r0")).find("rank 0"), std::string::npos) << error_of(path("r0"));
  std::vector<uint8_t> r5 = header({1, 1, 1, 1, 1});
  r5.push_back(0);
  write_bytes(path("r5"), r5);
  EXPECT_NE(error_of(path("r5")).find("rank 5"), std::string::npos) << error_of(path("r5"));
  write_bytes(path("z"), header({3, 0}));
  EXPECT_NE(error_of(path("z")).find("dimension 1 is zero"), std::string::npos)
      << error_of(path("z"));
}

TEST_F(IdxTest, HugeDimensionsAreTruncatedNotOverflowed) {
  write_bytes(path("huge"), header({0xffffffffu, 0xffffffffu, 0xffffffffu}));
  const std::string e = error_of(path("huge"));
  EXPECT_NE(e.find("overflow"), std::string::npos) << e;
  write_bytes(path("big"), header({0xffffffffu, 0xffffffffu}));
  EXPECT_NE(error_of(path("big")).find("truncated"), std::string::npos) << error_of(path("big"));
}

TEST_F(IdxTest, MissingFile) {
  const std::string e = error_of(path("nope-idx3-ubyte"));
  EXPECT_NE(e.find(path("nope-idx3-ubyte")), std::string::npos) << e;
  EXPECT_NE(e.find("cannot open"), std::string::npos) << e;
  EXPECT_NE(e.find("No such file"), std::string::npos) << e;
}

TEST_F(IdxTest, NotGzipAndCorruptGzip) {
  write_bytes(path("plain.gz"), header({1}));
  EXPECT_NE(error_of(path("plain.gz")).find("not a gzip file"), std::string::npos)
      << error_of(path("plain.gz"));

  write_idx(path("c.gz"), sample());
  std::vector<uint8_t> bytes;
  {
    std::ifstream f(path("c.gz"), std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(f), {});
  }
  std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<long>(bytes.size() / 2));
  write_bytes(path("cut.gz"), cut);
  EXPECT_NE(error_of(path("cut.gz")).find("corrupt gzip"), std::string::npos)
      << error_of(path("cut.gz"));
  std::vector<uint8_t> flipped = bytes;
  for (size_t i = 12; i < flipped.size() - 8; ++i) flipped[i] ^= 0x5a;
  write_bytes(path("flip.gz"), flipped);
  EXPECT_NE(error_of(path("flip.gz")).find("corrupt gzip"), std::string::npos)
      << error_of(path("flip.gz"));
}

TEST_F(IdxTest, WriteRejectsInconsistentArray) {
  IdxArray a;
  a.dims = {2, 2};
  a.data = {1, 2, 3};
  EXPECT_THROW(write_idx(path("bad"), a), Error);
  a.dims = {};
  EXPECT_THROW(write_idx(path("bad"), a), Error);
}

}  // namespace
}  // namespace dpcnn
