#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "fuzz_seeds.h"

// Every shipped experiment file, and each again with a few --set overrides.
std::vector<std::string> fuzz_seeds() {
  std::vector<std::string> seeds;
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(DPCNN_SOURCE_DIR "/configs"))
    if (e.path().extension() == ".yaml") files.push_back(e.path());
  std::sort(files.begin(), files.end());  // a fixed order: fuzz.sh replays a fixed seed
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(in)), {});
    seeds.push_back(text);
    seeds.push_back(text + "\n@@\ntrain.epochs=2\nmodel.layers[1].filters=8\noptimizer.type=sgd");
  }
  return seeds;
}
