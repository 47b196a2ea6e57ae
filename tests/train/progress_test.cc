// The progress display's formatting: the live bar fits any terminal width
// (never more than width - 1 columns, so a redraw never wraps), the epoch's
// last line is split where it would not fit, lines mode prints one line per
// interval (a fake clock, no sleeping), and an epoch ended early by max_steps
// ends its bar at its true count.
#include "train/progress.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace dpcnn {
namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

TEST(ProgressBarLine, FitsEveryWidth) {
  for (int width : {20, 30, 40, 60, 79, 80, 81, 120, 200}) {
    for (int64_t steps : {int64_t{1}, int64_t{938}, int64_t{120000}}) {
      for (int64_t done : {int64_t{0}, steps / 2, steps}) {
        const std::string l = progress_bar_line(done, steps, 12345, 0.123456, 0.98765, width);
        EXPECT_LE(l.size(), size_t(width - 1)) << width << ": " << l;
        EXPECT_EQ(l.rfind(std::to_string(done) + "/" + std::to_string(steps), 0), 0u) << l;
      }
    }
  }
  // Wide: Keras's 30-column bar and every label; 80 columns: all of it, the
  // bar narrower; 60: a short bar and a short label; 40: the bar and the ETA
  // go, loss and accuracy stay.
  EXPECT_EQ(progress_bar_line(469, 938, 12, 0.5, 0.75, 200),
            "469/938 [===============>..............] - ETA: 12s - loss: 0.5000 - accuracy: "
            "0.7500");
  const std::string at80 = progress_bar_line(469, 938, 12, 0.5, 0.75, 80);
  EXPECT_EQ(at80.size(), 79u) << at80;
  EXPECT_NE(at80.find("[==="), std::string::npos) << at80;
  EXPECT_NE(at80.find(" - loss: 0.5000 - accuracy: 0.7500"), std::string::npos) << at80;
  EXPECT_EQ(progress_bar_line(469, 938, 12, 0.5, 0.75, 60),
            "469/938 [====>....] - ETA: 12s - loss: 0.5000 - acc: 0.7500");
  EXPECT_EQ(progress_bar_line(469, 938, 12, 0.5, 0.75, 40), "469/938 - loss: 0.5000 - acc: 0.7500");
}

TEST(ProgressBarLine, FinalLineIsSplitAtSeparators) {
  const std::string line =
      "938/938 [==============================] - 3s 24ms/step - loss: 0.5123 - accuracy: 0.8412 "
      "- val_loss: 0.4000 - val_accuracy: 0.9000 - 1234 img/s";
  for (int width : {40, 80, 200}) {
    const std::string out = fit_lines(line, width);
    for (const std::string& l : split_lines(out)) EXPECT_LE(l.size(), size_t(width - 1)) << l;
  }
  EXPECT_EQ(fit_lines(line, 200), line + "\n");
  EXPECT_EQ(fit_lines(line, 80),
            "938/938 [==============================] - 3s 24ms/step - loss: 0.5123\n"
            "  accuracy: 0.8412 - val_loss: 0.4000 - val_accuracy: 0.9000 - 1234 img/s\n");
}

TEST(ProgressBarLine, TerminalColumnsFallsBackToColumnsThenEighty) {
  std::FILE* f = std::tmpfile();  // not a terminal
  setenv("COLUMNS", "57", 1);
  EXPECT_EQ(terminal_columns(fileno(f)), 57);
  unsetenv("COLUMNS");
  EXPECT_EQ(terminal_columns(fileno(f)), 80);
  std::fclose(f);
}

// Output of a Progress on a memory stream with a clock the test moves.
struct Captured {
  explicit Captured(bool live, double interval_s = 10, int columns = 80) {
    out = open_memstream(&buf, &size);
    ProgressOptions o;
    o.enabled = true;
    o.live = live;
    o.columns = columns;
    o.interval_s = interval_s;
    o.out = out;
    o.now = [this] { return t; };
    progress = std::make_unique<Progress>(o);
  }
  ~Captured() {
    std::fclose(out);
    std::free(buf);
  }
  std::string text() {
    std::fflush(out);
    return std::string(buf, size);
  }
  Clock::time_point t{};
  char* buf = nullptr;
  size_t size = 0;
  std::FILE* out;
  std::unique_ptr<Progress> progress;
};

// Lines mode: a line once every interval of the fake clock (10 s here), not
// per step, plus the epoch's last line.
TEST(Progress, LinesModePrintsOneLinePerInterval) {
  Captured c(false, 10);
  c.progress->begin_epoch(2, 5, 100);
  for (int64_t s = 1; s <= 100; ++s) {
    c.t += std::chrono::milliseconds(450);  // 45 s for the epoch
    c.progress->step(s, 0.5, 0.75);
  }
  c.progress->end_epoch(100, 0.4, 0.8, " - val_loss: 0.3000");
  const std::vector<std::string> lines = split_lines(c.text());
  ASSERT_EQ(lines.size(), 6u) << c.text();  // Epoch, 4 interval lines (10/20/30/40 s), the last
  EXPECT_EQ(lines[0], "Epoch 2/5");
  EXPECT_EQ(lines[1], "Epoch 2/5 - 23/100 - ETA: 35s - loss: 0.5000 - accuracy: 0.7500");
  EXPECT_EQ(lines[4].rfind("Epoch 2/5 - 92/100 - ", 0), 0u) << lines[4];
  EXPECT_EQ(lines[5],
            "100/100 [==============================] - 45s 450ms/step - loss: 0.4000 - "
            "accuracy: 0.8000 - val_loss: 0.3000");
  // Interval 0: epoch lines only.
  Captured quiet(false, 0);
  quiet.progress->begin_epoch(1, 1, 10);
  for (int64_t s = 1; s <= 10; ++s)
    quiet.t += std::chrono::seconds(30), quiet.progress->step(s, 1, 0);
  quiet.progress->end_epoch(10, 1, 0, "");
  EXPECT_EQ(split_lines(quiet.text()).size(), 2u) << quiet.text();
}

// The live bar redraws in place within the width; an epoch that max_steps
// ends at step 400 of 938 (begin_epoch is told 400) ends its bar at 400/400.
TEST(Progress, LiveBarFitsAndEndsAtTheTrueCount) {
  for (int columns : {40, 80, 200}) {
    Captured c(true, 10, columns);
    c.progress->begin_epoch(1, 1, 400);
    for (int64_t s = 1; s <= 400; ++s) {
      c.t += std::chrono::milliseconds(150);
      c.progress->step(s, 0.5, 0.75);
    }
    c.progress->end_epoch(400, 0.4, 0.8, " - val_loss: 0.3000 - val_accuracy: 0.9000 - 99 img/s");
    const std::string text = c.text();
    std::string redraw;
    for (char ch : text) {
      if (ch == '\r' || ch == '\n') {
        const size_t esc = redraw.find("\033[K");
        const std::string visible = esc == std::string::npos ? redraw : redraw.erase(esc, 3);
        EXPECT_LE(visible.size(), size_t(columns - 1)) << columns << ": " << visible;
        redraw.clear();
      } else {
        redraw += ch;
      }
    }
    EXPECT_NE(text.find("\r\033[K400/400"), std::string::npos) << text;
    EXPECT_EQ(text.find("/938"), std::string::npos) << text;
  }
}

}  // namespace
}  // namespace dpcnn
