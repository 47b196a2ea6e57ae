// SelfCommunicator: the one-rank Communicator (see comm/communicator.h). Every
// collective over a single rank is the identity, so nothing here moves data.
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "comm/communicator.h"
#include "core/error.h"

namespace dpcnn {
namespace {

class SelfReducer final : public GradientReducer {
 public:
  void ready_from(size_t /*offset*/) override {}
  void finish() override {}
  // Nothing is ever waited for; kept so callers report the same metric everywhere.
  double take_wait_seconds() override {
    const double s = wait_seconds_;
    wait_seconds_ = 0.0;
    return s;
  }

 private:
  double wait_seconds_ = 0.0;
};

class SelfCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }

  std::string host() const override {
    char name[HOST_NAME_MAX + 1] = {};
    if (gethostname(name, sizeof(name) - 1) != 0) return "localhost";
    return name;
  }
  int local_size() const override { return 1; }

  void allreduce_sum(float* /*data*/, size_t /*n*/) override {}
  void allreduce_sum(double* /*data*/, size_t /*n*/) override {}

  void broadcast(void* /*data*/, size_t /*bytes*/, int root) override {
    // A wrong root is a caller bug that MPI would also reject; catch it here so
    // one-rank tests find it.
    if (root != 0) {
      throw Error("broadcast: root " + std::to_string(root) + " does not exist (1 rank)");
    }
  }
  std::vector<uint64_t> allgather(uint64_t value) override { return {value}; }
  std::vector<std::string> allgather(const std::string& value) override { return {value}; }
  std::vector<double> allgather(const std::vector<double>& values) override { return values; }
  void barrier() override {}

  [[noreturn]] void abort(int code) override {
    // _Exit skips atexit handlers and destructors (as MPI_Abort would), so flush
    // what the user has been told so far.
    std::cout.flush();
    std::cerr.flush();
    std::fflush(stdout);
    std::fflush(stderr);
    std::_Exit(code);
  }

  std::unique_ptr<GradientReducer> make_reducer(float* /*grads*/, size_t /*n*/, size_t bucket_bytes,
                                                bool /*overlap*/) override {
    if (bucket_bytes < sizeof(float)) {
      throw Error("gradient reducer: bucket size " + std::to_string(bucket_bytes) +
                  " bytes is smaller than one float");
    }
    return std::make_unique<SelfReducer>();
  }
};

}  // namespace

std::unique_ptr<Communicator> make_self_communicator() {
  return std::make_unique<SelfCommunicator>();
}

}  // namespace dpcnn
