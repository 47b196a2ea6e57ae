// dpcnn::Error: the exception type the project throws for bad input and failed
// operations. Its message is a complete, user-facing line that names the file,
// key or rank at fault; mains print what() once and exit with exit_code()
// (core/exit_codes.h): InputError for bad input (2), BusyError for a locked run
// directory or a taken port (3), plain Error for runtime failures (1).
// Thread-safe as any std::exception.
#pragma once

#include <stdexcept>
#include <string>

#include "core/exit_codes.h"

namespace dpcnn {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message, int exit_code = exit_code::kFailure)
      : std::runtime_error(message), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

// Bad input: a config, data file, image, checkpoint or setting the user can fix.
class InputError : public Error {
 public:
  explicit InputError(const std::string& message) : Error(message, exit_code::kBadInput) {}
};

// Another process owns what we need (a run directory's lock, a port).
class BusyError : public Error {
 public:
  explicit BusyError(const std::string& message) : Error(message, exit_code::kBusy) {}
};

// Builds "<what>: <errno text>" for failed system calls.
std::string errno_message(const std::string& what);

}  // namespace dpcnn
