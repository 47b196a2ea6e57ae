#include "train/progress.h"

#include <cstdio>

namespace dpcnn {

Progress::Progress(bool enabled, bool live) : enabled_(enabled), tty_(enabled && live) {}

void Progress::begin_epoch(int epoch, int epochs, int64_t steps) {
  steps_ = steps;
  start_ = last_draw_ = std::chrono::steady_clock::now();
  if (enabled_) std::printf("Epoch %d/%d\n", epoch, epochs), std::fflush(stdout);
}

std::string Progress::bar(int64_t done) const {
  const int width = 30;
  const int filled = steps_ > 0 ? static_cast<int>(width * done / steps_) : width;
  std::string b = std::to_string(done) + "/" + std::to_string(steps_) + " [";
  for (int i = 0; i < width; ++i) b += i < filled ? '=' : (i == filled ? '>' : '.');
  return b + "]";
}

void Progress::step(int64_t done, double loss, double accuracy) {
  if (!tty_) return;
  const auto now = std::chrono::steady_clock::now();
  if (done < steps_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  const double el = std::chrono::duration<double>(now - start_).count();
  const double eta = done > 0 ? el / done * (steps_ - done) : 0;
  std::printf("\r%s - ETA: %.0fs - loss: %.4f - accuracy: %.4f\033[K", bar(done).c_str(), eta, loss,
              accuracy);
  std::fflush(stdout);
}

void Progress::end_epoch(double loss, double accuracy, const std::string& extra) {
  if (!enabled_) return;
  const double el =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::printf("%s%s - %.0fs %.0fms/step - loss: %.4f - accuracy: %.4f%s\n", tty_ ? "\r" : "",
              bar(steps_).c_str(), el, steps_ > 0 ? 1000 * el / steps_ : 0.0, loss, accuracy,
              extra.c_str());
  std::fflush(stdout);
}

}  // namespace dpcnn
