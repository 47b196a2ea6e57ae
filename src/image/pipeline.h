// The one preprocessing pipeline from a decoded image to the network's input,
// shared by training on image folders (src/data/image_folder) and by
// dpcnn-predict, so a file classified by dpcnn-predict is fed exactly the
// bytes that training fed for it: C x H x W uint8, planar (CHW), which both
// turn into floats as pixel / 255. Free functions; safe from any thread.
#pragma once

#include <cstdint>
#include <string>

#include "image/image.h"

namespace dpcnn {

// "mnist", "resize" or "none" (the names of data.preprocess and of
// dpcnn-predict --preprocess). Throws InputError for anything else.
Preprocess parse_preprocess(const std::string& name);
const char* preprocess_name(Preprocess mode);

// `img` (decoded with `channels` channels) to channels x height x width bytes
// at `out`. kMnist needs one channel; kNone needs the image at exactly
// height x width; kResize resamples each channel (area down, bilinear up) and
// copies when the size already fits. Throws InputError naming `name`.
void preprocess_image(const Image& img, Preprocess mode, int channels, int height, int width,
                      uint8_t* out, const std::string& name);

}  // namespace dpcnn
