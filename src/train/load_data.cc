#include "train/load_data.h"

#include <cstdint>
#include <vector>

#include "data/split.h"
#include "train/trainer.h"

namespace dpcnn {
namespace {

void share(Dataset& d, Communicator& comm) {
  int32_t dims[4] = {d.count, d.channels, d.height, d.width};
  comm.broadcast(dims, sizeof dims, 0);
  if (comm.rank() != 0) {
    d.count = dims[0];
    d.channels = dims[1];
    d.height = dims[2];
    d.width = dims[3];
    d.images.resize(static_cast<size_t>(d.count) * d.image_size());
    d.labels.resize(d.count);
  }
  comm.broadcast(d.images.data(), d.images.size(), 0);
  comm.broadcast(d.labels.data(), d.labels.size(), 0);
}

// Evaluation reads only this rank's contiguous slice of the test set, so the
// rest is dropped (memory per rank is a target: 100 MB with 60,000 images).
void keep_test_slice(DataSplit& s, const Communicator& comm) {
  Dataset& t = s.test;
  const int total = t.count;
  const Slice mine = rank_slice(total, comm.rank(), comm.size());
  const size_t sz = t.image_size();
  t.images = std::vector<uint8_t>(t.images.begin() + mine.begin * sz,
                                  t.images.begin() + (mine.begin + mine.n) * sz);
  t.labels =
      std::vector<uint8_t>(t.labels.begin() + mine.begin, t.labels.begin() + mine.begin + mine.n);
  t.count = mine.n;
  s.test_begin = static_cast<int>(mine.begin);
  s.test_total = total;
}

}  // namespace

DataSplit load_job_data(const Config& cfg, Communicator& comm) {
  DataSplit s;
  if (!cfg.data.broadcast || comm.size() == 1) {
    s = load_mnist_dir(cfg.data.dir, cfg.model.classes);
  } else {
    // Rank 0 alone touches the files; if it fails, its exception ends the job
    // (the worker's main aborts every rank) before anyone waits here.
    if (comm.rank() == 0) s = load_mnist_dir(cfg.data.dir, cfg.model.classes);
    share(s.train, comm);
    share(s.test, comm);
  }
  // After the broadcast, so every rank splits the same data the same way.
  split_off(s.train, validation_indices(s.train, cfg.train.validation_split, cfg.seed), &s.val);
  if (comm.size() > 1) keep_test_slice(s, comm);
  return s;
}

}  // namespace dpcnn
