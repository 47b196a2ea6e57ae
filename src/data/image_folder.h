// Image folders as a dataset (the ImageFolder convention of torchvision and
// Keras): <dir>/train/<class>/*.png|jpg|jpeg|bmp|pgm|ppm|gif and
// <dir>/test/<class>/..., classes named by their folders, sorted (or in the
// order data.class_names gives). Every image goes once through the shared
// pipeline (src/image/pipeline.h), in a fixed order (classes in label order,
// files sorted by name), into a cache: MNIST-named IDX files (rank 4 for more
// than one channel) and a manifest of every file's name, size and mtime, the
// classes, the preprocessing and the input shape. A load whose manifest
// matches reads the IDX files only; anything else rebuilds the cache, written
// atomically (manifest last). Decoding runs on the OpenMP threads of the
// caller. Free functions; one caller at a time per cache directory on a host
// (concurrent builders on a shared filesystem write identical files).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "image/image.h"

namespace dpcnn {

struct FolderOptions {
  Preprocess preprocess = Preprocess::kResize;
  int channels = 1, height = 28, width = 28;
  // Where the cache goes; "" means <dir>/.dpcnn-cache.
  std::string cache_dir;
  // Class folder names in label order; empty: the folders, sorted.
  std::vector<std::string> class_names;
  // 0: the folder's class count must simply be 1..256; else it must equal this.
  int expected_classes = 0;
};

struct FolderFile {
  std::string path;  // relative to the dataset dir, e.g. "train/cat/001.png"
  int label = 0;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
};

struct FolderScan {
  std::string dir;
  std::vector<std::string> classes;  // label order
  std::vector<FolderFile> train, test;
  int skipped = 0;  // files in class folders that are not images (by extension)
};

// Lists the folder. Throws InputError (one line naming the folder) when train/
// or test/ is missing, a class folder holds no image, the class sets of train/
// and test/ differ, class_names do not name the class folders, or the class
// count is not what was expected.
FolderScan scan_image_folder(const std::string& dir, const FolderOptions& o);

std::string folder_cache_dir(const std::string& dir, const FolderOptions& o);

// The manifest text a cache of `scan` with `o` must hold to be current.
std::string folder_manifest(const FolderScan& scan, const FolderOptions& o);

// Decodes every image of `scan` (OpenMP threads) and writes the cache into
// `cache_dir`. A bad image is an InputError naming its file (the first in the
// fixed order, whatever the thread timing).
void build_folder_cache(const FolderScan& scan, const FolderOptions& o,
                        const std::string& cache_dir);

enum class CacheUse { kBuild, kReuse, kReadOnly };
struct FolderLoad {
  DataSplit data;
  bool built = false;  // the cache was (re)built by this call
  double seconds = 0;  // scan + build or read
};

// Scans `dir`, reuses a current cache or (kBuild) rebuilds it, and reads it.
// kReadOnly (ranks that wait for another rank's build) throws if the cache is
// not current. The returned split's class_names are the classes.
FolderLoad load_image_folder(const std::string& dir, const FolderOptions& o,
                             CacheUse use = CacheUse::kBuild);

}  // namespace dpcnn
