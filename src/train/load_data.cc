#include "train/load_data.h"

#include <cstdint>

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

}  // namespace

DataSplit load_job_data(const Config& cfg, Communicator& comm) {
  if (!cfg.data.broadcast || comm.size() == 1)
    return load_mnist_dir(cfg.data.dir, cfg.model.classes);
  // Rank 0 alone touches the files; if it fails, its exception ends the job
  // (the worker's main aborts every rank) before anyone waits here.
  DataSplit s;
  if (comm.rank() == 0) s = load_mnist_dir(cfg.data.dir, cfg.model.classes);
  share(s.train, comm);
  share(s.test, comm);
  return s;
}

}  // namespace dpcnn
