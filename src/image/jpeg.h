// JPEG decoding with libjpeg-turbo, private to the image module.
//
// Why not stb_image for JPEG: Debian 12's stb_image 2.27 is not made for
// untrusted files, and its JPEG reader kept failing the fuzzer (a Huffman table
// overflow, scans over uninitialised tables, an out-of-range shift in its bit
// reader). libjpeg-turbo is the reference decoder, fuzzed continuously
// upstream, and Debian ships its security fixes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace dpcnn {

struct ImageLimits;

// Throws "image '<name>': absurd dimensions ..." beyond `limits`; every
// format's reader calls it before decoding pixels (defined in image.cc).
void check_image_dimensions(const std::string& name, int64_t width, int64_t height,
                            const ImageLimits& limits);

namespace jpeg {

// True when the bytes start with a JPEG's SOI marker (FF D8 FF).
bool is_jpeg(const uint8_t* data, size_t size);

// Decodes a JPEG to 8-bit gray (1 channel, for a grayscale file) or RGB (3,
// for anything in colour, CMYK included), row-major, into `pixels` (reused).
// Throws dpcnn::InputError "image '<name>': <why>" for damaged, truncated or
// absurdly large files; the dimensions are checked against `limits` before a
// pixel is decoded.
void decode(const uint8_t* data, size_t size, const std::string& name, const ImageLimits& limits,
            int* width, int* height, int* channels, std::vector<uint8_t>* pixels);

}  // namespace jpeg
}  // namespace dpcnn
