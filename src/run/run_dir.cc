#include "run/run_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"

namespace dpcnn {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kPrefix = "version_";

// N of "version_<N>", or -1 for any other name.
long version_number(const std::string& name) {
  if (name.size() <= kPrefix.size() || name.compare(0, kPrefix.size(), kPrefix) != 0) return -1;
  long n = 0;
  for (size_t i = kPrefix.size(); i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9' || n > 100000000) return -1;
    n = n * 10 + (name[i] - '0');
  }
  return n;
}

long highest_version(const std::string& experiment_dir) {
  long best = -1;
  std::error_code ec;
  for (fs::directory_iterator it(experiment_dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->is_directory(ec)) best = std::max(best, version_number(it->path().filename()));
  return best;
}

void point_latest(const std::string& experiment_dir, const std::string& version) {
  // symlink to a temp name, then rename over `latest`: readers never see none.
  const std::string link = experiment_dir + "/latest";
  const std::string tmp = link + ".tmp-" + std::to_string(::getpid());
  ::unlink(tmp.c_str());
  if (::symlink(version.c_str(), tmp.c_str()) != 0 || ::rename(tmp.c_str(), link.c_str()) != 0) {
    const std::string msg = errno_message("cannot point '" + link + "' at " + version);
    ::unlink(tmp.c_str());
    throw Error(msg);
  }
}

}  // namespace

std::string newest_run(const std::string& experiment_dir) {
  const long n = highest_version(experiment_dir);
  return n < 0 ? "" : experiment_dir + "/" + std::string(kPrefix) + std::to_string(n);
}

namespace {

bool has_checkpoints(const std::string& run_dir) {
  std::error_code ec;
  for (fs::directory_iterator it(run_dir + "/checkpoints", ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string n = it->path().filename();
    if (n.rfind("ckpt-", 0) == 0 && n.size() > 8 && n.compare(n.size() - 3, 3, ".pb") == 0)
      return true;
  }
  return false;
}

}  // namespace

std::string newest_run_with_checkpoint(const std::string& experiment_dir) {
  std::vector<std::pair<long, std::string>> runs;
  std::error_code ec;
  for (fs::directory_iterator it(experiment_dir, ec), end; !ec && it != end; it.increment(ec)) {
    const long n = version_number(it->path().filename());
    if (n >= 0 && it->is_directory(ec) && !it->is_symlink(ec))
      runs.push_back({n, it->path().string()});
  }
  std::sort(runs.rbegin(), runs.rend());
  for (const auto& run : runs)
    if (has_checkpoints(run.second)) return run.second;
  return has_checkpoints(experiment_dir) ? experiment_dir : "";
}

std::string create_run(const std::string& experiment_dir) {
  std::error_code ec;
  fs::create_directories(experiment_dir, ec);
  if (ec) throw Error("cannot create '" + experiment_dir + "': " + ec.message());
  for (long n = highest_version(experiment_dir) + 1;; ++n) {
    const std::string name = std::string(kPrefix) + std::to_string(n);
    const std::string dir = experiment_dir + "/" + name;
    if (::mkdir(dir.c_str(), 0755) == 0) {
      // Concurrent creators may rename their links in either order: each
      // points `latest` at the highest version it sees and checks again, so
      // the last rename always names the newest.
      for (int tries = 0; tries < 100; ++tries) {
        const std::string want = "version_" + std::to_string(highest_version(experiment_dir));
        point_latest(experiment_dir, want);
        std::error_code ec;
        if (fs::read_symlink(experiment_dir + "/latest", ec).string() == want &&
            "version_" + std::to_string(highest_version(experiment_dir)) == want)
          break;
      }
      return dir;
    }
    if (errno != EEXIST) throw Error(errno_message("cannot create run directory '" + dir + "'"));
  }
}

std::string run_of(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(path, ec);
  if (ec) p = fs::absolute(path);
  for (; !p.empty() && p != p.root_path(); p = p.parent_path())
    if (version_number(p.filename()) >= 0 && fs::is_directory(p, ec)) return p.string();
  return "";
}

RunLock RunLock::acquire(const std::string& run_dir, const std::string& command) {
  const std::string path = run_dir + "/run.lock";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(errno_message("cannot open '" + path + "'"));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    if (err != EWOULDBLOCK) throw Error(errno_message("cannot lock '" + path + "'"));
    std::string who = holder(run_dir);
    throw BusyError("run directory '" + run_dir + "' is in use by " +
                    (who.empty() ? std::string("another process") : who) + " (" + path +
                    " is locked)");
  }
  // Ours now: record who we are for the next one who finds it locked.
  const std::string text = "pid " + std::to_string(::getpid()) + " " + command + "\n";
  if (::ftruncate(fd, 0) != 0 ||
      ::pwrite(fd, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size())) {
    const std::string msg = errno_message("cannot write '" + path + "'");
    ::close(fd);
    throw Error(msg);
  }
  RunLock lock;
  lock.fd_ = fd;
  return lock;
}

std::string RunLock::holder(const std::string& run_dir) {
  const int fd = ::open((run_dir + "/run.lock").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  char buf[512];
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  std::string s(buf, n > 0 ? static_cast<size_t>(n) : 0);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\0')) s.pop_back();
  return s;
}

RunLock::RunLock(RunLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }

RunLock& RunLock::operator=(RunLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the flock
}

}  // namespace dpcnn
