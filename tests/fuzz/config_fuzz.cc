// Fuzzes the experiment file reader: YAML text, and --set overrides (the lines
// after a line "@@"), through parse_config. Any outcome but a Config or a
// dpcnn::Error (another exception, a crash, a sanitizer report) is a bug: bad
// input must give one line naming the file or key.
#include <string>
#include <vector>

#include "config/config.h"
#include "core/error.h"
#include "fuzz_seeds.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t split = input.find("\n@@\n");
  std::vector<std::string> overrides;
  if (split != std::string::npos) {
    std::string rest = input.substr(split + 4);
    for (size_t at = 0; at <= rest.size() && overrides.size() < 8;) {
      const size_t end = std::min(rest.find('\n', at), rest.size());
      overrides.push_back(rest.substr(at, end - at));
      at = end + 1;
    }
  }
  try {
    dpcnn::parse_config(input.substr(0, split), "fuzz.yaml", overrides);
  } catch (const dpcnn::Error&) {
  }
  return 0;
}
