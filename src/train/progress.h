// Progress: Keras-style console output for rank 0. Per epoch
//   Epoch 1/5
//   125/125 [==============================] - 3s 24ms/step - loss: 0.5123 - accuracy: 0.8412 -
//   val_loss: ...
// Two modes, chosen by the worker's main (--progress; auto: a live bar on a
// terminal when not under mpirun, lines otherwise):
// - live: the bar is redrawn in place (at most ~10 times a second) and always
//   fits the terminal (never wider than its columns - 1, so it never wraps);
//   the epoch's last line is split at " - " where it would not fit.
// - lines (logs, pipes, mpirun): one line every `interval_s` inside an epoch
//   ("Epoch 1/5 - 400/938 - ETA: 6s - loss: ... - accuracy: ...") and the
//   epoch's last line, whole.
// `steps` of begin_epoch is the steps this epoch will really run (max_steps
// can end one early), so the bar ends full at the true count.
// loss/accuracy of step() are rank 0's running means of the epoch so far; the
// epoch's last line gets the whole-epoch means over every rank.
// Not thread-safe; training thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>

namespace dpcnn {

struct ProgressOptions {
  bool enabled = false;    // print at all (rank 0)
  bool live = false;       // redraw a bar in place (a terminal)
  int columns = 0;         // terminal width; 0: terminal_columns(stdout)
  double interval_s = 10;  // lines mode: a line this often inside an epoch; 0: none
  std::FILE* out = stdout;
  // The clock (tests pass a fake one); default: steady_clock::now.
  std::function<std::chrono::steady_clock::time_point()> now;
};

// The width of the terminal on `fd` (TIOCGWINSZ), else $COLUMNS, else 80.
int terminal_columns(int fd);

// The live line for `width` columns, never longer than width - 1: the bar
// shrinks first, then the labels, then the bar goes, then the text is cut.
std::string progress_bar_line(int64_t done, int64_t steps, double eta_s, double loss,
                              double accuracy, int width);

// `line` split at its " - " separators into lines of at most width - 1
// characters (continuations indented by two spaces); a part longer than that
// on its own is cut. Each line ends in '\n'.
std::string fit_lines(const std::string& line, int width);

class Progress {
 public:
  explicit Progress(ProgressOptions options);
  // `steps`: the step count this epoch ends at (counted from its start);
  // `first`: the steps already done before this process (a resumed epoch).
  void begin_epoch(int epoch, int epochs, int64_t steps, int64_t first = 0);
  // After each step: `done` steps of this epoch, and the running means so far.
  void step(int64_t done, double loss, double accuracy);
  // The final line of the epoch after `done` steps; `extra` is appended
  // (e.g. " - val_loss: ...").
  void end_epoch(int64_t done, double loss, double accuracy, const std::string& extra);

 private:
  using Clock = std::chrono::steady_clock;
  Clock::time_point now() const { return opt_.now ? opt_.now() : Clock::now(); }
  ProgressOptions opt_;
  int epoch_ = 0, epochs_ = 0;
  int64_t steps_ = 0, first_ = 0;
  Clock::time_point start_, last_draw_;
};

}  // namespace dpcnn
