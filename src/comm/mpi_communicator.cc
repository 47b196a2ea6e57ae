#include "comm/mpi_communicator.h"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/error.h"

namespace dpcnn {
namespace {

// MPI counts are int: anything longer goes in pieces of at most this many items.
constexpr size_t kMaxCount = static_cast<size_t>(INT_MAX);

// With MPI_ERRORS_ARE_FATAL a failing call never returns; this only catches a
// handler installed by someone else.
void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throw Error(std::string(what) + " failed: " + std::string(text, static_cast<size_t>(len)));
}

template <typename T>
void allreduce_chunked(T* data, size_t n, MPI_Datatype type, MPI_Comm comm) {
  for (size_t done = 0; done < n;) {
    const size_t count = std::min(n - done, kMaxCount);
    check(MPI_Allreduce(MPI_IN_PLACE, data + done, static_cast<int>(count), type, MPI_SUM, comm),
          "MPI_Allreduce");
    done += count;
  }
}

// Buckets are cut from the END of the buffer: bucket k is
// [max(0, n - (k+1)*B), n - k*B). The last layer's gradients sit at the end and
// are final first, so bucket 0 can start as soon as backward has done that layer.
// The boundaries depend on n and B only (never on timing), which with Open MPI's
// fixed algorithms keeps results bit-identical from run to run.
class MpiReducer final : public GradientReducer {
 public:
  MpiReducer(MPI_Comm comm, float* grads, size_t n, size_t bucket_floats, bool overlap)
      : comm_(comm),
        grads_(grads),
        n_(n),
        bucket_(bucket_floats),
        overlap_(overlap),
        buckets_(n == 0 ? 0 : (n + bucket_floats - 1) / bucket_floats),
        requests_(overlap ? buckets_ : 0, MPI_REQUEST_NULL) {}

  // Destroy only after finish() or on the way to abort(): requests still in
  // flight cannot be cancelled (collective requests), and waiting for them here
  // could hang an error path.
  ~MpiReducer() override = default;

  void ready_from(size_t offset) override {
    if (!overlap_) return;
    while (started_ < buckets_ && begin(started_) >= offset) start(started_++);
    if (started_ == 0) return;
    // Open MPI has no progress thread: non-blocking collectives only advance
    // inside MPI calls, so poke them each time backward hands us a layer.
    int done = 0;
    check(MPI_Testall(static_cast<int>(started_), requests_.data(), &done, MPI_STATUSES_IGNORE),
          "MPI_Testall");
  }

  void finish() override {
    const auto t0 = std::chrono::steady_clock::now();
    if (overlap_) {
      while (started_ < buckets_) start(started_++);
      check(MPI_Waitall(static_cast<int>(started_), requests_.data(), MPI_STATUSES_IGNORE),
            "MPI_Waitall");
      started_ = 0;  // next step starts from the last bucket again
    } else {
      allreduce_chunked(grads_, n_, MPI_FLOAT, comm_);
    }
    wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  double take_wait_seconds() override {
    const double s = wait_seconds_;
    wait_seconds_ = 0.0;
    return s;
  }

 private:
  size_t end(size_t k) const { return n_ - k * bucket_; }
  size_t begin(size_t k) const { return end(k) > bucket_ ? end(k) - bucket_ : 0; }

  void start(size_t k) {
    const size_t b = begin(k);
    check(MPI_Iallreduce(MPI_IN_PLACE, grads_ + b, static_cast<int>(end(k) - b), MPI_FLOAT, MPI_SUM,
                         comm_, &requests_[k]),
          "MPI_Iallreduce");
  }

  MPI_Comm comm_;
  float* grads_;
  size_t n_;
  size_t bucket_;  // floats per bucket, <= INT_MAX
  bool overlap_;
  size_t buckets_;
  std::vector<MPI_Request> requests_;  // one per bucket, reused every step
  size_t started_ = 0;                 // buckets [0, started_) are in flight this step
  double wait_seconds_ = 0.0;
};

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
    char name[MPI_MAX_PROCESSOR_NAME] = {};
    int len = 0;
    check(MPI_Get_processor_name(name, &len), "MPI_Get_processor_name");
    host_.assign(name, static_cast<size_t>(len));
    // Ranks that can share memory are the ranks on this host.
    MPI_Comm local = MPI_COMM_NULL;
    check(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local),
          "MPI_Comm_split_type");
    check(MPI_Comm_size(local, &local_size_), "MPI_Comm_size");
    check(MPI_Comm_free(&local), "MPI_Comm_free");
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string host() const override { return host_; }
  int local_size() const override { return local_size_; }

  void allreduce_sum(float* data, size_t n) override {
    allreduce_chunked(data, n, MPI_FLOAT, comm_);
  }
  void allreduce_sum(double* data, size_t n) override {
    allreduce_chunked(data, n, MPI_DOUBLE, comm_);
  }

  void broadcast(void* data, size_t bytes, int root) override {
    if (root < 0 || root >= size_) {
      throw Error("broadcast: root " + std::to_string(root) + " does not exist (" +
                  std::to_string(size_) + " ranks)");
    }
    auto* p = static_cast<char*>(data);
    for (size_t done = 0; done < bytes;) {
      const size_t count = std::min(bytes - done, kMaxCount);
      check(MPI_Bcast(p + done, static_cast<int>(count), MPI_BYTE, root, comm_), "MPI_Bcast");
      done += count;
    }
  }

  std::vector<uint64_t> allgather(uint64_t value) override {
    std::vector<uint64_t> all(static_cast<size_t>(size_));
    check(MPI_Allgather(&value, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, comm_),
          "MPI_Allgather");
    return all;
  }

  std::vector<std::string> allgather(const std::string& value) override {
    // Fixed-size slots keep this one collective; longer strings are cut.
    constexpr size_t kSlot = 256;
    std::string mine = value.substr(0, kSlot - 1);
    mine.resize(kSlot, '\0');
    std::vector<char> all(kSlot * static_cast<size_t>(size_));
    check(MPI_Allgather(mine.data(), kSlot, MPI_CHAR, all.data(), kSlot, MPI_CHAR, comm_),
          "MPI_Allgather");
    std::vector<std::string> out;
    for (int r = 0; r < size_; ++r) out.emplace_back(all.data() + r * kSlot);
    return out;
  }

  std::vector<double> allgather(const std::vector<double>& values) override {
    const int n = static_cast<int>(values.size());
    std::vector<double> all(values.size() * static_cast<size_t>(size_));
    check(MPI_Allgather(values.data(), n, MPI_DOUBLE, all.data(), n, MPI_DOUBLE, comm_),
          "MPI_Allgather");
    return all;
  }

  void barrier() override { check(MPI_Barrier(comm_), "MPI_Barrier"); }

  [[noreturn]] void abort(int code) override {
    MPI_Abort(comm_, code);
    std::_Exit(code);  // MPI_Abort does not return; this is for the compiler
  }

  std::unique_ptr<GradientReducer> make_reducer(float* grads, size_t n, size_t bucket_bytes,
                                                bool overlap) override {
    if (bucket_bytes < sizeof(float)) {
      throw Error("gradient reducer: bucket size " + std::to_string(bucket_bytes) +
                  " bytes is smaller than one float");
    }
    const size_t bucket_floats = std::min(bucket_bytes / sizeof(float), kMaxCount);
    return std::make_unique<MpiReducer>(comm_, grads, n, bucket_floats, overlap);
  }

 private:
  MPI_Comm comm_ = MPI_COMM_WORLD;
  int rank_ = 0;
  int size_ = 1;
  int local_size_ = 1;
  std::string host_;
};

}  // namespace

MpiContext::MpiContext(int* argc, char*** argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) throw Error("MPI is already initialised (only one MpiContext per process)");
  int provided = MPI_THREAD_SINGLE;
  check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
  if (provided < MPI_THREAD_FUNNELED) {
    MPI_Finalize();
    throw Error("MPI does not provide MPI_THREAD_FUNNELED");
  }
}

MpiContext::~MpiContext() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

std::string MpiContext::library_version() {
  char buf[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  if (MPI_Get_library_version(buf, &len) != MPI_SUCCESS) return "unknown";
  std::string v(buf, static_cast<size_t>(len));
  // The first clause ("Open MPI v4.1.4"); the rest is packaging and dates.
  return v.substr(0, std::min(v.find(','), v.find('\n')));
}

bool MpiContext::launched_by_mpirun() {
  // Open MPI's mpirun, then PMIx (Open MPI under Slurm), then MPICH/Hydra and
  // Slurm's PMI-1/2.
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK"}) {
    if (std::getenv(var) != nullptr) return true;
  }
  return false;
}

std::unique_ptr<Communicator> make_mpi_communicator() {
  int initialized = 0;
  int finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) {
    throw Error("make_mpi_communicator: MPI is not initialised (create an MpiContext first)");
  }
  return std::make_unique<MpiCommunicator>();
}

}  // namespace dpcnn
