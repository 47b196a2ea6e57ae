// Data augmentation (data.augment): a random affine distortion of each
// training image - shift, rotation, scale, optional left-right flip - sampled
// bilinearly with 0 outside the image. The transform of a sample is a pure
// function of (seed, epoch, the sample's index in the training set): a
// counter-based draw, not a stream, so a rank that fills only its slice of a
// batch draws exactly what one rank filling the whole batch would, and reruns
// are bit-identical. Pure functions over immutable data; safe from any thread.
#pragma once

#include <cstdint>
#include <vector>

#include "config/config.h"
#include "data/dataset.h"

namespace dpcnn {

// Maps an output pixel (x, y) to the source position it samples:
// sx = a*x + b*y + tx, sy = c*x + d*y + ty (pixel centres at integer coordinates).
struct Affine {
  float a = 1, b = 0, tx = 0;
  float c = 0, d = 1, ty = 0;
};

// The transform of training sample `index` in epoch `epoch` for an image of
// height x width: rotation, scale and shift about the centre, then the flip.
Affine draw_affine(const AugmentConfig& aug, uint64_t seed, int epoch, int64_t index, int height,
                   int width);

// Writes the `channels` x height x width uint8 image `src` warped by `t` as
// floats in [0, 1] (pixel / 255) into `dst`; positions outside read as 0.
void warp_image(const uint8_t* src, int channels, int height, int width, const Affine& t,
                float* dst);

// fill_batch with every image augmented (see dataset.h): `indices` are the
// samples' indices in `d`, which also pick their transforms. Uses OpenMP
// threads over the batch when there are several; the result does not depend
// on how many.
void fill_batch_augmented(const Dataset& d, const int64_t* indices, int n, float* out,
                          int32_t* labels_out, const AugmentConfig& aug, uint64_t seed, int epoch);

}  // namespace dpcnn

namespace dpcnn {

// A picture of what augmentation does (dpcnn-train --augment-grid): `rows`
// training samples (the first of each class, then the next ones), each as
// stored followed by its transforms in epochs 0 .. cols-2, channel 0 only,
// magnified `zoom` times with a 2-pixel grey border. Returns 8-bit grayscale.
std::vector<uint8_t> augment_grid(const Dataset& d, const AugmentConfig& aug, uint64_t seed,
                                  int rows, int cols, int zoom, int* width, int* height);

}  // namespace dpcnn
