#include "io/plot.h"

#include <algorithm>
#include <cstdio>

#include "engine/check.h"
#include "io/text.h"

namespace mc::io::plot {
namespace {

constexpr double kTitleFont = 18, kLabelFont = 14, kTickFont = 12, kLegendFont = 13;
constexpr const char* kInk = "#222222";
constexpr const char* kAxisInk = "#444444";
constexpr const char* kGrid = "#e6e6e6";
constexpr const char* kFonts = "DejaVu Sans, Helvetica, Arial, sans-serif";

std::string f2(double v) { return fixed(v, 2); }  // coordinates: finer than any screen

// DejaVu Sans averages about 0.6 em per character; good enough to lay out margins.
double text_width(const std::string& s, double size) {
  size_t chars = 0;
  for (unsigned char c : s) chars += (c & 0xC0) != 0x80;  // count UTF-8 code points
  return 0.6 * size * double(chars);
}

std::string text(double x, double y, const std::string& s, double size, const char* anchor,
                 const std::string& extra = "") {
  return "<text x=\"" + f2(x) + "\" y=\"" + f2(y) + "\" font-size=\"" + f2(size) +
         "\" text-anchor=\"" + anchor + "\" fill=\"" + kInk + "\"" + extra + ">" + xml_escape(s) +
         "</text>\n";
}

std::string line(double x1, double y1, double x2, double y2, const std::string& stroke,
                 double width, const std::string& extra = "") {
  return "<line x1=\"" + f2(x1) + "\" y1=\"" + f2(y1) + "\" x2=\"" + f2(x2) + "\" y2=\"" + f2(y2) +
         "\" stroke=\"" + stroke + "\" stroke-width=\"" + f2(width) + "\"" + extra + "/>\n";
}

std::string rect(double x, double y, double w, double h, const std::string& fill,
                 const std::string& extra = "") {
  return "<rect x=\"" + f2(x) + "\" y=\"" + f2(y) + "\" width=\"" + f2(w) + "\" height=\"" +
         f2(h) + "\" fill=\"" + fill + "\"" + extra + "/>\n";
}

std::string document(double w, double h, const std::string& body) {
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
         "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + f2(w) + "\" height=\"" + f2(h) +
         "\" viewBox=\"0 0 " + f2(w) + " " + f2(h) + "\" font-family=\"" + kFonts + "\">\n" +
         rect(0, 0, w, h, "#ffffff") + body + "</svg>\n";
}

// An axis resolved to a range and tick positions.
struct Scale {
  double lo = 0, hi = 1;
  std::vector<double> ticks;
  int decimals = 0;
  bool percent = false;
  std::string label(double v) const {
    return percent ? fixed(100 * v, std::max(0, decimals - 2)) + "%" : fixed(v, decimals);
  }
};

Scale make_scale(const Axis& a, double data_lo, double data_hi) {
  Scale s;
  s.percent = a.percent;
  double lo = std::isnan(a.min) ? data_lo : a.min, hi = std::isnan(a.max) ? data_hi : a.max;
  if (!std::isfinite(lo) || !std::isfinite(hi)) lo = 0, hi = 1;
  if (lo > hi) std::swap(lo, hi);
  if (hi - lo < 1e-12) {  // one value: centre it in a unit-sized range
    const double pad = std::max(std::abs(lo) * 0.1, a.integer ? 1.0 : 0.5);
    lo -= pad, hi += pad;
  }
  std::vector<double> t = nice_ticks(lo, hi);
  double step = t.size() > 1 ? t[1] - t[0] : 1;
  if (a.integer && step < 1) {
    step = 1;
    t.clear();
    for (double v = std::floor(lo); v <= std::ceil(hi) + 1e-9; ++v) t.push_back(v);
  }
  // Automatic ends snap out to whole ticks; given ends stay exactly where they were asked.
  s.lo = std::isnan(a.min) ? std::min(lo, t.front()) : lo;
  s.hi = std::isnan(a.max) ? std::max(hi, t.back()) : hi;
  for (double v : t)
    if (v >= s.lo - 1e-9 * step && v <= s.hi + 1e-9 * step) s.ticks.push_back(v);
  s.decimals = std::max(0, int(-std::floor(std::log10(step) + 1e-9)));
  return s;
}

struct Frame {  // plot area in document coordinates
  double x, y, w, h;
};

double map_x(const Frame& f, const Scale& s, double v) { return f.x + (v - s.lo) / (s.hi - s.lo) * f.w; }
double map_y(const Frame& f, const Scale& s, double v) { return f.y + f.h - (v - s.lo) / (s.hi - s.lo) * f.h; }

double widest_label(const Scale& s) {
  double w = 0;
  for (double v : s.ticks) w = std::max(w, text_width(s.label(v), kTickFont));
  return w;
}

// Grid, frame, ticks and axis titles.
std::string axes(const Frame& f, const Scale& sx, const Scale& sy, const std::string& xlabel,
                 const std::string& ylabel, bool x_ticks = true) {
  std::string o;
  for (double v : sy.ticks) {
    const double y = map_y(f, sy, v);
    o += line(f.x, y, f.x + f.w, y, kGrid, 1);
    o += line(f.x - 5, y, f.x, y, kAxisInk, 1);
    o += text(f.x - 8, y + kTickFont * 0.35, sy.label(v), kTickFont, "end");
  }
  if (x_ticks)
    for (double v : sx.ticks) {
      const double x = map_x(f, sx, v);
      o += line(x, f.y, x, f.y + f.h, kGrid, 1);
      o += line(x, f.y + f.h, x, f.y + f.h + 5, kAxisInk, 1);
      o += text(x, f.y + f.h + 8 + kTickFont, sx.label(v), kTickFont, "middle");
    }
  o += line(f.x, f.y + f.h, f.x + f.w, f.y + f.h, kAxisInk, 1.2);
  o += line(f.x, f.y, f.x, f.y + f.h, kAxisInk, 1.2);
  if (!xlabel.empty()) o += text(f.x + f.w / 2, f.y + f.h + 44, xlabel, kLabelFont, "middle");
  if (!ylabel.empty()) {
    const double x = f.x - widest_label(sy) - 20, y = f.y + f.h / 2;
    o += text(x, y, ylabel, kLabelFont, "middle",
              " transform=\"rotate(-90 " + f2(x) + " " + f2(y) + ")\"");
  }
  return o;
}

struct LegendEntry {
  std::string name, color;
  bool dashed = false, bar = false;
};

double legend_width(const std::vector<LegendEntry>& es) {
  double w = 0;
  for (const auto& e : es) w = std::max(w, text_width(e.name, kLegendFont));
  return w + 24 + 8 + 16;  // swatch, gap, padding
}

std::string legend(const std::vector<LegendEntry>& es, double x, double y, bool boxed) {
  std::string o;
  const double row = 22, w = legend_width(es), h = row * double(es.size()) + 8;
  if (boxed) o += rect(x, y, w, h, "#ffffff", " fill-opacity=\"0.9\" stroke=\"#cccccc\" rx=\"3\"");
  for (size_t i = 0; i < es.size(); ++i) {
    const double cy = y + 4 + row * (double(i) + 0.5), sx = x + 8;
    if (es[i].bar)
      o += rect(sx + 4, cy - 7, 16, 14, es[i].color);
    else
      o += line(sx, cy, sx + 24, cy, es[i].color, 2.5,
                es[i].dashed ? " stroke-dasharray=\"7 4\"" : "");
    o += text(sx + 32, cy + kLegendFont * 0.35, es[i].name, kLegendFont, "start");
  }
  return o;
}

std::string place_legend(const std::vector<LegendEntry>& es, Legend where, const Frame& f) {
  if (es.empty() || where == Legend::None) return "";
  const double w = legend_width(es), h = 22 * double(es.size()) + 8;
  switch (where) {
    case Legend::Right: return legend(es, f.x + f.w + 14, f.y, false);
    case Legend::InsideBottomRight: return legend(es, f.x + f.w - w - 10, f.y + f.h - h - 10, true);
    case Legend::InsideTopRight: return legend(es, f.x + f.w - w - 10, f.y + 10, true);
    case Legend::None: break;
  }
  return "";
}

std::string colour(const std::string& given, size_t& next) {
  if (!given.empty()) return given;
  const auto& p = palette();
  return p[next++ % p.size()];
}

// The margins around a chart's plot area, from what has to fit there.
struct Margins {
  double left = 0, right = 0, top = 0, bottom = 0;
};
Margins margins_for(const std::string& title, const Scale& sy, bool ylabel, bool xlabel,
                    double legend_right) {
  return {14 + widest_label(sy) + (ylabel ? 26 : 0), legend_right > 0 ? legend_right + 24 : 24,
          title.empty() ? 18.0 : 46.0, 30.0 + (xlabel ? 28 : 0)};
}
Frame frame_at(double ox, double oy, double w, double h, const Margins& m) {
  return {ox + m.left, oy + m.top, std::max(40.0, w - m.left - m.right),
          std::max(40.0, h - m.top - m.bottom)};
}

// What a line chart needs before drawing: scales, colours, legend and margins (svg_panels
// widens the margins so that panels in one column share their plot area's left and right).
struct LinePlan {
  Scale sx, sy;
  std::vector<std::string> colours;
  std::vector<LegendEntry> entries;
  Margins margins;
};

LinePlan plan_line_chart(const LineChart& c) {
  double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
  for (const auto& s : c.series) {
    MC_CHECK(s.x.size() == s.y.size(), "plot '", c.title, "': series '", s.name, "' has ",
             s.x.size(), " x values and ", s.y.size(), " y values");
    for (size_t i = 0; i < s.x.size(); ++i)
      if (std::isfinite(s.x[i]) && std::isfinite(s.y[i])) {
        xlo = std::min(xlo, s.x[i]), xhi = std::max(xhi, s.x[i]);
        ylo = std::min(ylo, s.y[i]), yhi = std::max(yhi, s.y[i]);
      }
  }
  for (const auto& v : c.vlines) xlo = std::min(xlo, v.x), xhi = std::max(xhi, v.x);
  LinePlan p;
  p.sx = make_scale(c.x, xlo, xhi);
  p.sy = make_scale(c.y, ylo, yhi);
  size_t next = 0;
  for (const auto& s : c.series) {
    p.colours.push_back(colour(s.color, next));
    if (!s.name.empty()) p.entries.push_back({s.name, p.colours.back(), s.dashed, false});
  }
  const double lw = c.legend == Legend::Right && !p.entries.empty() ? legend_width(p.entries) : 0;
  p.margins = margins_for(c.title, p.sy, !c.y.label.empty(), !c.x.label.empty(), lw);
  return p;
}

std::string line_chart_body(const LineChart& c, const LinePlan& p, double ox, double oy,
                            const std::string& id) {
  const Scale &sx = p.sx, &sy = p.sy;
  const auto& colours = p.colours;
  const Frame f = frame_at(ox, oy, c.width, c.height, p.margins);

  std::string o = axes(f, sx, sy, c.x.label, c.y.label);
  o += "<clipPath id=\"" + id + "\">" + rect(f.x, f.y, f.w, f.h, "#000") + "</clipPath>\n";
  o += "<g clip-path=\"url(#" + id + ")\">\n";
  if (c.diagonal)
    o += line(map_x(f, sx, std::max(sx.lo, sy.lo)), map_y(f, sy, std::max(sx.lo, sy.lo)),
              map_x(f, sx, std::min(sx.hi, sy.hi)), map_y(f, sy, std::min(sx.hi, sy.hi)),
              "#999999", 1.3, " stroke-dasharray=\"5 5\"");
  for (const auto& v : c.vlines)
    o += line(map_x(f, sx, v.x), f.y, map_x(f, sx, v.x), f.y + f.h, "#777777", 1.3,
              " stroke-dasharray=\"3 4\"");
  for (size_t si = 0; si < c.series.size(); ++si) {
    const Series& s = c.series[si];
    std::string d;
    std::vector<std::pair<double, double>> dots;
    const size_t n = s.x.size();
    auto ok = [&](size_t i) { return i < n && std::isfinite(s.x[i]) && std::isfinite(s.y[i]); };
    for (size_t i = 0; i < n; ++i) {
      if (!ok(i)) continue;
      const double px = map_x(f, sx, s.x[i]), py = map_y(f, sy, s.y[i]);
      const bool starts = i == 0 || !ok(i - 1);
      d += (starts ? "M" : "L") + f2(px) + " " + f2(py) + " ";
      if (s.markers || (starts && !ok(i + 1))) dots.emplace_back(px, py);
    }
    if (!d.empty())
      o += "<path d=\"" + d + "\" fill=\"none\" stroke=\"" + colours[si] +
           "\" stroke-width=\"2.2\" stroke-linejoin=\"round\" stroke-linecap=\"round\"" +
           (s.dashed ? " stroke-dasharray=\"7 4\"" : "") + "><title>" + xml_escape(s.name) +
           "</title></path>\n";
    for (const auto& [px, py] : dots)
      o += "<circle cx=\"" + f2(px) + "\" cy=\"" + f2(py) + "\" r=\"3.2\" fill=\"" + colours[si] +
           "\"/>\n";
  }
  o += "</g>\n";
  for (const auto& v : c.vlines) {  // labels unclipped, on the side of the line with room
    const double x = map_x(f, sx, v.x);
    const bool left = x + 5 + text_width(v.label, kTickFont) > f.x + f.w;
    o += text(left ? x - 5 : x + 5, f.y + 14, v.label, kTickFont, left ? "end" : "start",
              " fill-opacity=\"0.85\"");
  }
  o += place_legend(p.entries, c.legend, f);
  if (!c.title.empty()) o += text(f.x + f.w / 2, oy + 28, c.title, kTitleFont, "middle", " font-weight=\"bold\"");
  return o;
}

// ColorBrewer "Blues" (sequential, safe for colour-vision deficiencies), interpolated.
std::string blues(double t) {
  static const int stops[][3] = {{247, 251, 255}, {222, 235, 247}, {198, 219, 239},
                                 {158, 202, 225}, {107, 174, 214}, {66, 146, 198},
                                 {33, 113, 181},  {8, 81, 156},    {8, 48, 107}};
  t = std::clamp(t, 0.0, 1.0) * 8;
  const int i = std::min(7, int(t));
  const double u = t - i;
  char b[16];
  std::snprintf(b, sizeof b, "#%02x%02x%02x", int(std::lround(stops[i][0] * (1 - u) + stops[i + 1][0] * u)),
                int(std::lround(stops[i][1] * (1 - u) + stops[i + 1][1] * u)),
                int(std::lround(stops[i][2] * (1 - u) + stops[i + 1][2] * u)));
  return b;
}

}  // namespace

const std::vector<std::string>& palette() {
  static const std::vector<std::string> p = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                             "#E69F00", "#56B4E9", "#000000"};
  return p;
}

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!(hi > lo)) return {lo};
  auto nice = [](double x, bool round) {
    const double e = std::floor(std::log10(x)), f = x / std::pow(10, e);
    const double n = round ? (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10)
                           : (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10);
    return n * std::pow(10, e);
  };
  const double step = nice(nice(hi - lo, false) / std::max(1, target - 1), true);
  std::vector<double> t;
  for (double v = std::floor(lo / step) * step; v <= std::ceil(hi / step) * step + step * 0.5; v += step)
    t.push_back(std::abs(v) < step * 1e-9 ? 0.0 : v);
  return t;
}

std::string xml_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&apos;"; break;
      default: o += c;
    }
  }
  return o;
}

std::string svg(const LineChart& c) {
  return document(c.width, c.height, line_chart_body(c, plan_line_chart(c), 0, 0, "plot0"));
}

std::string svg_panels(const std::vector<LineChart>& panels, int columns, const std::string& title) {
  MC_CHECK(!panels.empty() && columns >= 1, "svg_panels: no panels");
  const size_t cols = size_t(columns), rows = (panels.size() + cols - 1) / cols;
  std::vector<double> colw(cols, 0), rowh(rows, 0), left(cols, 0), right(cols, 0);
  std::vector<LinePlan> plans;
  for (size_t i = 0; i < panels.size(); ++i) {
    plans.push_back(plan_line_chart(panels[i]));
    colw[i % cols] = std::max(colw[i % cols], double(panels[i].width));
    rowh[i / cols] = std::max(rowh[i / cols], double(panels[i].height));
    left[i % cols] = std::max(left[i % cols], plans[i].margins.left);
    right[i % cols] = std::max(right[i % cols], plans[i].margins.right);
  }
  for (size_t i = 0; i < panels.size(); ++i)  // one column, one plot-area width: x axes line up
    plans[i].margins.left = left[i % cols], plans[i].margins.right = right[i % cols];
  const double top = title.empty() ? 0 : 40;
  double w = 0, h = top;
  for (double v : colw) w += v;
  for (double v : rowh) h += v;
  std::string body;
  if (!title.empty()) body += text(w / 2, 28, title, kTitleFont + 2, "middle", " font-weight=\"bold\"");
  double y = top;
  for (size_t r = 0; r < rows; ++r) {
    double x = 0;
    for (size_t c = 0; c < cols && r * cols + c < panels.size(); ++c) {
      const size_t i = r * cols + c;
      LineChart panel = panels[i];
      panel.width = int(colw[c]);
      body += line_chart_body(panel, plans[i], x, y, "plot" + std::to_string(i));
      x += colw[c];
    }
    y += rowh[r];
  }
  return document(w, h, body);
}

std::string svg(const BarChart& c) {
  const size_t n = c.categories.size();
  double lo = 0, hi = 0;  // bars grow from zero, so zero is always in range
  for (const auto& s : c.series) {
    MC_CHECK(s.values.size() == n, "plot '", c.title, "': series '", s.name, "' has ",
             s.values.size(), " values for ", n, " categories");
    MC_CHECK((s.lo.empty() || s.lo.size() == n) && s.lo.size() == s.hi.size(), "plot '", c.title,
             "': series '", s.name, "' needs one error bar per category");
    for (size_t i = 0; i < n; ++i)
      for (double v : {s.values[i], s.lo.empty() ? NAN : s.lo[i], s.hi.empty() ? NAN : s.hi[i]})
        if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  }
  const Scale sy = make_scale(c.y, lo, hi);
  Scale sx;  // categories are placed by index; no numeric ticks
  sx.lo = 0, sx.hi = double(std::max<size_t>(n, 1));
  std::vector<LegendEntry> entries;
  std::vector<std::string> colours;
  size_t next = 0;
  for (const auto& s : c.series) {
    colours.push_back(colour(s.color, next));
    entries.push_back({s.name, colours.back(), false, true});
  }
  const double lw = c.legend == Legend::Right && !entries.empty() ? legend_width(entries) : 0;
  Margins m = margins_for(c.title, sy, !c.y.label.empty(), !c.x_label.empty(), lw);
  if (c.highlight >= 0 && !c.highlight_label.empty()) m.top += 14;  // the band's label
  const Frame f = frame_at(0, 0, c.width, c.height, m);
  std::string o;
  const double group = f.w / sx.hi, bw = group * 0.8 / double(std::max<size_t>(c.series.size(), 1));
  if (c.highlight >= 0 && size_t(c.highlight) < n) {
    o += rect(f.x + group * c.highlight, f.y, group, f.h, "#eeeeee");
    if (!c.highlight_label.empty())
      o += text(f.x + group * (c.highlight + 0.5), f.y - 6, c.highlight_label, kTickFont, "middle",
                " font-style=\"italic\"");
  }
  o += axes(f, sx, sy, c.x_label, c.y.label, false);
  const double base = map_y(f, sy, std::clamp(0.0, sy.lo, sy.hi));
  for (size_t i = 0; i < n; ++i) {
    const double gx = f.x + group * double(i) + group * 0.1;
    o += text(f.x + group * (double(i) + 0.5), f.y + f.h + 8 + kTickFont, c.categories[i], kTickFont, "middle");
    for (size_t si = 0; si < c.series.size(); ++si) {
      const BarSeries& s = c.series[si];
      const double x = gx + bw * double(si);
      if (std::isfinite(s.values[i])) {
        const double y = map_y(f, sy, std::clamp(s.values[i], sy.lo, sy.hi));
        o += "<rect x=\"" + f2(x + 1) + "\" y=\"" + f2(std::min(y, base)) + "\" width=\"" +
             f2(std::max(1.0, bw - 2)) + "\" height=\"" + f2(std::abs(base - y)) + "\" fill=\"" +
             colours[si] + "\"><title>" + xml_escape(s.name + " " + c.categories[i] + ": " +
                                                     sy.label(s.values[i])) +
             "</title></rect>\n";
      }
      if (!s.lo.empty() && std::isfinite(s.lo[i]) && std::isfinite(s.hi[i])) {
        const double cx = x + bw / 2, y1 = map_y(f, sy, std::clamp(s.lo[i], sy.lo, sy.hi)),
                     y2 = map_y(f, sy, std::clamp(s.hi[i], sy.lo, sy.hi)), cap = std::min(4.0, bw / 3);
        o += line(cx, y1, cx, y2, "#333333", 1.2) + line(cx - cap, y1, cx + cap, y1, "#333333", 1.2) +
             line(cx - cap, y2, cx + cap, y2, "#333333", 1.2);
      }
    }
  }
  o += place_legend(entries, c.legend, f);
  if (!c.title.empty()) o += text(c.width / 2.0, 28, c.title, kTitleFont, "middle", " font-weight=\"bold\"");
  return document(c.width, c.height, o);
}

std::string svg(const ConfusionChart& c) {
  const size_t K = c.classes.size();
  MC_CHECK(K >= 1 && c.counts.size() == K * K, "confusion chart '", c.title, "': ", c.counts.size(),
           " counts for ", K, " classes (need K x K)");
  double name_w = 0;
  for (const auto& n : c.classes) name_w = std::max(name_w, text_width(n, kLabelFont));
  const double cell = std::max(96.0, name_w + 16);
  const double left = 40 + name_w + 14, top = c.title.empty() ? 24 : 56, right = 84, bottom = 70;
  const double w = left + cell * double(K) + right, h = top + cell * double(K) + bottom;
  std::string o;
  for (size_t t = 0; t < K; ++t) {
    int64_t row = 0;
    for (size_t p = 0; p < K; ++p) row += c.counts[t * K + p];
    const double y = top + cell * double(t);
    o += text(left - 10, y + cell / 2 + kLabelFont * 0.35, c.classes[t], kLabelFont, "end");
    o += text(left + cell * double(K) + 10, y + cell / 2 + kTickFont * 0.35,
              "n = " + std::to_string(row), kTickFont, "start", " fill-opacity=\"0.8\"");
    for (size_t p = 0; p < K; ++p) {
      const int64_t v = c.counts[t * K + p];
      const double frac = row > 0 ? double(v) / double(row) : 0, x = left + cell * double(p);
      const char* ink = frac > 0.55 ? "#ffffff" : kInk;
      o += rect(x, y, cell, cell, blues(frac), " stroke=\"#ffffff\" stroke-width=\"2\"");
      o += "<text x=\"" + f2(x + cell / 2) + "\" y=\"" + f2(y + cell / 2 + 2) +
           "\" font-size=\"22\" font-weight=\"bold\" text-anchor=\"middle\" fill=\"" + ink + "\">" +
           std::to_string(v) + "</text>\n";
      o += "<text x=\"" + f2(x + cell / 2) + "\" y=\"" + f2(y + cell / 2 + 22) +
           "\" font-size=\"13\" text-anchor=\"middle\" fill=\"" + ink + "\">" +
           (row > 0 ? fixed(100 * frac, 1) + "%" : std::string("-")) + "</text>\n";
    }
  }
  o += rect(left, top, cell * double(K), cell * double(K), "none", " stroke=\"#bbbbbb\" stroke-width=\"1\"");
  for (size_t p = 0; p < K; ++p)
    o += text(left + cell * (double(p) + 0.5), top + cell * double(K) + 22, c.classes[p], kLabelFont, "middle");
  o += text(left + cell * double(K) / 2, top + cell * double(K) + 52, "predicted class", kLabelFont,
            "middle", " font-weight=\"bold\"");
  const double lx = 22, ly = top + cell * double(K) / 2;
  o += text(lx, ly, "true class", kLabelFont, "middle",
            " font-weight=\"bold\" transform=\"rotate(-90 " + f2(lx) + " " + f2(ly) + ")\"");
  if (!c.title.empty()) o += text(w / 2, 30, c.title, kTitleFont, "middle", " font-weight=\"bold\"");
  o += text(w / 2, top - 10, "colour and %: share of the true class (row)", kTickFont, "middle",
            " fill-opacity=\"0.75\"");
  return document(w, h, o);
}

}  // namespace mc::io::plot
