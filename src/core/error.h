// dpcnn::Error: the one exception type the project throws for bad input and
// failed operations. Its message is a complete, user-facing line that names the
// file, key or rank at fault; mains print what() once and exit non-zero.
// Thread-safe as any std::exception.
#pragma once

#include <stdexcept>
#include <string>

namespace dpcnn {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Builds "<what>: <errno text>" for failed system calls.
std::string errno_message(const std::string& what);

}  // namespace dpcnn
