// Progress: Keras-style console output for rank 0. Per epoch
//   Epoch 1/5
//   125/125 [==============================] - 3s 24ms/step - loss: 0.5123 - accuracy: 0.8412 -
//   val_loss: ...
// with the bar redrawn in place (at most ~10 times a second) when `live` (the
// worker's main decides: a terminal, not under mpirun, unless --progress says),
// and only the finished line otherwise (logs, CI, pipes).
// Not thread-safe; training thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace dpcnn {

class Progress {
 public:
  // enabled: print at all (rank 0); live: redraw a bar in place (a terminal).
  Progress(bool enabled, bool live);
  void begin_epoch(int epoch, int epochs, int64_t steps);
  // After each step, with the running means so far in this epoch.
  void step(int64_t done, double loss, double accuracy);
  // The final line of the epoch; `extra` is appended (e.g. " - val_loss: ...").
  void end_epoch(double loss, double accuracy, const std::string& extra);

 private:
  std::string bar(int64_t done) const;
  bool enabled_, tty_;
  int64_t steps_ = 0;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace dpcnn
