// What dpcnn-predict is asked to classify: the files named on the command line
// in the order given, and every image file under the folders named, recursively
// and sorted by path, so two runs list the same files in the same order.
// Files in folders are picked by extension; the rest are counted as skipped.
// Free functions over the file system; any thread.
#pragma once

#include <string>
#include <vector>

namespace dpcnn {

struct InputFiles {
  std::vector<std::string> files;
  int skipped = 0;  // files under the folders that are not images (by extension)
};

// True for .png .jpg .jpeg .bmp .gif .pgm .ppm .pnm, any case.
bool has_image_extension(const std::string& path);

// Expands `args` (files and folders). A named file is taken whatever its
// extension (the decoder then says if it is no image); a name that does not
// exist is kept too, so it gets its own "cannot open" line. Throws InputError
// for a folder that cannot be read.
InputFiles collect_inputs(const std::vector<std::string>& args);

}  // namespace dpcnn
