// The launcher's terminal output: workers' lines passed through, the
// launcher's own `launcher: ...` lines, and on a TTY one live summary line kept
// at the bottom (erased before any other line is printed, then redrawn).
// Thread-safe: the output pump and the supervisor print concurrently.
#pragma once

#include <cstdio>
#include <mutex>
#include <string>

namespace dpcnn::launcher {

class Console {
 public:
  Console();
  void line(std::FILE* to, const std::string& text);  // text without '\n'
  void say(const std::string& text) { line(stdout, "launcher: " + text); }
  void live(const std::string& text);  // TTY only, cut to its width; no-op otherwise
  void clear_live();
  bool tty() const { return tty_; }

 private:
  void erase_locked();
  std::mutex mu_;
  bool tty_ = false;
  std::string live_;  // what is drawn now ("" = nothing)
};

}  // namespace dpcnn::launcher
