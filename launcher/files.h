// The launcher's small files (token, status.addr, status.ca): written whole or
// not at all. Each goes to a temp file in the same directory, is fsync'd and
// closed with every result checked, and only then renamed over the target (and
// the directory fsync'd), so a full disk or any other error leaves no empty or
// partial file in place: it throws std::runtime_error naming the file.
// Called from the launcher's main thread; no shared state.
#pragma once

#include <sys/types.h>

#include <string>

namespace dpcnn::launcher {

// Writes `text` to `path` with permission bits `mode` (given to the temp file
// from its creation, so the file never exists with wider ones).
void write_file_checked(const std::string& path, const std::string& text, mode_t mode = 0644);

// The first line of a file, without its newline; "" when it cannot be read.
std::string read_first_line(const std::string& path);

}  // namespace dpcnn::launcher
