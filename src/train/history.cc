#include "train/history.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace dpcnn {

double metric_value(const EpochMetrics& m, const std::string& name) {
  if (name == "loss") return m.loss;
  if (name == "accuracy") return m.accuracy;
  if (name == "val_loss") return m.val_loss;
  if (name == "val_accuracy") return m.val_accuracy;
  if (name == "test_loss") return m.test_loss;
  if (name == "test_accuracy") return m.test_accuracy;
  return -1;
}

// As Keras's History: a metric is present only when it was measured.
std::string to_json(const EpochMetrics& m) {
  char buf[640];
  int n =
      std::snprintf(buf, sizeof buf, "{\"epoch\":%d,\"step\":%lld,\"loss\":%.6f,\"accuracy\":%.6f",
                    m.epoch, m.step, m.loss, m.accuracy);
  if (m.val_accuracy >= 0)
    n += std::snprintf(buf + n, sizeof buf - n, ",\"val_loss\":%.6f,\"val_accuracy\":%.6f",
                       m.val_loss, m.val_accuracy);
  if (m.test_accuracy >= 0)
    n += std::snprintf(buf + n, sizeof buf - n, ",\"test_loss\":%.6f,\"test_accuracy\":%.6f",
                       m.test_loss, m.test_accuracy);
  if (m.best) n += std::snprintf(buf + n, sizeof buf - n, ",\"best\":true");
  std::snprintf(buf + n, sizeof buf - n, ",\"lr\":%.6g,\"seconds\":%.3f,\"images_per_sec\":%.1f}",
                m.lr, m.seconds, m.images_per_sec);
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
           double (*val)(const EpochMetrics&), double (*test)(const EpochMetrics&)) {
  double lo = 1e300, hi = -1e300;
  for (auto& m : hist) {
    lo = std::min(lo, train(m));
    hi = std::max(hi, train(m));
    for (double v : {val(m), test(m)})
      if (v >= 0) {
        lo = std::min(lo, v);
        hi = std::max(hi, v);
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
  series(val, "#ff7f0e");
  series(test, "#d62728");
}

}  // namespace

std::string curves_svg(const std::vector<EpochMetrics>& hist, const std::string& title) {
  std::ostringstream o;
  o << "<svg xmlns='http://www.w3.org/2000/svg' width='820' height='360' "
       "font-family='sans-serif'>\n<rect width='820' height='360' fill='white'/>\n";
  o << "<text x='410' y='22' font-size='16' text-anchor='middle'>" << title << "</text>\n";
  o << "<text x='520' y='350' font-size='12' fill='#1f77b4'>train</text>"
       "<text x='570' y='350' font-size='12' fill='#ff7f0e'>validation</text>"
       "<text x='650' y='350' font-size='12' fill='#d62728'>test</text>"
       "<text x='200' y='350' font-size='12'>epoch</text>\n";
  if (!hist.empty()) {
    panel(
        o, 60, 60, 320, 250, "loss", hist, [](const EpochMetrics& m) { return m.loss; },
        [](const EpochMetrics& m) { return m.val_loss; },
        [](const EpochMetrics& m) { return m.test_loss; });
    panel(
        o, 470, 60, 320, 250, "accuracy", hist, [](const EpochMetrics& m) { return m.accuracy; },
        [](const EpochMetrics& m) { return m.val_accuracy; },
        [](const EpochMetrics& m) { return m.test_accuracy; });
  }
  o << "</svg>\n";
  return o.str();
}

}  // namespace dpcnn
