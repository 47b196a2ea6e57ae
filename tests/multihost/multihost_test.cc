// Several hosts, on one machine: each test brings up a private virtual cluster
// (cluster/vcluster.sh: two network namespaces h1 and h2 with their own
// addresses, hostnames and cores, joined by a bridge) and runs the real worker
// across it under real mpirun, over TCP, as on a cluster of machines. Checked:
// ranks land on different hosts, training over TCP gives the single-host
// model, data.broadcast works across hosts, and a host whose cable is pulled
// ends the job promptly (and the launcher restarts it once the cable is back).
//
// Needs root and permission to create network namespaces; skipped otherwise.
// Each test uses its own cluster name (dpt<pid>), so a leftover of a crashed
// run is not in the way; leftovers of dead test processes are removed.
#include "vcluster_fixture.h"

namespace dpcnn::multihost {
namespace {

const std::string kTrainSets =
    "train.max_steps=50 train.epochs=10 train.eval=false optimizer.type=sgd "
    "optimizer.learning_rate=0.05 optimizer.momentum=0.9 distributed.threads_per_rank=1 "
    "train.precision=fp32";  // equivalence across rank counts is fp32's contract

TEST_F(MultiHost, EachRankRunsOnItsOwnHost) {
  Result r = sh(vc_mpirun() + "-np 2 hostname | sort");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output, "h1\nh2\n");
  r = sh(vc_mpirun() + "-np 4 --npernode 2 sh -c 'echo $OMPI_COMM_WORLD_RANK $(hostname)' | sort");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output, "0 h1\n1 h1\n2 h2\n3 h2\n");
  // The worker itself sees the host: a failing rank names it.
  r = sh("timeout 60 " + vc_mpirun() +
         "-np 2 sh -c 'if [ \"$OMPI_COMM_WORLD_RANK\" = 1 ]; then d=" + tmp.string() +
         "/missing; else d=" + data + "; fi; exec " + kBin + "/dpcnn-train --config " + kSrc +
         "/configs/mnist-small.yaml --set data.dir=$d runs_dir=" + tmp.string() + "'");
  EXPECT_NE(r.status, 0);
  EXPECT_LT(r.seconds, 30);
  EXPECT_NE(r.output.find("rank 1 on h2"), std::string::npos) << r.output;
}

// 2 hosts x 1 rank and 2 hosts x 2 ranks, over TCP: the model of one process
// on one host, up to summation order (as OneTwoFourRanksTrainTheSameModel).
TEST_F(MultiHost, TwoHostsTrainTheSingleHostModel) {
  const std::vector<float> one = train(kSrc + "/scripts/mpirun.sh -np 1", kTrainSets);
  const std::vector<float> two = train(vc_mpirun() + "-np 2", kTrainSets);
  const std::vector<float> four = train(vc_mpirun() + "-np 4 --npernode 2", kTrainSets);
  ASSERT_FALSE(one.empty());
  ASSERT_EQ(one.size(), two.size());
  ASSERT_EQ(one.size(), four.size());
  std::printf("relative difference to 1 host x 1 rank: 2x1 %.2g, 2x2 %.2g\n",
              relative_difference(one, two), relative_difference(one, four));
  EXPECT_LT(relative_difference(one, two), 1e-5);
  EXPECT_LT(relative_difference(one, four), 1e-5);
  EXPECT_NE(one, std::vector<float>(one.size(), 0.0f));
}

// data.broadcast: only rank 0 (on h1) can read the data; h2's rank gets it
// over TCP and the job trains exactly as when both read it on one host.
TEST_F(MultiHost, BroadcastDataAcrossHosts) {
  const std::string sets =
      "train.max_steps=12 train.epochs=10 train.eval=false distributed.threads_per_rank=1";
  const std::vector<float> local = train(kSrc + "/scripts/mpirun.sh -np 2", sets);
  const fs::path out = tmp / "broadcast.bin";
  const Result r =
      sh(vc_mpirun() + "-np 2 sh -c 'if [ \"$(hostname)\" = h2 ]; then d=" + tmp.string() +
         "/missing; else d=" + data + "; fi; exec " + kBin + "/dpcnn-train --config " + kSrc +
         "/configs/mnist-small.yaml --set data.dir=$d "
         "data.broadcast=true runs_dir=" +
         tmp.string() + " " + sets + " --save-params " + out.string() + "'");
  ASSERT_EQ(r.status, 0) << r.output;
  const std::vector<float> shared = read_floats(out);
  ASSERT_FALSE(local.empty());
  EXPECT_EQ(local, shared);
}

// h2's cable is pulled mid-run: no error reaches either side, only silence.
// The job must end with an error in bounded time, and leave no process on
// either host. (Open MPI's default keepalives would take ~8 minutes; the
// cluster's settings detect it in ~5 s.)
TEST_F(MultiHost, PulledCableFailsTheJobPromptly) {
  Background job(vc_mpirun() + "-np 2 " +
                     worker(kSrc + "/configs/mnist-small.yaml",
                            "train.max_steps=1000000 train.epochs=100000 train.eval=false "
                            "distributed.threads_per_rank=1"),
                 tmp / "job.log");
  ASSERT_TRUE(job.wait_for_log("Epoch 3/", 60s)) << job.log();
  const auto cut = Clock::now();
  ASSERT_EQ(sh(vcluster() + "link h2 down").status, 0);
  const int status = job.wait(60s);
  const double seconds = std::chrono::duration<double>(Clock::now() - cut).count();
  std::printf("time from cut to job failure: %.1f s\n", seconds);
  RecordProperty("seconds_to_failure", std::to_string(seconds));
  EXPECT_NE(status, 0) << job.log();
  EXPECT_NE(status, -1) << "still running 60 s after the cut\n" << job.log();
  EXPECT_LT(seconds, 30);
  EXPECT_NE(job.log().find("lost communication"), std::string::npos) << job.log();
  // h2's daemon notices the lost mpirun the same way and ends its rank.
  const auto until = Clock::now() + 20s;
  while ((processes_on(1) > 0 || processes_on(2) > 0) && Clock::now() < until)
    std::this_thread::sleep_for(200ms);
  EXPECT_EQ(processes_on(1), 0);
  EXPECT_EQ(processes_on(2), 0);
}

// The launcher on h1 (its mpirun inherits the cluster's OMPI_MCA_* settings
// from `vcluster.sh exec`): the pulled cable is a failure it sees, and once the
// cable is back it restarts from the last checkpoint and finishes the run.
TEST_F(MultiHost, LauncherRestartsAfterPulledCable) {
  const std::string hostfile = (tmp / "vc" / "hostfile").string();
  Background launcher(vcluster() + "exec h1 " + kBin + "/dpcnn-launch --config " + kSrc +
                          "/configs/mnist-small.yaml --np 2 --hostfile " + hostfile +
                          " --set data.dir=" + data + " --set runs_dir=" + tmp.string() +
                          " --set distributed.threads_per_rank=1 --set train.max_steps=400 "
                          "--set train.epochs=1000 --set train.eval=false "
                          "--set checkpoint.every_steps=20 --set status.listen=127.0.0.1:0",
                      tmp / "launch.log");
  ASSERT_TRUE(launcher.wait_for_log("ckpt-0+40\\.pb", 60s)) << launcher.log();
  // The status lists both hosts (the service listens on h1's loopback).
  const Result status = sh(vcluster() + "exec h1 " + kBin + "/dpcnn-status --json --run " +
                           (tmp / "mnist-small").string());
  ASSERT_EQ(status.status, 0) << status.output;
  EXPECT_NE(status.output.find("\"h1\""), std::string::npos) << status.output;
  EXPECT_NE(status.output.find("\"h2\""), std::string::npos) << status.output;
  const auto cut = Clock::now();
  ASSERT_EQ(sh(vcluster() + "link h2 down").status, 0);
  const bool seen = launcher.wait_for_log("job failed|lost communication", 60s);
  const double seconds = std::chrono::duration<double>(Clock::now() - cut).count();
  ASSERT_EQ(sh(vcluster() + "link h2 up").status, 0);
  ASSERT_TRUE(seen) << launcher.log();
  std::printf("time from cut to failure seen by the launcher: %.1f s\n", seconds);
  RecordProperty("seconds_to_failure", std::to_string(seconds));
  EXPECT_LT(seconds, 30);
  EXPECT_EQ(launcher.wait(120s), 0) << launcher.log();
  const std::string log = launcher.log();
  EXPECT_NE(log.find("attempt 2"), std::string::npos) << log;
  EXPECT_NE(log.find("resuming from"), std::string::npos) << log;
}

}  // namespace
}  // namespace dpcnn::multihost
