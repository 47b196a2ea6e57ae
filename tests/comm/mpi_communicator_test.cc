// Runs under mpirun with 2 or 3 ranks (see CMakeLists.txt). Every rank runs
// every test and must make the same collective calls, so checks use EXPECT, not
// ASSERT, wherever an early return would leave peers waiting.
#include "comm/mpi_communicator.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"

namespace dpcnn {
namespace {

class MpiCommunicatorTest : public ::testing::Test {
 protected:
  std::unique_ptr<Communicator> comm = make_mpi_communicator();
  int rank = comm->rank();
  int size = comm->size();
};

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// True on every rank iff `v` holds the same bits on every rank.
bool same_on_all_ranks(Communicator& comm, const std::vector<float>& v) {
  std::vector<float> root = v;
  comm.broadcast(root.data(), root.size() * sizeof(float), 0);
  double mismatch = same_bits(root, v) ? 0.0 : 1.0;
  comm.allreduce_sum(&mismatch, 1);
  return mismatch == 0.0;
}

TEST_F(MpiCommunicatorTest, RankSizeAndHost) {
  const char* env = std::getenv("OMPI_COMM_WORLD_SIZE");
  if (env != nullptr) {
    EXPECT_EQ(size, std::atoi(env));
  }
  EXPECT_GE(size, 2) << "run under mpirun -np 2 or more";
  EXPECT_GE(rank, 0);
  EXPECT_LT(rank, size);
  EXPECT_FALSE(comm->host().empty());
  EXPECT_TRUE(MpiContext::launched_by_mpirun());
  // All ranks of this test run on one machine.
  EXPECT_EQ(comm->local_size(), size);
}

TEST_F(MpiCommunicatorTest, AllreduceFloatSums) {
  std::vector<float> v(1000);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i) + static_cast<float>(rank + 1);
  comm->allreduce_sum(v.data(), v.size());
  const float ranks_sum = static_cast<float>(size * (size + 1) / 2);
  for (size_t i = 0; i < v.size(); ++i) {
    EXPECT_EQ(v[i], static_cast<float>(size) * static_cast<float>(i) + ranks_sum) << i;
  }
}

TEST_F(MpiCommunicatorTest, AllreduceDoubleSums) {
  std::vector<double> v = {0.5 * rank, 1e15 + rank, -static_cast<double>(rank)};
  comm->allreduce_sum(v.data(), v.size());
  const double ranks_sum = size * (size - 1) / 2.0;
  EXPECT_EQ(v[0], 0.5 * ranks_sum);
  EXPECT_EQ(v[1], 1e15 * size + ranks_sum);
  EXPECT_EQ(v[2], -ranks_sum);
}

TEST_F(MpiCommunicatorTest, BroadcastFromEachRoot) {
  for (int root : {0, 1, size - 1}) {
    std::string msg = "rank " + std::to_string(rank) + " says hello  ";
    msg.resize(32, '.');
    comm->broadcast(msg.data(), msg.size(), root);
    std::string want = "rank " + std::to_string(root) + " says hello  ";
    want.resize(32, '.');
    EXPECT_EQ(msg, want) << "root " << root;
  }
  comm->broadcast(nullptr, 0, 0);  // nothing to send is fine
}

TEST_F(MpiCommunicatorTest, BroadcastFromMissingRootThrows) {
  int x = 0;
  EXPECT_THROW(comm->broadcast(&x, sizeof(x), size), Error);
  EXPECT_THROW(comm->broadcast(&x, sizeof(x), -1), Error);
}

TEST_F(MpiCommunicatorTest, AllgatherKeepsRankOrderAnd64Bits) {
  const uint64_t big = uint64_t{1} << 40;
  const std::vector<uint64_t> all = comm->allgather(big * static_cast<uint64_t>(rank) + 7);
  ASSERT_EQ(all.size(), static_cast<size_t>(size));
  for (int r = 0; r < size; ++r) EXPECT_EQ(all[static_cast<size_t>(r)], big * r + 7) << r;
  comm->barrier();
}

// Like backward: layers from the last, each making grads[offset, n) final.
void run_step(GradientReducer& reducer, size_t n) {
  const size_t layer_sizes[] = {10, 2570, 640, 36928, 18496, 320, 5000, 7};
  size_t offset = n;
  for (size_t len : layer_sizes) {
    offset = offset > len ? offset - len : 0;
    reducer.ready_from(offset);
    reducer.ready_from(offset);  // repeated announcements are harmless
  }
  reducer.ready_from(0);
  reducer.finish();
}

TEST_F(MpiCommunicatorTest, ReducerSumsExactlyInBothModes) {
  const size_t n = 100003;  // not a multiple of the bucket: the first bucket is short
  auto fill = [&](std::vector<float>& g, int step) {
    for (size_t i = 0; i < n; ++i) {
      g[i] = static_cast<float>(static_cast<int>(i % 97) - 48 + 3 * rank + step);
    }
  };
  std::vector<float> overlapped(n), blocking(n);
  auto r1 = comm->make_reducer(overlapped.data(), n, 4096, /*overlap=*/true);
  auto r2 = comm->make_reducer(blocking.data(), n, 4096, /*overlap=*/false);
  for (int step = 0; step < 3; ++step) {  // the reducers are reused across steps
    fill(overlapped, step);
    fill(blocking, step);
    run_step(*r1, n);
    run_step(*r2, n);
    size_t wrong = 0;
    for (size_t i = 0; i < n; ++i) {
      const float want = static_cast<float>(size * (static_cast<int>(i % 97) - 48 + step) +
                                            3 * size * (size - 1) / 2);
      wrong += overlapped[i] != want;
    }
    EXPECT_EQ(wrong, 0u) << "step " << step;
    EXPECT_TRUE(same_bits(overlapped, blocking)) << "step " << step;
  }
  const double w1 = r1->take_wait_seconds();
  EXPECT_GE(w1, 0.0);
  EXPECT_LT(w1, 60.0);
  EXPECT_EQ(r1->take_wait_seconds(), 0.0);  // taking resets
  EXPECT_GT(r2->take_wait_seconds(), 0.0);
}

std::vector<float> random_grads(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> g(n);
  for (float& x : g) x = dist(gen);
  return g;
}

TEST_F(MpiCommunicatorTest, BucketedResultMatchesBlockingAllreduceBitwise) {
  const size_t n = 100003;
  const std::vector<float> input = random_grads(n, 1234u + static_cast<uint32_t>(rank));
  std::vector<float> bucketed = input;
  auto reducer = comm->make_reducer(bucketed.data(), n, 4096, /*overlap=*/true);
  reducer->ready_from(0);
  reducer->finish();
  std::vector<float> blocking = input;
  comm->allreduce_sum(blocking.data(), n);
  // Bitwise equality is an observed property of Open MPI 4.1.4 (libnbc's
  // in-place Iallreduce and tuned's Allreduce add in the same order up to 4
  // ranks), not a contract: at 5 ranks the orders differ in the last bit. What
  // training relies on is checked below and in ReducerIsDeterministicAcrossRepeats.
  if (size <= 4) {
    EXPECT_TRUE(same_bits(bucketed, blocking));
  } else {
    size_t far = 0;
    for (size_t i = 0; i < n; ++i) far += std::abs(bucketed[i] - blocking[i]) > 1e-5f;
    EXPECT_EQ(far, 0u);
  }
  EXPECT_TRUE(same_on_all_ranks(*comm, bucketed));
}

TEST_F(MpiCommunicatorTest, ReducerIsDeterministicAcrossRepeats) {
  const size_t n = 100003;
  const std::vector<float> input = random_grads(n, 99u + 7u * static_cast<uint32_t>(rank));
  for (bool overlap : {true, false}) {
    std::vector<float> g = input;
    auto reducer = comm->make_reducer(g.data(), n, 4096, overlap);
    run_step(*reducer, n);
    const std::vector<float> first = g;
    for (int repeat = 0; repeat < 3; ++repeat) {
      g = input;  // same storage: the reducer keeps pointing at it
      run_step(*reducer, n);
      EXPECT_TRUE(same_bits(g, first)) << "overlap " << overlap << " repeat " << repeat;
    }
    EXPECT_TRUE(same_on_all_ranks(*comm, g)) << "overlap " << overlap;
  }
}

TEST_F(MpiCommunicatorTest, ReducerHandlesTinyAndEmptyBuffers) {
  for (size_t n : {0u, 1u, 5u}) {
    for (bool overlap : {true, false}) {
      std::vector<float> g(n, static_cast<float>(rank + 1));
      auto reducer = comm->make_reducer(g.data(), n, 4, overlap);  // one float a bucket
      run_step(*reducer, n);
      for (float x : g) EXPECT_EQ(x, static_cast<float>(size * (size + 1) / 2));
    }
  }
  float g[1] = {};
  EXPECT_THROW(comm->make_reducer(g, 1, 3, true), Error);
}

}  // namespace
}  // namespace dpcnn
