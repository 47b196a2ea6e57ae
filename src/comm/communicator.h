// Communicator: what training needs from its peers: rank and size, reductions,
// broadcast, a barrier, and a bucketed gradient reducer that overlaps with
// backward. Training code sees only this interface; comm/mpi_communicator.h is
// the MPI implementation (only the worker's main creates one), and
// SelfCommunicator is the one-rank implementation used by unit tests and by
// single-process tools. Not thread-safe: call from the training thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace dpcnn {

// Reduces one flat gradient buffer in buckets. Backward announces, layer by
// layer from the last, that grads[offset, n) are final; the reducer starts a
// non-blocking sum for every bucket that became complete. finish() starts what
// is left, waits for all, and leaves the SUM over ranks in the buffer.
class GradientReducer {
 public:
  virtual ~GradientReducer() = default;
  virtual void ready_from(size_t offset) = 0;
  virtual void finish() = 0;
  // Seconds spent blocked inside finish() (the exposed communication) since the
  // last call of take_wait_seconds().
  virtual double take_wait_seconds() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // This process's host name, and how many ranks share this host.
  virtual std::string host() const = 0;
  virtual int local_size() const = 0;

  virtual void allreduce_sum(float* data, size_t n) = 0;  // blocking, in place
  virtual void allreduce_sum(double* data, size_t n) = 0;
  virtual void broadcast(void* data, size_t bytes, int root) = 0;
  virtual std::vector<uint64_t> allgather(uint64_t value) = 0;
  // Strings up to 255 bytes (host names, short messages), in rank order.
  virtual std::vector<std::string> allgather(const std::string& value) = 0;
  // Every rank passes the same count; the result is rank 0's values, then
  // rank 1's, ... (small monitoring figures: one collective).
  virtual std::vector<double> allgather(const std::vector<double>& values) = 0;
  virtual void barrier() = 0;
  // Ends the whole job now (all ranks), exit status `code`. Never returns.
  [[noreturn]] virtual void abort(int code) = 0;

  // overlap=false: ready_from() does nothing and finish() does one blocking
  // allreduce of the whole buffer (for comparison).
  virtual std::unique_ptr<GradientReducer> make_reducer(float* grads, size_t n, size_t bucket_bytes,
                                                        bool overlap) = 0;
};

// One rank, no peers: reductions are identities.
std::unique_ptr<Communicator> make_self_communicator();

}  // namespace dpcnn
