// Fuzzes image decoding (stb_image behind our checks; libjpeg-turbo for JPEG)
// and both preprocessing modes on whatever decodes. Limits are lower than the
// tool's so that a tiny header cannot make every run allocate hundreds of
// megabytes.
#include "core/error.h"
#include "fuzz_seeds.h"
#include "image/image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  dpcnn::ImageLimits limits;
  limits.max_side = 4096;
  limits.max_pixels = 1 << 20;
  try {
    const dpcnn::GrayImage g = dpcnn::load_image_from_memory(data, size, "fuzz", limits);
    for (auto mode : {dpcnn::Preprocess::kMnist, dpcnn::Preprocess::kResize}) {
      const std::vector<float> v = dpcnn::preprocess_digit(g, mode);
      for (float p : v)
        if (!(p >= 0.0f && p <= 1.0f)) __builtin_trap();  // out of [0,1] or NaN
    }
  } catch (const dpcnn::Error&) {
  }
  return 0;
}
