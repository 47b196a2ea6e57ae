#include "data/idx.h"

#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>

#include "core/error.h"

namespace dpcnn {
namespace {

constexpr uint8_t kTypeUnsignedByte = 0x08;
constexpr int kMaxRank = 4;

bool ends_with_gz(const std::string& path) {
  return path.size() >= 3 && path.compare(path.size() - 3, 3, ".gz") == 0;
}

std::string type_name(uint8_t t) {
  switch (t) {
    case 0x08:
      return "unsigned byte";
    case 0x09:
      return "signed byte";
    case 0x0B:
      return "short";
    case 0x0C:
      return "int";
    case 0x0D:
      return "float";
    case 0x0E:
      return "double";
    default:
      return "unknown";
  }
}

std::string hex_byte(uint8_t b) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02X", b);
  return buf;
}

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

// Reads the whole file into a buffer sized once from fstat: growing a vector
// while reading would briefly hold two copies of a 47 MB training set.
std::vector<uint8_t> read_raw(const std::string& path) {
  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  if (!f) throw InputError(errno_message(path + ": cannot open"));
  struct stat st {};
  if (fstat(fileno(f.get()), &st) != 0) throw InputError(errno_message(path + ": cannot stat"));
  std::vector<uint8_t> bytes(S_ISREG(st.st_mode) ? static_cast<size_t>(st.st_size) : 0);
  size_t have = std::fread(bytes.data(), 1, bytes.size(), f.get());
  bytes.resize(have);
  uint8_t buf[1 << 16];  // not a regular file, or it grew meanwhile
  size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, f.get())) > 0)
    bytes.insert(bytes.end(), buf, buf + got);
  if (std::ferror(f.get())) throw InputError(errno_message(path + ": read failed"));
  return bytes;
}

uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// An IDX header: its length in bytes, its dimensions, and the bytes of data
// they announce.
struct IdxHeader {
  size_t length = 0;
  uint64_t data_bytes = 0;
  std::vector<uint32_t> dims;
};

// Reads the header at the start of the n bytes at `b`. False while fewer
// bytes than the header's are there (`complete`: no more will come, which is
// an error then); throws for a header that cannot be an IDX file's.
bool parse_header(const uint8_t* b, size_t n, bool complete, const std::string& path,
                  IdxHeader* h) {
  if (n < 4) {
    if (!complete) return false;
    throw InputError(path + ": too short for an IDX header (" + std::to_string(n) + " bytes)");
  }
  if (b[0] != 0 || b[1] != 0)
    throw InputError(path + ": not an IDX file (bad magic " + hex_byte(b[0]) + " " +
                     hex_byte(b[1]) + ", expected 0x00 0x00)");
  const uint8_t type = b[2];
  if (type != kTypeUnsignedByte)
    throw InputError(path + ": IDX type " + hex_byte(type) + " (" + type_name(type) +
                     ") is not supported, expected 0x08 (unsigned byte)");
  const int rank = b[3];
  if (rank < 1 || rank > kMaxRank)
    throw InputError(path + ": IDX rank " + std::to_string(rank) + " is not in 1.." +
                     std::to_string(kMaxRank));
  h->length = 4 + 4 * static_cast<size_t>(rank);
  if (n < h->length) {
    if (!complete) return false;
    throw InputError(path + ": too short for an IDX header of rank " + std::to_string(rank) + " (" +
                     std::to_string(n) + " bytes, need " + std::to_string(h->length) + ")");
  }
  h->data_bytes = 1;
  h->dims.clear();
  for (int i = 0; i < rank; ++i) {
    const uint32_t d = be32(b + 4 + 4 * i);
    if (d == 0) throw InputError(path + ": IDX dimension " + std::to_string(i) + " is zero");
    if (h->data_bytes > std::numeric_limits<uint64_t>::max() / d)
      throw InputError(path + ": IDX dimensions overflow (product too large)");
    h->data_bytes *= d;
    h->dims.push_back(d);
  }
  return true;
}

// Inflates a gzip file (concatenated members allowed) holding an IDX file.
// gzread would pass a non-gzip file through unchanged, so the stream is
// inflated here to reject it. Memory is bounded by what the IDX header
// announces, not by what the stream inflates to: past it the bytes are only
// counted (into *extra, up to 64 MiB), so a gzip bomb cannot fill the machine.
std::vector<uint8_t> read_gz(const std::string& path, uint64_t* extra) {
  const std::vector<uint8_t> in = read_raw(path);
  if (in.size() < 2 || in[0] != 0x1f || in[1] != 0x8b)
    throw InputError(path + ": not a gzip file (name ends in .gz but no gzip header)");
  std::vector<uint8_t> out;
  IdxHeader h;
  uint64_t want = std::numeric_limits<uint64_t>::max();  // header + data, once known
  *extra = 0;
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 16) != Z_OK) throw InputError(path + ": zlib inflateInit failed");
  struct End {
    z_stream* z;
    ~End() { inflateEnd(z); }
  } end{&zs};
  size_t consumed = 0;
  uint8_t buf[1 << 16];
  for (;;) {
    if (zs.avail_in == 0 && consumed < in.size()) {
      const size_t chunk = std::min<size_t>(in.size() - consumed, 1u << 30);
      zs.next_in = const_cast<Bytef*>(in.data() + consumed);
      zs.avail_in = static_cast<uInt>(chunk);
      consumed += chunk;
    }
    zs.next_out = buf;
    zs.avail_out = sizeof buf;
    const int rc = inflate(&zs, Z_NO_FLUSH);
    const size_t got = sizeof buf - zs.avail_out;
    const size_t keep = static_cast<size_t>(std::min<uint64_t>(got, want - out.size()));
    out.insert(out.end(), buf, buf + keep);
    *extra += got - keep;
    if (want == std::numeric_limits<uint64_t>::max() &&
        parse_header(out.data(), out.size(), false, path, &h)) {
      want = h.length + h.data_bytes;
      const uint64_t memory = static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) *
                              static_cast<uint64_t>(sysconf(_SC_PAGE_SIZE));
      if (want > memory)
        throw InputError(path + ": header says " + std::to_string(h.data_bytes) +
                         " bytes of data, more than this machine's memory (" +
                         std::to_string(memory) + " bytes)");
      // Deflate expands at most about 1032:1: no honest file needs more.
      out.reserve(static_cast<size_t>(std::min<uint64_t>(want, uint64_t{1032} * in.size() + 4096)));
      if (out.size() > want) {
        *extra += out.size() - want;
        out.resize(static_cast<size_t>(want));
      }
    }
    if (*extra > (64u << 20)) break;  // enough to say there is too much
    if (rc == Z_STREAM_END) {
      // Another gzip member may follow (as `cat a.gz b.gz` produces).
      if (zs.avail_in == 0 && consumed == in.size()) break;
      if (inflateReset(&zs) != Z_OK) break;
      continue;
    }
    if (rc == Z_BUF_ERROR && zs.avail_in == 0 && consumed == in.size())
      throw InputError(path + ": corrupt gzip data (compressed stream ends early)");
    if (rc != Z_OK && rc != Z_BUF_ERROR)
      throw InputError(path + ": corrupt gzip data (" +
                       (zs.msg ? zs.msg : "error " + std::to_string(rc)) + ")");
  }
  return out;
}

void put_be32(std::vector<uint8_t>& v, uint32_t x) {
  v.push_back(static_cast<uint8_t>(x >> 24));
  v.push_back(static_cast<uint8_t>(x >> 16));
  v.push_back(static_cast<uint8_t>(x >> 8));
  v.push_back(static_cast<uint8_t>(x));
}

}  // namespace

IdxArray read_idx(const std::string& path) {
  uint64_t extra = 0;  // inflated bytes past what the header announces, not kept
  std::vector<uint8_t> bytes = ends_with_gz(path) ? read_gz(path, &extra) : read_raw(path);
  IdxHeader h;
  parse_header(bytes.data(), bytes.size(), true, path, &h);
  const uint64_t have = bytes.size() - h.length + extra;
  if (have < h.data_bytes)
    throw InputError(path + ": truncated: header says " + std::to_string(h.data_bytes) +
                     " bytes of data, file has " + std::to_string(have));
  if (have > h.data_bytes)
    throw InputError(path + ": trailing bytes: header says " + std::to_string(h.data_bytes) +
                     " bytes of data, file has " + std::to_string(have) +
                     (extra > (64u << 20) ? " or more" : ""));
  bytes.erase(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(h.length));
  IdxArray a;
  a.dims = std::move(h.dims);
  a.data = std::move(bytes);
  return a;
}

void write_idx(const std::string& path, const IdxArray& a) {
  if (a.dims.empty() || a.dims.size() > kMaxRank)
    throw Error(path + ": cannot write IDX of rank " + std::to_string(a.dims.size()));
  uint64_t total = 1;
  for (uint32_t d : a.dims) {
    if (d == 0) throw Error(path + ": cannot write IDX with a zero dimension");
    if (total > std::numeric_limits<uint64_t>::max() / d)
      throw Error(path + ": IDX dimensions overflow (product too large)");
    total *= d;
  }
  if (total != a.data.size())
    throw Error(path + ": cannot write IDX: dims give " + std::to_string(total) +
                " bytes but data has " + std::to_string(a.data.size()));
  std::vector<uint8_t> header = {0, 0, kTypeUnsignedByte, static_cast<uint8_t>(a.dims.size())};
  for (uint32_t d : a.dims) put_be32(header, d);

  if (ends_with_gz(path)) {
    gzFile gz = gzopen(path.c_str(), "wb");
    if (!gz) throw Error(errno_message(path + ": cannot open for writing"));
    bool ok = gzwrite(gz, header.data(), static_cast<unsigned>(header.size())) ==
              static_cast<int>(header.size());
    for (size_t off = 0; ok && off < a.data.size();) {
      const unsigned chunk = static_cast<unsigned>(std::min<size_t>(a.data.size() - off, 1u << 30));
      ok = gzwrite(gz, a.data.data() + off, chunk) == static_cast<int>(chunk);
      off += chunk;
    }
    if (gzclose(gz) != Z_OK || !ok) throw Error(path + ": gzip write failed");
    return;
  }
  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(path.c_str(), "wb"));
  if (!f) throw Error(errno_message(path + ": cannot open for writing"));
  if (std::fwrite(header.data(), 1, header.size(), f.get()) != header.size() ||
      std::fwrite(a.data.data(), 1, a.data.size(), f.get()) != a.data.size())
    throw Error(errno_message(path + ": write failed"));
  std::FILE* raw = f.release();
  if (std::fclose(raw) != 0) throw Error(errno_message(path + ": write failed"));
}

}  // namespace dpcnn
