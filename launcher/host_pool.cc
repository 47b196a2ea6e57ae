#include "launcher/host_pool.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <future>
#include <regex>
#include <set>
#include <sstream>

#include "core/error.h"

namespace dpcnn::launcher {

namespace {

bool is_address(const std::string& s) {
  return s.find_first_not_of("0123456789.") == std::string::npos ||
         s.find(':') != std::string::npos;
}

// node01 and node01.cluster.local are one host; 10.0.0.1 and 10.0.0.2 are not.
bool same_host(const std::string& a, const std::string& b) {
  if (a == b) return true;
  if (is_address(a) || is_address(b)) return false;
  return a.substr(0, a.find('.')) == b.substr(0, b.find('.'));
}

// 3000 ms -> "3", 2500 ms -> "2.5".
std::string seconds_text(int ms) {
  char b[32];
  std::snprintf(b, sizeof b, "%g", ms / 1000.0);
  return b;
}

}  // namespace

std::vector<HostSpec> read_hostfile(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw InputError("cannot read hostfile '" + path + "'");
  std::vector<HostSpec> hosts;
  std::string line;
  for (int n = 1; std::getline(f, line); ++n) {
    const std::string where = path + ":" + std::to_string(n) + ": ";
    if (const auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    std::istringstream in(line);
    HostSpec h;
    if (!(in >> h.name)) continue;
    if (h.name.find('=') != std::string::npos)
      throw InputError(where + "expected a host name first, got '" + h.name + "'");
    std::string field;
    while (in >> field) {
      const auto eq = field.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == field.size())
        throw InputError(where + "expected key=value after the host name (slots=N), got '" + field +
                         "'");
      if (field.compare(0, eq, "slots") == 0) {
        const std::string v = field.substr(eq + 1);
        if (v.find_first_not_of("0123456789") != std::string::npos || v.size() > 4 ||
            std::stoi(v) < 1)
          throw InputError(where + "slots must be a positive integer, got '" + v + "'");
        h.slots = std::stoi(v);
      } else {
        h.extra += (h.extra.empty() ? "" : " ") + field;
      }
    }
    for (const auto& seen : hosts)
      if (seen.name == h.name)
        throw InputError(where + "host '" + h.name + "' is listed twice (give it slots=N once)");
    hosts.push_back(h);
  }
  if (hosts.empty()) throw InputError("hostfile '" + path + "' lists no hosts");
  return hosts;
}

std::string probe_host(const std::string& host, int port, std::chrono::milliseconds timeout) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (const int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res); rc)
    return std::string("name does not resolve (") + gai_strerror(rc) + ")";
  std::string why = "no address";
  const int ms = static_cast<int>(timeout.count());
  for (addrinfo* a = res; a; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      why = std::string("socket: ") + strerror(errno);
      continue;
    }
    int err = connect(fd, a->ai_addr, a->ai_addrlen) == 0 ? 0 : errno;
    if (err == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int n;
      do n = poll(&p, 1, ms);
      while (n < 0 && errno == EINTR);
      socklen_t len = sizeof err;
      if (n <= 0)
        err = ETIMEDOUT;
      else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    }
    close(fd);
    // A refusal comes from the host's own kernel: it is there.
    if (err == 0 || err == ECONNREFUSED) {
      freeaddrinfo(res);
      return "";
    }
    // The launcher's key is named: a user whose hosts filter this port sees
    // what to change.
    const std::string on_port = "TCP port " + std::to_string(port) + " (launcher.probe_port)";
    why = err == ETIMEDOUT ? "no answer on " + on_port + " within " + seconds_text(ms) + " s"
                           : std::string(strerror(err)) + " on " + on_port;
  }
  freeaddrinfo(res);
  return why;
}

std::vector<std::string> probe_all(const std::vector<std::string>& hosts,
                                   const HostPool::Probe& probe) {
  std::vector<std::future<std::string>> running;
  for (const auto& h : hosts) running.push_back(std::async(std::launch::async, probe, h));
  std::vector<std::string> out;
  for (auto& r : running) out.push_back(r.get());
  return out;
}

HostPool::HostPool(std::vector<HostSpec> hosts) {
  for (auto& h : hosts) hosts_.push_back({std::move(h)});
}

int HostPool::live_ranks() const {
  int n = 0;
  for (const auto& h : hosts_) n += h.live ? h.spec.slots : 0;
  return n;
}

int HostPool::total_ranks() const {
  int n = 0;
  for (const auto& h : hosts_) n += h.spec.slots;
  return n;
}

std::vector<std::string> HostPool::live_hosts() const {
  std::vector<std::string> out;
  for (const auto& h : hosts_)
    if (h.live) out.push_back(h.spec.name);
  return out;
}

std::vector<std::string> HostPool::lost_hosts() const {
  std::vector<std::string> out;
  for (const auto& h : hosts_)
    if (!h.live) out.push_back(h.spec.name);
  return out;
}

bool HostPool::any_retryable() const {
  return std::any_of(hosts_.begin(), hosts_.end(),
                     [](const Host& h) { return !h.live && h.retryable; });
}

std::string HostPool::hostfile_text() const {
  std::string out =
      "# written by dpcnn-launch (launcher.elastic): the live hosts of the hostfile\n";
  for (const auto& h : hosts_)
    if (h.live)
      out += h.spec.name + " slots=" + std::to_string(h.spec.slots) +
             (h.spec.extra.empty() ? "" : " " + h.spec.extra) + "\n";
  return out;
}

int HostPool::host_of_rank(int rank) const {
  if (rank < 0) return -1;
  for (size_t i = 0; i < hosts_.size(); ++i) {
    if (!hosts_[i].live) continue;
    if (rank < hosts_[i].spec.slots) return static_cast<int>(i);
    rank -= hosts_[i].spec.slots;
  }
  return -1;
}

int HostPool::index_of(const std::string& name) const {
  for (size_t i = 0; i < hosts_.size(); ++i)
    if (same_host(hosts_[i].spec.name, name)) return static_cast<int>(i);
  return -1;
}

std::vector<int> HostPool::blame(const std::vector<std::string>& lines) const {
  // The worker's line, mpirun's note of a dead rank, and ORTE's lost daemon.
  static const std::regex worker(R"(^rank (\d+) on ([^\s:]+):)");
  static const std::regex noticed(R"(process rank (\d+) with PID \d+ on node (\S+))");
  static const std::regex daemon(R"(Remote daemon:\s*\S+ on node (\S+))");
  std::set<int> out;
  std::smatch m;
  for (const auto& l : lines) {
    int rank = -1;
    std::string node;
    if (std::regex_search(l, m, worker) || std::regex_search(l, m, noticed)) {
      rank = std::stoi(m[1].str().substr(0, 9));
      node = m[2].str();
    } else if (std::regex_search(l, m, daemon)) {
      node = m[1].str();
    } else {
      continue;
    }
    int i = index_of(node);
    if (i < 0) i = host_of_rank(rank);
    if (i >= 0) out.insert(i);
  }
  return {out.begin(), out.end()};
}

std::vector<HostEvent> HostPool::after_failure(const std::vector<std::string>& lines,
                                               const Probe& probe) {
  std::vector<int> live;
  std::vector<std::string> names;
  for (size_t i = 0; i < hosts_.size(); ++i)
    if (hosts_[i].live) live.push_back(static_cast<int>(i)), names.push_back(hosts_[i].spec.name);
  const std::vector<std::string> answers = probe_all(names, probe);
  std::vector<HostEvent> changes;
  for (size_t k = 0; k < live.size(); ++k) {
    if (answers[k].empty()) continue;
    Host& h = hosts_[live[k]];
    h.live = false;
    h.retryable = true;
    h.failures = 0;
    changes.push_back({h.spec.name, true, "unreachable: " + answers[k]});
  }
  // Every host answers: the failure is in the ranks, and the output says whose.
  if (!changes.empty()) return changes;
  const std::vector<int> blamed = blame(lines);
  for (int i : live) {
    Host& h = hosts_[i];
    if (std::find(blamed.begin(), blamed.end(), i) == blamed.end()) {
      h.failures = 0;
      continue;
    }
    if (++h.failures < kFailuresToLeaveOut) continue;
    h.live = false;
    h.retryable = false;
    changes.push_back({h.spec.name, true,
                       "its ranks failed in " + std::to_string(h.failures) +
                           " attempts in a row (left out for the rest of the job)"});
  }
  return changes;
}

std::vector<std::string> HostPool::retryable_lost() const {
  std::vector<std::string> out;
  for (const auto& h : hosts_)
    if (!h.live && h.retryable) out.push_back(h.spec.name);
  return out;
}

std::vector<HostEvent> HostPool::take_back(const std::vector<std::string>& hosts) {
  std::vector<HostEvent> changes;
  for (const auto& name : hosts) {
    const int i = index_of(name);
    if (i < 0 || hosts_[i].live) continue;
    hosts_[i].live = true;
    hosts_[i].failures = 0;
    changes.push_back({hosts_[i].spec.name, false, "answers again"});
  }
  return changes;
}

}  // namespace dpcnn::launcher
