#include "data/image_folder.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <omp.h>

#include "core/error.h"
#include "data/idx.h"
#include "image/pipeline.h"

namespace dpcnn {
namespace fs = std::filesystem;
namespace {

constexpr const char* kManifest = "manifest.txt";
constexpr const char* kSplits[2] = {"train", "test"};
// The cache is laid out as an MNIST directory, so load_mnist_dir reads it and
// dpcnn-dataset to-idx is the same code; test/ becomes t10k as in MNIST.
constexpr const char* kIdxPrefix[2] = {"train", "t10k"};

std::vector<std::string> subfolders(const fs::path& p) {
  std::vector<std::string> out;
  std::error_code ec;
  fs::directory_iterator it(p, ec), end;
  if (ec) throw InputError("image folder '" + p.string() + "': cannot read: " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) throw InputError("image folder '" + p.string() + "': cannot read: " + ec.message());
    if (it->is_directory(ec) && it->path().filename().string()[0] != '.')
      out.push_back(it->path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string list(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < 5; ++i) s += (i ? ", " : "") + v[i];
  if (v.size() > 5) s += ", ... (" + std::to_string(v.size()) + ")";
  return s;
}

void scan_class(const fs::path& root, const std::string& split, const std::string& cls, int label,
                std::vector<FolderFile>* out, int* skipped) {
  const fs::path folder = root / split / cls;
  std::vector<FolderFile> found;
  std::error_code ec;
  fs::recursive_directory_iterator it(folder, fs::directory_options::follow_directory_symlink, ec),
      end;
  if (ec) throw InputError("image folder '" + folder.string() + "': cannot read: " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec)
      throw InputError("image folder '" + folder.string() + "': cannot read: " + ec.message());
    const std::string path = it->path().string();
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if (!is_image_file_name(path)) {
      ++*skipped;
      continue;
    }
    FolderFile f;
    f.path = it->path().lexically_relative(root).string();  // no syscalls, unlike fs::relative
    f.label = label;
    f.size = static_cast<uint64_t>(st.st_size);
    f.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    found.push_back(std::move(f));
  }
  if (found.empty())
    throw InputError("image folder '" + folder.string() +
                     "': class folder holds no image (.png .jpg .jpeg .bmp .pgm .ppm .gif)");
  std::sort(found.begin(), found.end(),
            [](const FolderFile& a, const FolderFile& b) { return a.path < b.path; });
  out->insert(out->end(), found.begin(), found.end());
}

// Writes `text` to `path` through a temp file and a rename.
void write_text_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << text;
    f.flush();
    if (!f) throw Error(errno_message("image cache: cannot write '" + tmp + "'"));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw Error(errno_message("image cache: cannot rename '" + tmp + "'"));
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return "";
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

FolderScan scan_image_folder(const std::string& dir, const FolderOptions& o) {
  FolderScan s;
  s.dir = dir;
  const fs::path root(dir);
  std::error_code ec;
  if (!fs::is_directory(root, ec))
    throw InputError("image folder '" + dir +
                     "': " + (fs::exists(root, ec) ? "not a folder" : "does not exist"));
  std::vector<std::string> found[2];
  for (int k = 0; k < 2; ++k) {
    if (!fs::is_directory(root / kSplits[k], ec))
      throw InputError("image folder '" + dir + "': no " + kSplits[k] + "/ folder (expected " +
                       dir + "/train/<class>/*.png and " + dir + "/test/<class>/*.png)");
    found[k] = subfolders(root / kSplits[k]);
    if (found[k].empty())
      throw InputError("image folder '" + (root / kSplits[k]).string() +
                       "': no class folders (expected " + kSplits[k] + "/<class>/*.png)");
  }
  for (int k = 0; k < 2; ++k)
    for (const std::string& c : found[k])
      if (!std::binary_search(found[1 - k].begin(), found[1 - k].end(), c))
        throw InputError("image folder '" + dir + "': class '" + c + "' is in " + kSplits[k] +
                         "/ but not in " + kSplits[1 - k] + "/ (both need the same classes)");
  s.classes = found[0];
  if (!o.class_names.empty()) {
    std::vector<std::string> named = o.class_names;
    std::sort(named.begin(), named.end());
    if (named != found[0])
      throw InputError("image folder '" + dir + "': data.class_names (" + list(o.class_names) +
                       ") must name its class folders (" + list(found[0]) + ")");
    s.classes = o.class_names;
  }
  if (s.classes.size() > 256 ||
      (o.expected_classes > 0 && static_cast<int>(s.classes.size()) != o.expected_classes))
    throw InputError("image folder '" + dir + "': " + std::to_string(s.classes.size()) +
                     " class folders (" + list(s.classes) + ") but model.classes is " +
                     std::to_string(o.expected_classes));
  for (int k = 0; k < 2; ++k)
    for (size_t c = 0; c < s.classes.size(); ++c)
      scan_class(root, kSplits[k], s.classes[c], static_cast<int>(c), k ? &s.test : &s.train,
                 &s.skipped);
  return s;
}

std::string folder_cache_dir(const std::string& dir, const FolderOptions& o) {
  return o.cache_dir.empty() ? (fs::path(dir) / ".dpcnn-cache").string() : o.cache_dir;
}

std::string folder_manifest(const FolderScan& scan, const FolderOptions& o) {
  std::string m = "dpcnn image-folder cache 1\n";
  m += std::string("preprocess ") + preprocess_name(o.preprocess) + "\n";
  m += "input " + std::to_string(o.channels) + " " + std::to_string(o.height) + " " +
       std::to_string(o.width) + "\n";
  m += "classes " + std::to_string(scan.classes.size()) + "\n";
  for (const std::string& c : scan.classes) m += "class " + c + "\n";
  for (int k = 0; k < 2; ++k) {
    const auto& files = k ? scan.test : scan.train;
    m += std::string(kSplits[k]) + " " + std::to_string(files.size()) + "\n";
    for (const FolderFile& f : files)
      m += std::to_string(f.label) + " " + std::to_string(f.size) + " " +
           std::to_string(f.mtime_ns) + " " + f.path + "\n";
  }
  return m;
}

void build_folder_cache(const FolderScan& scan, const FolderOptions& o,
                        const std::string& cache_dir) {
  const size_t sz = static_cast<size_t>(o.channels) * o.height * o.width;
  IdxArray images[2], labels[2];
  std::vector<const FolderFile*> all;
  for (int k = 0; k < 2; ++k) {
    const auto& files = k ? scan.test : scan.train;
    const uint32_t n = static_cast<uint32_t>(files.size());
    images[k].dims =
        o.channels == 1
            ? std::vector<uint32_t>{n, uint32_t(o.height), uint32_t(o.width)}
            : std::vector<uint32_t>{n, uint32_t(o.channels), uint32_t(o.height), uint32_t(o.width)};
    images[k].data.resize(n * sz);
    labels[k].dims = {n};
    labels[k].data.resize(n);
    for (const FolderFile& f : files) all.push_back(&f);
  }
  const int64_t n_train = static_cast<int64_t>(scan.train.size());
  const int64_t n = static_cast<int64_t>(all.size());
  int64_t first_bad = INT64_MAX;
  std::string bad_line;
  int64_t failed_other = 0;
#pragma omp parallel
  {
    Image img;
    std::vector<uint8_t> bytes;
#pragma omp for schedule(dynamic, 64)
    for (int64_t i = 0; i < n; ++i) {
      const int k = i < n_train ? 0 : 1;
      const int64_t j = k ? i - n_train : i;
      const std::string path = (fs::path(scan.dir) / all[i]->path).string();
      try {
        read_image(path, o.channels, &img, &bytes);
        preprocess_image(img, o.preprocess, o.channels, o.height, o.width,
                         images[k].data.data() + j * sz, path);
        labels[k].data[j] = static_cast<uint8_t>(all[i]->label);
      } catch (const std::exception& e) {
#pragma omp critical(dpcnn_folder_error)
        {
          if (i < first_bad) {
            first_bad = i;
            bad_line = e.what();
          }
          ++failed_other;
        }
      }
    }
  }
  if (first_bad != INT64_MAX) {
    if (failed_other > 1)
      bad_line += " (and " + std::to_string(failed_other - 1) + " more bad image(s))";
    throw InputError(bad_line);
  }
  std::error_code ec;
  fs::create_directories(cache_dir, ec);
  if (ec)
    throw InputError("image cache '" + cache_dir + "': cannot create: " + ec.message() +
                     " (set data.cache_dir to a writable folder)");
  // The manifest goes first and comes back last: a cache cut short is never current.
  fs::remove(fs::path(cache_dir) / kManifest, ec);
  const std::string tag = ".tmp" + std::to_string(::getpid());
  for (int k = 0; k < 2; ++k) {
    const std::string base = cache_dir + "/" + kIdxPrefix[k];
    const std::string im = base + "-images-idx3-ubyte", lb = base + "-labels-idx1-ubyte";
    write_idx(im + tag, images[k]);
    write_idx(lb + tag, labels[k]);
    if (std::rename((im + tag).c_str(), im.c_str()) != 0 ||
        std::rename((lb + tag).c_str(), lb.c_str()) != 0)
      throw Error(errno_message("image cache '" + cache_dir + "': cannot rename"));
  }
  std::string names;
  for (const std::string& c : scan.classes) names += c + "\n";
  write_text_atomic(cache_dir + "/classes.txt", names);
  write_text_atomic(cache_dir + "/" + kManifest, folder_manifest(scan, o));
}

FolderLoad load_image_folder(const std::string& dir, const FolderOptions& o, CacheUse use) {
  const auto t0 = std::chrono::steady_clock::now();
  FolderLoad r;
  const FolderScan scan = scan_image_folder(dir, o);
  const std::string cache = folder_cache_dir(dir, o);
  if (read_text(cache + "/" + kManifest) != folder_manifest(scan, o)) {
    if (use == CacheUse::kReadOnly)
      throw InputError("image cache '" + cache + "' does not match '" + dir +
                       "' after the build by another rank (did the folder change meanwhile?)");
    build_folder_cache(scan, o, cache);
    r.built = true;
  }
  r.data = load_mnist_dir(cache, static_cast<int>(scan.classes.size()));
  r.data.class_names = scan.classes;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace dpcnn
