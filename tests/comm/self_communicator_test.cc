#include <gtest/gtest.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <vector>

#include "comm/communicator.h"
#include "core/error.h"

namespace dpcnn {
namespace {

TEST(SelfCommunicator, IsOneRankOnThisHost) {
  auto comm = make_self_communicator();
  EXPECT_EQ(comm->rank(), 0);
  EXPECT_EQ(comm->size(), 1);
  EXPECT_EQ(comm->local_size(), 1);
  char name[HOST_NAME_MAX + 1] = {};
  ASSERT_EQ(gethostname(name, sizeof(name) - 1), 0);
  EXPECT_EQ(comm->host(), name);
  EXPECT_FALSE(comm->host().empty());
}

TEST(SelfCommunicator, CollectivesAreIdentities) {
  auto comm = make_self_communicator();
  std::vector<float> f = {1.5f, -2.0f, 3.25f};
  comm->allreduce_sum(f.data(), f.size());
  EXPECT_EQ(f, (std::vector<float>{1.5f, -2.0f, 3.25f}));
  std::vector<double> d = {1e300, -0.5};
  comm->allreduce_sum(d.data(), d.size());
  EXPECT_EQ(d, (std::vector<double>{1e300, -0.5}));
  char bytes[4] = {'a', 'b', 'c', 'd'};
  comm->broadcast(bytes, sizeof(bytes), 0);
  EXPECT_EQ(std::string(bytes, 4), "abcd");
  EXPECT_EQ(comm->allgather(0x1234567890abcdefULL), (std::vector<uint64_t>{0x1234567890abcdefULL}));
  comm->barrier();
}

TEST(SelfCommunicator, BroadcastFromMissingRootThrows) {
  auto comm = make_self_communicator();
  int x = 0;
  EXPECT_THROW(comm->broadcast(&x, sizeof(x), 1), Error);
}

TEST(SelfCommunicator, ReducerLeavesGradientsAndWaitsZero) {
  auto comm = make_self_communicator();
  std::vector<float> g(1000);
  for (size_t i = 0; i < g.size(); ++i) g[i] = static_cast<float>(i) * 0.25f;
  const std::vector<float> before = g;
  for (bool overlap : {true, false}) {
    auto reducer = comm->make_reducer(g.data(), g.size(), 4096, overlap);
    for (size_t off : {900u, 500u, 0u}) reducer->ready_from(off);
    reducer->finish();
    EXPECT_EQ(g, before);
    EXPECT_EQ(reducer->take_wait_seconds(), 0.0);
  }
}

TEST(SelfCommunicator, ReducerRejectsBucketSmallerThanAFloat) {
  auto comm = make_self_communicator();
  float g[4] = {};
  EXPECT_THROW(comm->make_reducer(g, 4, 2, true), Error);
}

TEST(SelfCommunicatorDeathTest, AbortExitsWithCodeAndFlushes) {
  auto comm = make_self_communicator();
  // stdio to stderr is fully flushed even if unbuffered mode were off: the
  // message must reach the parent before _Exit.
  EXPECT_EXIT(
      {
        std::setvbuf(stderr, nullptr, _IOFBF, 1024);
        std::fputs("last words", stderr);
        comm->abort(7);
      },
      ::testing::ExitedWithCode(7), "last words");
}

}  // namespace
}  // namespace dpcnn
