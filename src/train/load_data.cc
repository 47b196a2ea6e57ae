#include "train/load_data.h"

#include <cstdint>
#include <cstdio>
#include <vector>

#include "data/image_folder.h"
#include "image/pipeline.h"
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

void share_names(std::vector<std::string>& names, Communicator& comm) {
  std::string joined;
  for (const std::string& n : names) joined += n + '\n';
  uint64_t len = joined.size();
  comm.broadcast(&len, sizeof len, 0);
  joined.resize(len);
  comm.broadcast(joined.data(), len, 0);
  if (comm.rank() == 0) return;
  names.clear();
  for (size_t a = 0, b; (b = joined.find('\n', a)) != std::string::npos; a = b + 1)
    names.push_back(joined.substr(a, b - a));
}

FolderOptions folder_options(const Config& cfg) {
  FolderOptions o;
  o.preprocess = parse_preprocess(cfg.data.preprocess);
  o.channels = cfg.model.input[0];
  o.height = cfg.model.input[1];
  o.width = cfg.model.input[2];
  o.cache_dir = cfg.data.cache_dir;
  o.class_names = cfg.data.class_names;
  o.expected_classes = cfg.model.classes;
  return o;
}

DataSplit load_folder(const Config& cfg, CacheUse use, bool say) {
  const FolderLoad f = load_image_folder(cfg.data.dir, folder_options(cfg), use);
  if (say) {
    std::printf("image folder %s: %d train + %d test images, %zu classes, %s cache %s (%.2f s)\n",
                cfg.data.dir.c_str(), f.data.train.count, f.data.test.count,
                f.data.class_names.size(), f.built ? "decoded into" : "read from",
                folder_cache_dir(cfg.data.dir, folder_options(cfg)).c_str(), f.seconds);
    std::fflush(stdout);
  }
  return f.data;
}

// Without data.broadcast the first rank on each host builds (or checks) the
// cache while the others wait, then they read it: each host decodes once,
// whether the filesystem is shared (the builders write identical files,
// renamed into place) or not. A builder's error aborts the job (the worker's
// main), so no rank waits for a cache that never comes.
DataSplit load_folder_per_host(const Config& cfg, Communicator& comm) {
  const std::vector<std::string> hosts = comm.allgather(comm.host());
  bool builder = true;
  for (int r = 0; r < comm.rank(); ++r) builder = builder && hosts[r] != comm.host();
  DataSplit s;
  if (builder) s = load_folder(cfg, CacheUse::kBuild, comm.rank() == 0);
  comm.barrier();
  if (!builder) s = load_folder(cfg, CacheUse::kReadOnly, false);
  return s;
}

DataSplit load_local(const Config& cfg, bool say) {
  if (cfg.data.format == "folder") return load_folder(cfg, CacheUse::kBuild, say);
  return load_mnist_dir(cfg.data.dir, cfg.model.classes);
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
  if (comm.size() == 1) {
    s = load_local(cfg, true);
  } else if (!cfg.data.broadcast) {
    s = cfg.data.format == "folder" ? load_folder_per_host(cfg, comm)
                                    : load_mnist_dir(cfg.data.dir, cfg.model.classes);
  } else {
    // Rank 0 alone touches the files; if it fails, its exception ends the job
    // (the worker's main aborts every rank) before anyone waits here.
    if (comm.rank() == 0) s = load_local(cfg, true);
    share(s.train, comm);
    share(s.test, comm);
    share_names(s.class_names, comm);
  }
  if (comm.size() > 1) keep_test_slice(s, comm);
  return s;
}

}  // namespace dpcnn
