#include "launcher/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace dpcnn::launcher {
namespace {

[[noreturn]] void fail(const std::string& path, int err) {
  throw std::runtime_error("cannot write '" + path + "': " + strerror(err));
}

std::string parent_of(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

void write_file_checked(const std::string& path, const std::string& text, mode_t mode) {
  // The pid in the name: two processes never share a temp file.
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) fail(path, errno);
  int err = fchmod(fd, mode) == 0 ? 0 : errno;  // whatever the umask
  for (size_t done = 0; err == 0 && done < text.size();) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      err = n < 0 ? errno : ENOSPC;
    else
      done += static_cast<size_t>(n);
  }
  // A full disk may only show at fsync or close (delayed allocation, NFS).
  if (err == 0 && fsync(fd) != 0) err = errno;
  if (close(fd) != 0 && err == 0) err = errno;
  if (err == 0 && rename(tmp.c_str(), path.c_str()) != 0) err = errno;
  if (err != 0) {
    unlink(tmp.c_str());
    fail(path, err);
  }
  // The rename itself is durable once the directory is.
  const int dir = open(parent_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    const bool synced = fsync(dir) == 0;
    const int e = errno;
    close(dir);
    if (!synced) fail(path, e);
  }
}

std::string read_first_line(const std::string& path) {
  std::ifstream f(path);
  std::string s;
  std::getline(f, s);
  return s;
}

}  // namespace dpcnn::launcher
