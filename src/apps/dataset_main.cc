// dpcnn-dataset: converts between image folders (DIR/train/<class>/*.png,
// DIR/test/<class>/...) and MNIST-named IDX files, both ways, with the same
// decoding and preprocessing that training on a folder uses (to-idx writes
// exactly the cache data.format: folder builds). No MPI, no oneDNN. Maps bad
// input to one line on stderr and exit code 2.
#include <omp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/exit_codes.h"
#include "core/version.h"
#include "data/dataset.h"
#include "data/image_folder.h"
#include "image/image.h"
#include "image/pipeline.h"

namespace {
namespace fs = std::filesystem;

std::vector<std::string> split_names(const std::string& s) {
  std::vector<std::string> out;
  if (s.empty()) return out;
  size_t a = 0;
  for (size_t b; (b = s.find(',', a)) != std::string::npos; a = b + 1)
    out.push_back(s.substr(a, b - a));
  out.push_back(s.substr(a));
  return out;
}

struct ToIdx {
  std::string dir, out, preprocess = "none", size, class_names;
  int channels = 1;
};

int to_idx(const ToIdx& t) {
  dpcnn::FolderOptions o;
  o.preprocess = dpcnn::parse_preprocess(t.preprocess);
  o.channels = t.channels;
  o.class_names = split_names(t.class_names);
  const dpcnn::FolderScan scan = dpcnn::scan_image_folder(t.dir, o);
  if (!t.size.empty()) {
    if (std::sscanf(t.size.c_str(), "%dx%d", &o.height, &o.width) != 2 || o.height < 1 ||
        o.width < 1)
      throw dpcnn::InputError("--size '" + t.size + "': expected HxW, e.g. 28x28");
  } else if (o.preprocess == dpcnn::Preprocess::kMnist) {
    o.height = o.width = 28;
  } else {  // the first training image sets the size
    dpcnn::Image img;
    std::vector<uint8_t> bytes;
    dpcnn::read_image((fs::path(t.dir) / scan.train[0].path).string(), o.channels, &img, &bytes);
    o.height = img.height;
    o.width = img.width;
  }
  std::error_code ec;
  if (fs::exists(t.out, ec) && !fs::is_directory(t.out, ec))
    throw dpcnn::InputError("'" + t.out + "' exists and is not a folder");
  dpcnn::build_folder_cache(scan, o, t.out);
  std::printf("wrote %s: %zu train + %zu test images of %dx%dx%d, %zu classes (%s)\n",
              t.out.c_str(), scan.train.size(), scan.test.size(), o.channels, o.height, o.width,
              scan.classes.size(), dpcnn::preprocess_name(o.preprocess));
  if (scan.skipped)
    std::printf("skipped %d non-image file(s) in the class folders\n", scan.skipped);
  return 0;
}

struct ToFolder {
  std::string idx, out, class_names;
};

// Folder names must sort in label order (ImageFolder sorts them), or the
// labels come back permuted; names that do not are said so.
int to_folder(const ToFolder& t) {
  const dpcnn::DataSplit s = dpcnn::load_mnist_dir(t.idx, 256);
  int classes = 0;
  for (const dpcnn::Dataset* d : {&s.train, &s.test})
    for (uint8_t y : d->labels) classes = std::max(classes, y + 1);
  std::vector<std::string> names = split_names(t.class_names);
  if (names.empty()) {
    std::ifstream f(fs::path(t.idx) / "classes.txt");
    for (std::string line; std::getline(f, line);) names.push_back(line);
  }
  if (names.empty()) {
    const int digits = static_cast<int>(std::to_string(std::max(0, classes - 1)).size());
    for (int k = 0; k < classes; ++k) {
      std::string n = std::to_string(k);
      names.push_back(std::string(digits - n.size(), '0') + n);
    }
  }
  if (static_cast<int>(names.size()) < classes)
    throw dpcnn::InputError("'" + t.idx + "' has labels up to " + std::to_string(classes - 1) +
                            " but " + std::to_string(names.size()) + " class names");
  for (std::string& n : names) {
    if (n.empty() || n == "." || n == ".." || n[0] == '.')
      throw dpcnn::InputError("class name '" + n + "' cannot name a folder");
    std::replace(n.begin(), n.end(), '/', '_');
  }
  std::vector<std::string> sorted = names;
  std::sort(sorted.begin(), sorted.end());
  std::error_code ec;
  if (fs::exists(t.out, ec) && !fs::is_empty(t.out, ec))
    throw dpcnn::InputError("'" + t.out + "' exists and is not empty");
  const char* split[2] = {"train", "test"};
  const dpcnn::Dataset* sets[2] = {&s.train, &s.test};
  for (int k = 0; k < 2; ++k)
    for (const std::string& n : names) {
      fs::create_directories(fs::path(t.out) / split[k] / n, ec);
      if (ec)
        throw dpcnn::Error("cannot create '" + (fs::path(t.out) / split[k] / n).string() +
                           "': " + ec.message());
    }
  for (int k = 0; k < 2; ++k) {
    const dpcnn::Dataset& d = *sets[k];
    const int digits = std::max(5, static_cast<int>(std::to_string(d.count - 1).size()));
    const size_t plane = static_cast<size_t>(d.height) * d.width;
    std::exception_ptr error;
#pragma omp parallel
    {
      std::vector<uint8_t> hwc(plane * d.channels);
#pragma omp for schedule(dynamic, 64)
      for (int i = 0; i < d.count; ++i) {
        const uint8_t* chw = d.images.data() + static_cast<size_t>(i) * d.image_size();
        for (size_t p = 0; p < plane; ++p)
          for (int c = 0; c < d.channels; ++c) hwc[p * d.channels + c] = chw[c * plane + p];
        std::string n = std::to_string(i);
        n = std::string(digits - n.size(), '0') + n + ".png";
        try {
          dpcnn::write_image((fs::path(t.out) / split[k] / names[d.labels[i]] / n).string(),
                             hwc.data(), d.width, d.height, d.channels);
        } catch (...) {
#pragma omp critical(dpcnn_dataset_error)
          if (!error) error = std::current_exception();
        }
      }
    }
    if (error) std::rethrow_exception(error);
  }
  std::printf("wrote %s: %d train + %d test PNGs of %dx%dx%d in %zu class folders\n", t.out.c_str(),
              s.train.count, s.test.count, s.train.channels, s.train.height, s.train.width,
              names.size());
  if (sorted != names) {
    std::string list;
    for (const std::string& n : names) list += (list.empty() ? "" : ", ") + n;
    std::printf(
        "note: the class names do not sort in label order; to keep the labels set "
        "data.class_names: [%s] (or pass --class-names to to-idx)\n",
        list.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "dpcnn-dataset: image folders <-> IDX files\n"
      "  dpcnn-dataset to-idx DIR OUT      DIR/{train,test}/<class>/*.png -> OUT/*-ubyte\n"
      "  dpcnn-dataset to-folder IDXDIR OUT  IDX files -> OUT/{train,test}/<class>/*.png"};
  app.require_subcommand(1);
  app.set_version_flag("--version", [] {
    std::string v = dpcnn::version_report("dpcnn-dataset", {});
    v.pop_back();
    return v;
  });
  ToIdx ti;
  CLI::App* idx = app.add_subcommand(
      "to-idx", "decode an image folder into IDX files (what data.format: folder caches)");
  idx->add_option("DIR", ti.dir, "image folder with train/ and test/")->required();
  idx->add_option("OUT", ti.out, "output folder")->required();
  idx->add_option("--preprocess", ti.preprocess, "none (default), resize or mnist")
      ->check(CLI::IsMember({"none", "resize", "mnist"}));
  idx->add_option("--channels", ti.channels, "1 (gray, default) or 3 (RGB)")
      ->check(CLI::IsMember({1, 3}));
  idx->add_option("--size", ti.size, "HxW (default: the first image's size; mnist: 28x28)");
  idx->add_option("--class-names", ti.class_names,
                  "class folders in label order, comma-separated (default: sorted)");
  ToFolder tf;
  CLI::App* folder = app.add_subcommand("to-folder", "write IDX files as PNGs in class folders");
  folder->add_option("IDXDIR", tf.idx, "folder with {train,t10k}-{images,labels}-idx*-ubyte[.gz]")
      ->required();
  folder->add_option("OUT", tf.out, "output folder (new or empty)")->required();
  folder->add_option("--class-names", tf.class_names,
                     "folder names by label, comma-separated (default: IDXDIR/classes.txt, "
                     "else the label numbers)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::fprintf(stderr, "dpcnn-dataset: %s (see --help)\n", e.what());
    return dpcnn::exit_code::kBadInput;
  }
  try {
    return idx->parsed() ? to_idx(ti) : to_folder(tf);
  } catch (const dpcnn::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "dpcnn-dataset: %s\n", e.what());
    return e.exit_code();
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "dpcnn-dataset: internal error: %s\n", e.what());
    return dpcnn::exit_code::kFailure;
  }
}
