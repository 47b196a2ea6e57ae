// Command-line errors of the launcher's tools end the same way as every other
// bad input: one line and exit 2 (CLI11's own codes, 106/109/..., are not the
// project's); --help and --version print and exit 0. Main thread, once.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdio>

#include "core/exit_codes.h"

namespace dpcnn::launcher {

// Parses; returns -1 to go on, or the exit code to return from main.
inline int parse_command_line(CLI::App& app, int argc, char** argv, const char* tool) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help, --help-all, --version: printed, not an error
    (void)app.exit(e);
    return exit_code::kOk;
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "%s: %s (see --help)\n", tool, e.what());
    return exit_code::kBadInput;
  }
  return -1;
}

}  // namespace dpcnn::launcher
