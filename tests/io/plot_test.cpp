// SVG charts: well-formed documents that carry every series, gaps at NaN, and readable ticks
// (the atomic writes are io/atomic_file.h's, tested in text_test.cpp). What they look like was
// checked by eye (PNG via rsvg-convert).
#include "io/plot.h"

#include <cmath>

#include "engine/check.h"
#include "test_util.h"
#include "xml_check.h"

namespace mc::io::plot {
namespace {
using test::xml_problem;

size_t count(const std::string& s, const std::string& part) {
  size_t n = 0;
  for (size_t p = s.find(part); p != std::string::npos; p = s.find(part, p + 1)) ++n;
  return n;
}

#define EXPECT_HAS(s, part) EXPECT_NE((s).find(part), std::string::npos) << "missing " << (part)

TEST(Plot, NiceTicks) {
  EXPECT_EQ(nice_ticks(0, 1), (std::vector<double>{0, 0.2, 0.4, 0.6000000000000001, 0.8, 1}));
  const auto t = nice_ticks(1, 200);
  EXPECT_EQ(t.front(), 0);
  EXPECT_EQ(t.back(), 200);
  EXPECT_EQ(t[1] - t[0], 50);
  const auto s = nice_ticks(0.91, 1.37);
  EXPECT_LE(s.front(), 0.91);
  EXPECT_GE(s.back(), 1.37);
  EXPECT_EQ(nice_ticks(3, 3), (std::vector<double>{3}));
}

TEST(Plot, XmlCheckFindsBrokenDocuments) {  // the test aid the chart tests rely on
  EXPECT_EQ(xml_problem("<?xml version=\"1.0\"?>\n<svg a=\"1\"><g><text>a &amp; b</text></g><rect/></svg>\n"), "");
  EXPECT_NE(xml_problem("<svg><g></svg>"), "");
  EXPECT_NE(xml_problem("<svg></svg><svg></svg>"), "");
  EXPECT_NE(xml_problem("<svg a=1></svg>"), "");
  EXPECT_NE(xml_problem("<svg><text>a & b</text></svg>"), "");
  EXPECT_NE(xml_problem("<svg><g>"), "");
  EXPECT_NE(xml_problem("plain"), "");
}

TEST(Plot, LineChartCarriesSeriesGapsAndLegend) {
  LineChart c;
  c.title = "Loss <train & val>";
  c.x = Axis{"epoch", kAuto, kAuto, false, true};
  c.y.label = "loss";
  c.series = {{"train loss", {1, 2, 3, 4, 5}, {1.0, 0.8, NAN, 0.5, 0.4}},
              {"val loss", {1, 2, 3, 4, 5}, {1.1, NAN, 0.9, NAN, 0.7}, "", true}};
  c.vlines = {{4, "best"}};
  const std::string s = svg(c);
  EXPECT_EQ(xml_problem(s), "") << s;
  EXPECT_HAS(s, "Loss &lt;train &amp; val&gt;");
  EXPECT_HAS(s, ">train loss</title>");
  EXPECT_HAS(s, ">val loss</text>");  // legend entry
  EXPECT_HAS(s, "stroke-dasharray=\"7 4\"");
  EXPECT_HAS(s, ">best</text>");
  // train: two runs (1-2, 4-5); val: three isolated points, each drawn as a dot.
  const size_t train = s.find("<path d=\"M");
  ASSERT_NE(train, std::string::npos);
  const std::string tpath = s.substr(train, s.find('"', train + 9) - train);
  EXPECT_EQ(count(tpath, "M"), 2u) << tpath;
  EXPECT_EQ(count(s, "<circle"), 3u);
  // Integer axis: epochs are labelled 1, 2, ... never 1.5.
  EXPECT_HAS(s, ">3</text>");
  EXPECT_EQ(s.find(">1.5</text>"), std::string::npos);
  EXPECT_EQ(s.find("nan"), std::string::npos);
}

TEST(Plot, RocStyleChartIsSquareWithDiagonalAndPercentTicks) {
  LineChart c;
  c.x = Axis{"false positive rate", 0, 1, true};
  c.y = Axis{"true positive rate", 0, 1, true};
  c.diagonal = true;
  c.legend = Legend::InsideBottomRight;
  c.width = c.height = 560;
  c.series = {{"osteoporosis (AUC 0.81)", {0, 0, 0.5, 1}, {0, 0.5, 1, 1}}};
  const std::string s = svg(c);
  EXPECT_EQ(xml_problem(s), "");
  EXPECT_HAS(s, "stroke-dasharray=\"5 5\"");  // the diagonal
  EXPECT_HAS(s, ">100%</text>");
  EXPECT_HAS(s, "osteoporosis (AUC 0.81)");
  EXPECT_HAS(s, "width=\"560.00\" height=\"560.00\"");
}

TEST(Plot, PanelsShareOneDocumentWithDistinctClipPaths) {
  LineChart a, b;
  a.series = {{"a", {1, 2}, {1, 2}}};
  b.series = {{"b", {1, 2}, {2, 1}}};
  const std::string s = svg_panels({a, b}, 2, "Training");
  EXPECT_EQ(xml_problem(s), "");
  EXPECT_HAS(s, "id=\"plot0\"");
  EXPECT_HAS(s, "id=\"plot1\"");
  EXPECT_EQ(count(s, "<svg"), 1u);
}

TEST(Plot, BarChartWithErrorBarsAndHighlight) {
  BarChart c;
  c.title = "sweep";
  c.categories = {"1.0", "0.5", "0.0"};
  c.y = Axis{"value", 0, 1, true};
  c.series = {{"balanced accuracy", {0.6, 0.7, NAN}, {0.5, 0.6, NAN}, {0.7, 0.8, NAN}},
              {"macro AUC", {0.8, 0.8, 0.8}, {}, {}}};
  c.highlight = 1;
  c.highlight_label = "configured";
  const std::string s = svg(c);
  EXPECT_EQ(xml_problem(s), "");
  EXPECT_EQ(count(s, "<title>balanced accuracy"), 2u);  // NaN: no bar
  EXPECT_EQ(count(s, "<title>macro AUC"), 3u);
  EXPECT_EQ(count(s, "stroke=\"#333333\""), 6u);          // two whiskers with two caps each
  EXPECT_HAS(s, ">configured</text>");
  c.series[1].lo = {0.1};
  EXPECT_THROW(svg(c), Error);
}

TEST(Plot, ConfusionHeatmapShowsCountsAndRowPercentages) {
  ConfusionChart c{"Confusion", {"osteoporosis", "osteopenia", "normal"}, {5, 3, 0, 1, 10, 2, 0, 0, 0}};
  const std::string s = svg(c);
  EXPECT_EQ(xml_problem(s), "");
  EXPECT_HAS(s, ">62.5%</text>");  // 5 of 8
  EXPECT_HAS(s, ">76.9%</text>");  // 10 of 13
  EXPECT_HAS(s, ">n = 13</text>");
  EXPECT_HAS(s, ">-</text>");      // a class with no samples has no percentages
  EXPECT_HAS(s, "predicted class");
  EXPECT_HAS(s, "fill=\"#ffffff\">10</text>");  // dark cell, white text
  EXPECT_THROW(svg(ConfusionChart{"x", {"a", "b"}, {1, 2, 3}}), Error);
}

}  // namespace
}  // namespace mc::io::plot
