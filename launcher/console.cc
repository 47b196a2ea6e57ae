#include "launcher/console.h"

#include <sys/ioctl.h>
#include <unistd.h>

namespace dpcnn::launcher {

Console::Console() : tty_(isatty(STDOUT_FILENO) == 1) {}

void Console::erase_locked() {
  if (!live_.empty()) std::fputs("\r\033[K", stdout);
}

void Console::line(std::FILE* to, const std::string& text) {
  std::lock_guard lock(mu_);
  erase_locked();
  std::fflush(stdout);
  std::fprintf(to, "%s\n", text.c_str());
  std::fflush(to);
  if (!live_.empty()) {
    std::fputs(live_.c_str(), stdout);
    std::fflush(stdout);
  }
}

void Console::live(const std::string& text) {
  if (!tty_) return;
  std::lock_guard lock(mu_);
  erase_locked();
  live_ = text;
  // A line wider than the terminal wraps, and "\r\033[K" then erases only its
  // last row: cut it to the columns - 1 (when the terminal says its width).
  winsize ws{};
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 && live_.size() >= ws.ws_col)
    live_.resize(ws.ws_col - 1);
  std::fputs(live_.c_str(), stdout);
  std::fflush(stdout);
}

void Console::clear_live() {
  std::lock_guard lock(mu_);
  erase_locked();
  live_.clear();
  std::fflush(stdout);
}

}  // namespace dpcnn::launcher
