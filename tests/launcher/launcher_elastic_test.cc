// launcher.elastic on one machine, under real mpirun with the real worker:
// its bad input (one line, exit 2), a host of the hostfile that is down
// before the start (left out; the job runs on the rest), and fewer ranks than
// launcher.min_ranks (a clear give-up). The host that is "down" is a name
// that cannot resolve (.invalid, RFC 6761), so no network is needed; losing
// and regaining a reachable host mid-run is tests/multihost/elastic_test.cc.
#include <gtest/gtest.h>

#include <fstream>

#include "core/exit_codes.h"
#include "launch_fixture.h"

namespace dpcnn {
namespace {

namespace fs = std::filesystem;

class ElasticLaunch : public testing::Launch {
 protected:
  std::string hostfile(const std::string& text) {
    const fs::path p = tmp / ("hosts" + std::to_string(files++));
    std::ofstream(p) << text;
    return p.string();
  }
  static constexpr const char* kElastic =
      "--set launcher.elastic=true --set launcher.host_timeout_s=1 --set train.max_steps=12 "
      "--set train.eval=false";
  int files = 0;
};

TEST_F(ElasticLaunch, BadInputIsOneLineNamingTheKey) {
  const struct {
    std::string extra, want;
  } cases[] = {
      {"", "launcher.elastic: true needs --hostfile"},
      {"--hostfile " + hostfile("localhost slots=3\n"),
       "--np 2 with launcher.elastic: the ranks are the slots of the hostfile's live hosts (3 in "},
      {"--set launcher.min_ranks=3 --hostfile " + hostfile("localhost slots=2\n"),
       "launcher.min_ranks 3 is more than the 2 slot(s) of "},
      {"--hostfile " + hostfile("localhost slots=two\n"),
       "hosts2:1: slots must be a positive integer, got 'two'"},
  };
  for (const auto& c : cases) {
    start(kElastic, c.extra);
    EXPECT_EQ(wait_exit(), exit_code::kBadInput) << c.extra << "\n" << log();
    EXPECT_EQ(testing::lines(log()), 1) << log();
    EXPECT_NE(log().find(c.want), std::string::npos) << log();
  }
}

TEST_F(ElasticLaunch, HostDownAtTheStartIsLeftOut) {
  start(kElastic, "--hostfile " + hostfile("localhost slots=1\nno-such-host.invalid slots=1\n"));
  EXPECT_EQ(wait_exit(), exit_code::kOk) << log();
  const std::string out = log();
  EXPECT_NE(out.find("elastic: host no-such-host.invalid left out (unreachable: name does not "
                     "resolve"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("next attempt: 1 rank(s) on localhost, global batch 32 unchanged"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find(" -np 1 "), std::string::npos) << out;
  // The attempt's hostfile holds the live host only.
  EXPECT_NE(testing::slurp(fs::path(announced_run(out)) / "hostfile.elastic")
                .find("\nlocalhost slots=1\n"),
            std::string::npos);
}

TEST_F(ElasticLaunch, FewerRanksThanMinRanksGivesUpClearly) {
  start(std::string(kElastic) + " --set launcher.min_ranks=2 --set launcher.stall_timeout_s=2",
        "--hostfile " + hostfile("localhost slots=1\nno-such-host.invalid slots=1\n"));
  EXPECT_EQ(wait_exit(), exit_code::kFailure) << log();
  const std::string out = log();
  EXPECT_NE(out.find("waiting up to 2 s for no-such-host.invalid to answer"), std::string::npos)
      << out;
  EXPECT_NE(out.find("not starting: 1 rank(s) on the hosts that answer (localhost), "
                     "launcher.min_ranks is 2, and no host came back within 2 s"),
            std::string::npos)
      << out;
  EXPECT_EQ(out.find("attempt 1"), std::string::npos) << out;
}

}  // namespace
}  // namespace dpcnn
