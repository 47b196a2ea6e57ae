// cluster/linkemu.c, the userspace link emulator of cluster/bench-links.sh (for
// kernels without sch_netem), between two virtual hosts: traffic to the other
// host's emulated address goes through it, a round trip takes at least twice
// the one-way delay, a bulk transfer no less than its bytes at the rate, and
// SIGTERM ends it cleanly with its counters. Lower bounds only: a loaded
// machine can make the link slower, never faster.
#include "vcluster_fixture.h"

namespace dpcnn::multihost {
namespace {

using LinkEmu = MultiHost;

double value_after(const std::string& text, const std::string& key) {
  const size_t at = text.find(key + " ");
  return at == std::string::npos ? -1.0 : std::atof(text.c_str() + at + key.size() + 1);
}

TEST_F(LinkEmu, DelaysAndRateLimitsTheHostsTraffic) {
  if (sh("command -v cc && command -v python3").status != 0) GTEST_SKIP() << "needs cc and python3";
  if (access("/dev/net/tun", R_OK | W_OK) != 0)
    GTEST_SKIP() << "no /dev/net/tun here (a container without the TUN device)";
  const std::string emu = (tmp / "linkemu").string();
  const Result cc = sh("cc -O2 -o " + emu + " " + kSrc + "/cluster/linkemu.c");
  ASSERT_EQ(cc.status, 0) << cc.output;
  const int delay_us = 2000, rate_mbit = 80, bytes = 2000000;
  Background link(emu + " --name " + name + " --hosts 2 --subnet 10.78.0 --delay-us " +
                      std::to_string(delay_us) + " --rate-mbit " + std::to_string(rate_mbit),
                  tmp / "linkemu.log");
  ASSERT_TRUE(link.wait_for_log("linkemu: up", 10s)) << link.log();
  const std::string net = "python3 " + kSrc + "/tests/multihost/linkemu_net.py ";
  Background server(vcluster() + "exec h2 " + net + "serve", tmp / "server.log");
  ASSERT_TRUE(server.wait_for_log("listening", 10s)) << server.log();

  const Result ping = sh(vcluster() + "exec h1 " + net + "ping 10.78.0.2 20");
  ASSERT_EQ(ping.status, 0) << ping.output;
  EXPECT_GE(value_after(ping.output, "rtt_min_us"), 2 * delay_us) << ping.output;
  const Result bulk = sh(vcluster() + "exec h1 " + net + "bulk 10.78.0.2 " + std::to_string(bytes));
  ASSERT_EQ(bulk.status, 0) << bulk.output;
  EXPECT_GE(value_after(bulk.output, "bulk_seconds"), bytes * 8.0 / (rate_mbit * 1e6))
      << bulk.output;

  link.signal(SIGTERM);
  EXPECT_EQ(link.wait(10s), 0) << link.log();
  const std::string log = link.log();
  EXPECT_NE(log.find("linkemu: h1 sent "), std::string::npos) << log;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      log, m, std::regex(R"(total (\d+) packets, \d+ bytes, (\d+) dropped.* (\d+) delivered)")))
      << log;
  EXPECT_EQ(m[2], "0") << log;  // 2 MB fit the 1000-packet queue
  // The bulk ended with the receiver's answer: all of it went through.
  EXPECT_GE(std::stoll(m[3]), bytes / 9000) << log;
}

}  // namespace
}  // namespace dpcnn::multihost
