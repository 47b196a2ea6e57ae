#include "train/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

namespace dpcnn {
namespace {

std::string fmt(const char* f, double a, double b = 0) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, a, b);
  return buf;
}

std::string bar_of(int64_t done, int64_t steps, int width) {
  const int filled = steps > 0 ? static_cast<int>(width * std::min(done, steps) / steps) : width;
  std::string b = "[";
  for (int i = 0; i < width; ++i) b += i < filled ? '=' : (i == filled ? '>' : '.');
  return b + "]";
}

std::string counter(int64_t done, int64_t steps) {
  return std::to_string(done) + "/" + std::to_string(steps);
}

constexpr int kBarWidth = 30;  // Keras's, when there is room
constexpr int kMinBar = 6;     // narrower says nothing: drop it

}  // namespace

int terminal_columns(int fd) {
  winsize ws{};
  if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  if (const char* c = std::getenv("COLUMNS")) {
    const int n = std::atoi(c);
    if (n > 0) return n;
  }
  return 80;
}

std::string progress_bar_line(int64_t done, int64_t steps, double eta_s, double loss,
                              double accuracy, int width) {
  const size_t budget = static_cast<size_t>(std::max(1, width - 1));
  const std::string c = counter(done, steps), eta = fmt(" - ETA: %.0fs", eta_s);
  const std::string tails[] = {eta + fmt(" - loss: %.4f - accuracy: %.4f", loss, accuracy),
                               eta + fmt(" - loss: %.4f - acc: %.4f", loss, accuracy),
                               fmt(" - loss: %.4f - acc: %.4f", loss, accuracy)};
  for (const std::string& tail : tails) {
    const size_t fixed = c.size() + 1 + 2 + tail.size();  // "N/M [" + "]" + tail
    if (fixed + kMinBar <= budget) {
      const int w = static_cast<int>(std::min<size_t>(kBarWidth, budget - fixed));
      return c + " " + bar_of(done, steps, w) + tail;
    }
  }
  for (const std::string& tail : tails)
    if (c.size() + tail.size() <= budget) return c + tail;
  return (c + tails[2]).substr(0, budget);
}

std::string fit_lines(const std::string& line, int width) {
  const size_t budget = static_cast<size_t>(std::max(1, width - 1));
  std::string out, cur;
  size_t pos = 0;
  while (pos <= line.size()) {
    size_t next = line.find(" - ", pos);
    std::string part = line.substr(pos, next == std::string::npos ? std::string::npos : next - pos);
    pos = next == std::string::npos ? line.size() + 1 : next + 3;
    if (cur.empty()) {
      cur = part;
    } else if (cur.size() + 3 + part.size() <= budget) {
      cur += " - " + part;
    } else {
      out += cur.substr(0, budget) + "\n";
      cur = "  " + part;
    }
  }
  return out + cur.substr(0, budget) + "\n";
}

Progress::Progress(ProgressOptions options) : opt_(std::move(options)) {
  if (!opt_.enabled) opt_.live = false;
  if (opt_.columns <= 0) opt_.columns = terminal_columns(fileno(opt_.out));
}

void Progress::begin_epoch(int epoch, int epochs, int64_t steps, int64_t first) {
  epoch_ = epoch;
  epochs_ = epochs;
  steps_ = steps;
  first_ = first;
  start_ = last_draw_ = now();
  if (opt_.enabled) std::fprintf(opt_.out, "Epoch %d/%d\n", epoch, epochs), std::fflush(opt_.out);
}

void Progress::step(int64_t done, double loss, double accuracy) {
  if (!opt_.enabled) return;
  const auto t = now();
  const double el = std::chrono::duration<double>(t - start_).count();
  const double eta = done > first_ ? el / double(done - first_) * double(steps_ - done) : 0;
  if (opt_.live) {
    if (done < steps_ && t - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = t;
    std::fprintf(opt_.out, "\r%s\033[K",
                 progress_bar_line(done, steps_, eta, loss, accuracy, opt_.columns).c_str());
  } else {
    // Lines: one every interval_s (the epoch's last line comes from end_epoch).
    if (opt_.interval_s <= 0 || done >= steps_ ||
        std::chrono::duration<double>(t - last_draw_).count() < opt_.interval_s)
      return;
    last_draw_ = t;
    std::fprintf(opt_.out, "Epoch %d/%d - %s - ETA: %.0fs - loss: %.4f - accuracy: %.4f\n", epoch_,
                 epochs_, counter(done, steps_).c_str(), eta, loss, accuracy);
  }
  std::fflush(opt_.out);
}

void Progress::end_epoch(int64_t done, double loss, double accuracy, const std::string& extra) {
  if (!opt_.enabled) return;
  const double el = std::chrono::duration<double>(now() - start_).count();
  const int64_t ran = done - first_;
  // The bar as wide as the live one was: the line reads as its last redraw.
  const std::string live = progress_bar_line(done, steps_, 0, loss, accuracy, opt_.columns);
  const size_t open = live.find('['), close = live.find(']');
  const int w = opt_.live ? (open == std::string::npos ? 0 : int(close - open - 1)) : kBarWidth;
  std::string line = counter(done, steps_);
  if (w > 0) line.append(" ").append(bar_of(done, steps_, w));
  line += fmt(" - %.0fs %.0fms/step", el, ran > 0 ? 1000 * el / double(ran) : 0.0);
  line += fmt(" - loss: %.4f - accuracy: %.4f", loss, accuracy);
  line += extra;
  if (opt_.live)
    std::fprintf(opt_.out, "\r\033[K%s", fit_lines(line, opt_.columns).c_str());
  else
    std::fprintf(opt_.out, "%s\n", line.c_str());
  std::fflush(opt_.out);
}

}  // namespace dpcnn
