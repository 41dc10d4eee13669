// Charts as standalone SVG documents, with no dependencies: line charts (training curves, ROC
// curves), grouped bar charts (the tau2 sweep) and a confusion-matrix heatmap. Each function
// returns the whole document as text (io/atomic_file.h's write_atomic puts it on disk).
//
// Defaults aim at a figure that reads well without tuning: 18/14/12 px title/label/tick fonts,
// the Okabe-Ito palette (distinguishable with every common colour-vision deficiency, and in
// greyscale when dashes are used), a sequential blue scale for the heatmap with text that
// switches to white on dark cells, legends outside the data unless the chart asks otherwise.
// NaN values leave gaps in lines; an isolated point gets a dot so it stays visible.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace mc::io::plot {

inline constexpr double kAuto = std::numeric_limits<double>::quiet_NaN();

// Okabe & Ito's colour-blind-safe palette, without its yellow (too pale on white).
const std::vector<std::string>& palette();

struct Axis {
  std::string label;
  double min = kAuto, max = kAuto;  // kAuto: from the data, widened to whole ticks
  bool percent = false;             // values are fractions, ticks read "40%"
  bool integer = false;             // ticks only at whole numbers (epochs)
};

enum class Legend { Right, InsideBottomRight, InsideTopRight, None };

struct Series {
  std::string name;
  std::vector<double> x, y;  // same length; a NaN in either leaves a gap
  std::string color;         // "" = the next palette colour
  bool dashed = false;
  bool markers = false;      // a dot at every point
};

struct VLine {  // a vertical reference line, e.g. the epoch of the evaluated checkpoint
  double x = 0;
  std::string label;
};

struct LineChart {
  std::string title;
  Axis x, y;
  std::vector<Series> series;
  std::vector<VLine> vlines;
  bool diagonal = false;  // dashed grey y = x line (chance level of a ROC curve)
  Legend legend = Legend::Right;
  int width = 760, height = 440;  // of the whole chart, legend included
};

struct BarSeries {
  std::string name;
  std::vector<double> values;  // one per category; NaN = no bar
  std::vector<double> lo, hi;  // optional error bars (empty, or one per category; NaN = none)
  std::string color;
};

struct BarChart {
  std::string title;
  std::string x_label;
  std::vector<std::string> categories;
  Axis y;
  std::vector<BarSeries> series;
  int highlight = -1;        // category drawn on a shaded band (the configured tau2)
  std::string highlight_label;
  Legend legend = Legend::Right;
  int width = 900, height = 440;
};

struct ConfusionChart {
  std::string title;
  std::vector<std::string> classes;
  std::vector<int64_t> counts;  // K x K, row = true class, column = predicted class
};

std::string svg(const LineChart& c);
std::string svg(const BarChart& c);
std::string svg(const ConfusionChart& c);
// Several line charts in one document, `columns` per row, under a common title.
std::string svg_panels(const std::vector<LineChart>& panels, int columns,
                       const std::string& title = "");

// Tick positions at 1, 2 or 5 x 10^n steps covering [lo, hi] with about `target` ticks.
std::vector<double> nice_ticks(double lo, double hi, int target = 6);
std::string xml_escape(const std::string& s);

}  // namespace mc::io::plot
