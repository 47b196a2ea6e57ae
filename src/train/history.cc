#include "train/history.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace dpcnn {

std::string to_json(const EpochMetrics& m) {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "{\"epoch\":%d,\"step\":%lld,\"loss\":%.6f,\"accuracy\":%.6f,\"val_loss\":%.6f,"
                "\"val_accuracy\":%.6f,\"lr\":%.6g,\"seconds\":%.3f,\"images_per_sec\":%.1f}",
                m.epoch, m.step, m.loss, m.accuracy, m.val_loss, m.val_accuracy, m.lr, m.seconds,
                m.images_per_sec);
  return buf;
}

// Checked through close: a full disk is an error, not a silently short log.
void append_metrics(const std::string& path, const EpochMetrics& m) {
  std::ofstream f(path, std::ios::app);
  if (!f) throw Error(errno_message("cannot write '" + path + "'"));
  f << to_json(m) << '\n';
  f.close();
  if (!f) throw Error(errno_message("cannot write '" + path + "'"));
}

void write_file_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    if (!f) throw Error(errno_message("cannot write '" + tmp + "'"));
    f << text;
    f.close();
    if (!f) {
      const Error e(errno_message("cannot write '" + tmp + "'"));
      std::filesystem::remove(tmp);
      throw e;
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw Error("cannot rename '" + tmp + "' to '" + path + "': " + ec.message());
}

namespace {

// One panel: x = epoch, series drawn as polylines with dots.
void panel(std::ostringstream& o, double x0, double y0, double w, double h, const char* label,
           const std::vector<EpochMetrics>& hist, double (*train)(const EpochMetrics&),
           double (*test)(const EpochMetrics&)) {
  double lo = 1e300, hi = -1e300;
  for (auto& m : hist) {
    lo = std::min(lo, train(m));
    hi = std::max(hi, train(m));
    if (test(m) >= 0) {
      lo = std::min(lo, test(m));
      hi = std::max(hi, test(m));
    }
  }
  if (hi - lo < 1e-9) {
    hi += 0.5;
    lo -= 0.5;
  }
  const double pad = (hi - lo) * 0.08;
  lo -= pad;
  hi += pad;
  const int n = static_cast<int>(hist.size());
  auto px = [&](int i) { return x0 + (n > 1 ? w * i / (n - 1) : w / 2); };
  auto py = [&](double v) { return y0 + h - h * (v - lo) / (hi - lo); };
  o << "<rect x='" << x0 << "' y='" << y0 << "' width='" << w << "' height='" << h
    << "' fill='none' stroke='#999'/>\n";
  o << "<text x='" << x0 << "' y='" << y0 - 8 << "' font-size='14'>" << label << "</text>\n";
  for (int k = 0; k <= 4; ++k) {
    const double v = lo + (hi - lo) * k / 4;
    o << "<text x='" << x0 - 6 << "' y='" << py(v) + 4 << "' font-size='10' text-anchor='end'>"
      << std::fixed;
    o.precision(3);
    o << v << "</text>\n";
  }
  for (int i = 0; i < n; ++i)
    o << "<text x='" << px(i) << "' y='" << y0 + h + 14 << "' font-size='10' text-anchor='middle'>"
      << hist[i].epoch << "</text>\n";
  auto series = [&](double (*f)(const EpochMetrics&), const char* color) {
    std::ostringstream pts;
    int count = 0;
    for (int i = 0; i < n; ++i) {
      if (f(hist[i]) < 0) continue;
      pts << px(i) << ',' << py(f(hist[i])) << ' ';
      o << "<circle cx='" << px(i) << "' cy='" << py(f(hist[i])) << "' r='3' fill='" << color
        << "'/>\n";
      ++count;
    }
    if (count > 1)
      o << "<polyline points='" << pts.str() << "' fill='none' stroke='" << color
        << "' stroke-width='2'/>\n";
  };
  series(train, "#1f77b4");
  series(test, "#d62728");
}

}  // namespace

std::string curves_svg(const std::vector<EpochMetrics>& hist, const std::string& title) {
  std::ostringstream o;
  o << "<svg xmlns='http://www.w3.org/2000/svg' width='820' height='360' "
       "font-family='sans-serif'>\n<rect width='820' height='360' fill='white'/>\n";
  o << "<text x='410' y='22' font-size='16' text-anchor='middle'>" << title << "</text>\n";
  o << "<text x='560' y='350' font-size='12' fill='#1f77b4'>train</text>"
       "<text x='610' y='350' font-size='12' fill='#d62728'>test</text>"
       "<text x='200' y='350' font-size='12'>epoch</text>\n";
  if (!hist.empty()) {
    panel(
        o, 60, 60, 320, 250, "loss", hist, [](const EpochMetrics& m) { return m.loss; },
        [](const EpochMetrics& m) { return m.val_loss; });
    panel(
        o, 470, 60, 320, 250, "accuracy", hist, [](const EpochMetrics& m) { return m.accuracy; },
        [](const EpochMetrics& m) { return m.val_accuracy; });
  }
  o << "</svg>\n";
  return o.str();
}

}  // namespace dpcnn
