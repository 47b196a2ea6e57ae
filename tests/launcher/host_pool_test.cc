// The elastic launcher's host tracking (launcher/host_pool.h), without a
// cluster: hostfiles read from real files, which host a failed attempt's
// output blames (rank -> host by slots, node names), when a host is left out
// and taken back, and the real TCP probe against loopback.
#include "launcher/host_pool.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace dpcnn::launcher {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string write_tmp(const std::string& text) {
  static int n = 0;
  const fs::path p = fs::temp_directory_path() /
                     ("dpcnn-hostfile-" + std::to_string(getpid()) + "-" + std::to_string(n++));
  std::ofstream(p) << text;
  return p.string();
}

std::string read_error(const std::string& text) {
  const std::string path = write_tmp(text);
  try {
    read_hostfile(path);
  } catch (const std::exception& e) {
    fs::remove(path);
    std::string m = e.what();
    const auto at = m.find(path);
    return at == std::string::npos ? m : m.substr(0, at) + "F" + m.substr(at + path.size());
  }
  fs::remove(path);
  return "";
}

// a: ranks 0-1, b: rank 2, c: ranks 3-4.
HostPool abc() { return HostPool({{"a", 2, ""}, {"b", 1, ""}, {"c", 2, "max_slots=2"}}); }

HostPool::Probe answers_except(const std::string& dead) {
  return [dead](const std::string& h) { return h == dead ? std::string("no answer") : ""; };
}
const HostPool::Probe all_answer = answers_except("");

TEST(HostPool, ReadsOpenMpiHostfiles) {
  const std::string path =
      write_tmp("# cluster\n10.0.0.1 slots=2\n\nnode2   # one slot\nnode3 slots=4 max_slots=4\n");
  const std::vector<HostSpec> h = read_hostfile(path);
  fs::remove(path);
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h[0].name, "10.0.0.1");
  EXPECT_EQ(h[0].slots, 2);
  EXPECT_EQ(h[1].name, "node2");
  EXPECT_EQ(h[1].slots, 1);
  EXPECT_EQ(h[2].slots, 4);
  EXPECT_EQ(h[2].extra, "max_slots=4");
  EXPECT_EQ(HostPool(h).total_ranks(), 7);
}

TEST(HostPool, BadHostfilesNameFileAndLine) {
  EXPECT_EQ(read_error("a slots=0\n"), "F:1: slots must be a positive integer, got '0'");
  EXPECT_EQ(read_error("a\nb slots=x\n"), "F:2: slots must be a positive integer, got 'x'");
  EXPECT_EQ(read_error("a 4\n"), "F:1: expected key=value after the host name (slots=N), got '4'");
  EXPECT_EQ(read_error("a\nb\na slots=2\n"),
            "F:3: host 'a' is listed twice (give it slots=N once)");
  EXPECT_EQ(read_error("slots=2\n"), "F:1: expected a host name first, got 'slots=2'");
  EXPECT_EQ(read_error("# nothing\n"), "hostfile 'F' lists no hosts");
  EXPECT_NE(read_error("").find("lists no hosts"), std::string::npos);
}

TEST(HostPool, RanksFillHostsInOrderBySlots) {
  HostPool p = abc();
  const int want[] = {0, 0, 1, 2, 2, -1};
  for (int r = 0; r < 6; ++r) EXPECT_EQ(p.host_of_rank(r), want[r]) << "rank " << r;
  EXPECT_EQ(p.hostfile_text().substr(p.hostfile_text().find('\n') + 1),
            "a slots=2\nb slots=1\nc slots=2 max_slots=2\n");
  // b gone: rank 2 is c's first.
  p.after_failure({}, answers_except("b"));
  EXPECT_EQ(p.live_ranks(), 4);
  EXPECT_EQ(p.host_of_rank(2), 2);
  EXPECT_EQ(p.hostfile_text().substr(p.hostfile_text().find('\n') + 1),
            "a slots=2\nc slots=2 max_slots=2\n");
}

TEST(HostPool, BlamesTheHostOfTheFailedRank) {
  const HostPool p = abc();
  // The worker's own line names its hostname, which the hostfile may not
  // (addresses there): the rank decides.
  EXPECT_EQ(p.blame({"rank 3 on node-c.local: data: cannot read 'x'"}), std::vector<int>{2});
  EXPECT_EQ(p.blame({"rank 2 on b: out of memory"}), std::vector<int>{1});
  EXPECT_EQ(p.blame({"mpirun noticed that process rank 1 with PID 4242 on node a exited on "
                     "signal 9 (Killed)."}),
            std::vector<int>{0});
  EXPECT_EQ(p.blame({"ORTE has lost communication with a remote daemon.", "",
                     "  HNP daemon   : [[4093,0],0] on node a",
                     "  Remote daemon: [[4093,0],2] on node c.cluster.example"}),
            std::vector<int>{2});
  // Several lines about one host blame it once; lines about nothing, nobody.
  EXPECT_EQ(p.blame({"rank 4 on c: x", "rank 3 on c: y"}), std::vector<int>{2});
  EXPECT_TRUE(p.blame({"dpcnn-train: something", "rank 9 on zz: beyond every slot"}).empty());
}

TEST(HostPool, UnreachableHostsAreLeftOutAndTakenBack) {
  HostPool p = abc();
  const std::vector<HostEvent> lost = p.after_failure({"rank 0 on a: x"}, answers_except("c"));
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_EQ(lost[0].host, "c");
  EXPECT_TRUE(lost[0].lost);
  EXPECT_EQ(lost[0].reason, "unreachable: no answer");
  EXPECT_EQ(p.live_hosts(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(p.lost_hosts(), std::vector<std::string>{"c"});
  EXPECT_EQ(p.live_ranks(), 3);
  // The unreachable one is what failed: a's blame from the same output is not counted.
  EXPECT_TRUE(p.after_failure({"rank 0 on a: x"}, all_answer).empty());
  EXPECT_EQ(p.live_ranks(), 3) << "one blame of a is not enough";
  EXPECT_EQ(p.retryable_lost(), std::vector<std::string>{"c"});
  const std::vector<HostEvent> back = p.take_back({"c"});
  ASSERT_EQ(back.size(), 1u);
  EXPECT_FALSE(back[0].lost);
  EXPECT_EQ(p.live_ranks(), 5);
  EXPECT_TRUE(p.take_back({"c", "nope"}).empty());
}

TEST(HostPool, RanksFailingTwiceInARowLeaveTheirHostOut) {
  HostPool p = abc();
  EXPECT_TRUE(p.after_failure({"rank 2 on b: bad disk"}, all_answer).empty());
  // Another host's failure in between: b starts counting again.
  EXPECT_TRUE(p.after_failure({"rank 0 on a: bad"}, all_answer).empty());
  EXPECT_TRUE(p.after_failure({"rank 2 on b: bad disk"}, all_answer).empty());
  const std::vector<HostEvent> out = p.after_failure({"rank 2 on b: bad disk"}, all_answer);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].host, "b");
  EXPECT_NE(out[0].reason.find("failed in 2 attempts in a row"), std::string::npos);
  EXPECT_EQ(p.live_ranks(), 4);
  // It answers probes, so probing cannot bring it back.
  EXPECT_FALSE(p.any_retryable());
  EXPECT_TRUE(p.retryable_lost().empty());
  // A failure that names no host blames nobody.
  EXPECT_TRUE(p.after_failure({"mpirun: something odd"}, all_answer).empty());
  EXPECT_EQ(p.live_ranks(), 4);
}

// The real probe: a refusal counts as an answer (the host is there), a name
// that does not resolve does not.
TEST(HostPool, ProbeAnswersOnLoopback) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  const int port = ntohs(a.sin_port);
  EXPECT_EQ(probe_host("127.0.0.1", port, 2000ms), "");
  close(fd);  // nothing listens now: refused, still an answer
  EXPECT_EQ(probe_host("127.0.0.1", port, 2000ms), "");
  EXPECT_NE(probe_host("no-such-host.invalid", 22, 2000ms).find("does not resolve"),
            std::string::npos);
}

}  // namespace
}  // namespace dpcnn::launcher
