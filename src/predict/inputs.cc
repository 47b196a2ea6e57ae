#include "predict/inputs.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "core/error.h"
#include "image/image.h"

namespace dpcnn {
namespace fs = std::filesystem;

bool has_image_extension(const std::string& path) { return is_image_file_name(path); }

InputFiles collect_inputs(const std::vector<std::string>& args) {
  InputFiles in;
  for (const std::string& a : args) {
    std::error_code ec;
    if (!fs::is_directory(a, ec)) {
      in.files.push_back(a);
      continue;
    }
    std::vector<std::string> found;
    fs::recursive_directory_iterator it(a, fs::directory_options::skip_permission_denied, ec), end;
    if (ec) throw InputError("folder '" + a + "': cannot read: " + ec.message());
    for (; it != end; it.increment(ec)) {
      if (ec) throw InputError("folder '" + a + "': cannot read: " + ec.message());
      if (!it->is_regular_file(ec)) continue;
      const std::string p = it->path().string();
      if (has_image_extension(p))
        found.push_back(p);
      else
        ++in.skipped;
    }
    std::sort(found.begin(), found.end());
    in.files.insert(in.files.end(), found.begin(), found.end());
  }
  return in;
}

}  // namespace dpcnn
