#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "fuzz_seeds.h"
#include "image/image.h"

std::vector<std::string> fuzz_seeds() {
  std::vector<std::string> seeds;
  std::vector<uint8_t> px(8 * 6 * 3);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>(i * 37);
  const std::string base =
      (std::filesystem::temp_directory_path() / ("dpcnn-seed-" + std::to_string(::getpid())))
          .string();
  for (const char* ext : {".png", ".bmp", ".jpg"})
    for (int channels : {1, 3}) {
      const std::string path = base + ext;
      dpcnn::write_image(path, px.data(), 8, 6, channels);
      std::ifstream in(path, std::ios::binary);
      seeds.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      std::remove(path.c_str());
    }
  seeds.push_back("P5\n4 2\n255\n" + std::string("\x00\x40\x80\xff\x10\x20\x30\x40", 8));
  seeds.push_back(std::string("P6\n1 2\n255\n\xff\x00\x00\x00\x00\xff", 17));
  seeds.push_back(
      std::string("GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00"
                  ",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00;",
                  35));
  return seeds;
}
