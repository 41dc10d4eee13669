// The binary report's screening section (eval/screening.h): the operating-point table, the
// precision-recall curve and their JSON.
#include <nlohmann/json.hpp>

#include "eval/report_text.h"
#include "io/plot.h"
#include "io/text.h"

namespace mc::eval::report_text {

namespace {

std::string points_table(const ScreeningReport& s) {
  std::string t = row({"operating point", "TP / FP / TN / FN", "sensitivity", "specificity", "PPV", "NPV"}) + rule(6);
  for (const OperatingPoint& o : s.points)
    t += row({o.name,
              std::to_string(o.tp) + " / " + std::to_string(o.fp) + " / " + std::to_string(o.tn) + " / " + std::to_string(o.fn),
              cell(o.sensitivity, &o.sensitivity_ci), cell(o.specificity, &o.specificity_ci), cell(o.ppv, &o.ppv_ci),
              cell(o.npv, &o.npv_ci)});
  return t;
}

}  // namespace

std::string screening_table(const Report& r) { return points_table(*r.screening); }

std::string screening_section(const Report& r) {
  const ScreeningReport& s = *r.screening;
  std::string md = "\n## Screening (" + s.positive_name + " positive)\n\n";
  md += std::to_string(s.n_positive) + " of " + std::to_string(s.n) + " subjects are " + s.positive_name +
        " (prevalence " + pct(s.n ? double(s.n_positive) / double(s.n) : 0.0) + "%). Thresholds are on the "
        "model's probability of " + s.positive_name + " (after the post-hoc adjustment above); a subject is called "
        "positive when it reaches the threshold. The intervals resample subjects with the thresholds held fixed.";
  if (!s.positive_reason.empty()) md += " The positive class is " + s.positive_name + ": " + s.positive_reason + ".";
  md += "\n\n";
  md += row({"", "value", "95% CI"}) + rule(3);
  md += row({"ROC AUC", pct(s.auc), interval(s.auc_ci)});
  md += row({"PR AUC (average precision)", pct(s.average_precision), interval(s.average_precision_ci)});
  md += "\n" + screening_table(r) + "\n![Precision-recall curve](pr.svg)\n";
  for (const auto& n : s.notes) md += "\n" + n + "\n";
  return md;
}

std::string pr_svg(const Report& r) {
  const ScreeningReport& s = *r.screening;
  io::plot::LineChart c;
  c.title = "Precision-recall, " + s.positive_name + " positive (" + where(r) + ")";
  c.x = {"recall (sensitivity)", 0, 1, true};
  c.y = {"precision (PPV)", 0, 1, true};
  c.legend = io::plot::Legend::InsideBottomRight;
  c.width = 640, c.height = 620;
  io::plot::Series curve;
  curve.name = "model  AP " + (s.average_precision.defined ? io::fixed(s.average_precision.value, 3) : "undefined");
  if (s.average_precision_ci.defined)
    curve.name += " [" + io::fixed(s.average_precision_ci.lo, 3) + ", " + io::fixed(s.average_precision_ci.hi, 3) + "]";
  if (s.pr.defined) curve.x = s.pr.recall, curve.y = s.pr.precision;
  c.series.push_back(curve);
  io::plot::Series chance;
  const double prev = s.n ? double(s.n_positive) / double(s.n) : 0.0;
  chance.name = "prevalence " + io::fixed(prev, 3) + " (chance)";
  chance.x = {0, 1}, chance.y = {prev, prev}, chance.dashed = true;
  c.series.push_back(chance);
  for (const OperatingPoint& o : s.points) {
    if (!o.sensitivity.defined || !o.ppv.defined) continue;
    io::plot::Series pt;
    pt.name = o.key + " threshold " + io::general(o.threshold);
    pt.x = {o.sensitivity.value}, pt.y = {o.ppv.value}, pt.markers = true;
    c.series.push_back(pt);
  }
  return io::plot::svg(c);
}

io::Json screening_json(const ScreeningReport& s) {
  auto vc = [](const MetricValue& v, const Interval& iv) {
    return io::Json{{"value", v.defined ? io::Json(v.value) : io::Json()}, {"ci", iv.defined ? io::Json{iv.lo, iv.hi} : io::Json()}};
  };
  io::Json points = io::Json::array();
  for (const OperatingPoint& o : s.points)
    points.push_back({{"key", o.key}, {"name", o.name}, {"threshold", o.threshold},
                      {"counts", {{"tp", o.tp}, {"fp", o.fp}, {"tn", o.tn}, {"fn", o.fn}}},
                      {"sensitivity", vc(o.sensitivity, o.sensitivity_ci)}, {"specificity", vc(o.specificity, o.specificity_ci)},
                      {"ppv", vc(o.ppv, o.ppv_ci)}, {"npv", vc(o.npv, o.npv_ci)}});
  return {{"positive", s.positive}, {"positive_name", s.positive_name},
          {"positive_reason", s.positive_reason}, {"n", s.n}, {"n_positive", s.n_positive},
          {"auc", vc(s.auc, s.auc_ci)}, {"average_precision", vc(s.average_precision, s.average_precision_ci)},
          {"pr_curve", {{"recall", s.pr.recall}, {"precision", s.pr.precision}, {"thresholds", s.pr.thresholds}}},
          {"points", std::move(points)}, {"notes", s.notes}};
}

}  // namespace mc::eval::report_text

namespace mc::eval {

std::string format_screening(const ScreeningReport& s) {
  using namespace report_text;
  std::string t = "screening (" + s.positive_name + " positive" + (s.positive_reason.empty() ? "" : ": " + s.positive_reason) +
                  "; " + std::to_string(s.n_positive) + " of " + std::to_string(s.n) + " subjects)\n";
  t += "ROC AUC " + pct(s.auc) + " " + interval(s.auc_ci) + ", PR AUC (average precision) " + pct(s.average_precision) + " " +
       interval(s.average_precision_ci) + "\n";
  t += points_table(s);
  for (const auto& n : s.notes) t += "note: " + n + "\n";
  return t;
}

}  // namespace mc::eval
