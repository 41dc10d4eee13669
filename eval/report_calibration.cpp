// The report's calibration section: reliability diagrams (top label and one vs rest per class),
// ECE with its bootstrap interval, Brier score and NLL, before and after temperature scaling.
#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include "eval/report_text.h"
#include "io/json.h"
#include "io/plot.h"
#include "io/text.h"

namespace mc::eval::report_text {
namespace {

std::string num(double v) { return io::fixed(v, 4); }
std::string ci_text(const std::optional<Interval>& iv) {
  return iv && iv->defined ? "[" + num(iv->lo) + ", " + num(iv->hi) + "]" : "";
}

io::Json curve_json(const ReliabilityCurve& c) {
  io::Json bins = io::Json::array();
  for (const ReliabilityBin& b : c.bins)
    bins.push_back({{"lo", b.lo}, {"hi", b.hi}, {"count", b.count},
                    {"confidence", std::isnan(b.confidence) ? io::Json() : io::Json(b.confidence)},
                    {"frequency", std::isnan(b.frequency) ? io::Json() : io::Json(b.frequency)}});
  return {{"name", c.name}, {"ece", c.ece}, {"bins", std::move(bins)}};
}

io::Json result_json(const CalibrationResult& c, double temperature) {
  auto iv = [](const std::optional<Interval>& i) { return i && i->defined ? io::Json{i->lo, i->hi} : io::Json(); };
  io::Json classes = io::Json::array();
  for (const auto& k : c.classes) classes.push_back(curve_json(k));
  return {{"temperature", temperature}, {"ece", c.top.ece}, {"ece_ci", iv(c.ece_ci)}, {"brier", c.brier},
          {"brier_ci", iv(c.brier_ci)}, {"nll", c.nll}, {"top_label", curve_json(c.top)},
          {"classes", std::move(classes)}};
}

io::plot::Series reliability_series(const ReliabilityCurve& c, const std::string& name, bool dashed) {
  io::plot::Series s;
  s.name = name + "  ECE " + io::fixed(c.ece, 3);
  s.markers = true;
  s.dashed = dashed;
  for (const ReliabilityBin& b : c.bins)
    if (b.count > 0) s.x.push_back(b.confidence), s.y.push_back(b.frequency);
  return s;
}

}  // namespace

void add_calibration(Report& r, const PredictionTable& table, const BootstrapOptions& bootstrap) {
  if (r.run.regression) return;  // derived classes are hard calls: no probabilities to calibrate
  const int64_t K = table.num_classes();
  std::vector<double> logits = table.scores;
  if (r.headline.kind == ScoreKind::Probabilities)  // log p: softmax gives p back (tau2 = 0)
    for (double& v : logits) v = std::log(std::max(v, 1e-300));
  const double tau2 = r.run.tau2;
  const std::vector<double>& prior = r.headline.prior;
  const std::vector<double> p = calibrated_probabilities(logits, K, prior, tau2, 1.0);
  r.calibration = calibration(p, table.labels, table.class_names, r.run.calibration_bins, bootstrap);
  if (r.run.temperature != 1) {
    const std::vector<double> q = calibrated_probabilities(logits, K, prior, tau2, r.run.temperature);
    r.calibration_scaled = calibration(q, table.labels, table.class_names, r.run.calibration_bins, bootstrap);
  }
}

std::string calibration_terminal(const Report& r) {
  if (!r.calibration) return "";
  const CalibrationResult& c = *r.calibration;
  std::string s = "calibration (" + std::to_string(c.bins) + " bins): ECE " + num(c.top.ece) + " " + ci_text(c.ece_ci) +
                  ", Brier " + num(c.brier) + ", NLL " + num(c.nll) + "\n";
  if (r.calibration_scaled)
    s += "after temperature scaling (T = " + io::general(r.run.temperature) + "): ECE " + num(r.calibration_scaled->top.ece) +
         " " + ci_text(r.calibration_scaled->ece_ci) + ", Brier " + num(r.calibration_scaled->brier) + ", NLL " +
         num(r.calibration_scaled->nll) + "\n";
  return s;
}

std::string calibration_markdown(const Report& r) {
  std::ostringstream md;
  if (!r.run.tta.empty())
    md << "\n## Test-time augmentation\n\nThe scores above are the mean logits over " << r.run.tta
       << ". On the validation split:\n\n" << r.run.tta_validation;
  if (!r.calibration) {
    md << "\n## Calibration\n\nNot applicable: a regression head's classes are derived from one predicted T-score "
          "(hard calls), with no class probabilities to calibrate.\n";
    return md.str();
  }
  const CalibrationResult& c = *r.calibration;
  md << "\n## Calibration\n\nDoes a predicted 80% come true 80% of the time? Expected calibration error (ECE: "
     << c.bins << " equal-width bins of the top-label confidence, |accuracy - confidence| weighted by the bin's "
        "share), multi-class Brier score (mean of sum_k (p_k - y_k)^2, 0 = perfect, 2 = worst) and NLL (mean "
        "-log p of the true class) of the probabilities reported above"
     << (r.run.tau2 != 0 ? " (after the post-hoc adjustment)" : "") << ".";
  if (r.run.temperature != 1)
    md << " Temperature scaling divides the " << (r.run.tau2 != 0 ? "adjusted " : "") << "scores by T = "
       << io::general(r.run.temperature) << " (" << r.run.temperature_source
       << ") before the softmax: probabilities = softmax((logits - tau2 log prior) / T). It never changes the "
          "predicted class, so accuracy and the confusion matrix stay as above.";
  else if (!r.run.temperature_source.empty())
    md << " " << r.run.temperature_source << ".";  // e.g. an ensemble, each member scaled by its own
  else
    md << " No temperature scaling (the checkpoint carries none; mc_train fits one on the validation split).";
  md << "\n\n" << row({"", "ECE [95% CI]", "Brier [95% CI]", "NLL"}) << rule(4);
  auto line = [&](const std::string& name, const CalibrationResult& x) {
    md << row({name, num(x.top.ece) + " " + ci_text(x.ece_ci), num(x.brier) + " " + ci_text(x.brier_ci), num(x.nll)});
  };
  line("as reported (T = 1)", c);
  if (r.calibration_scaled) line("temperature scaled (T = " + io::general(r.run.temperature) + ")", *r.calibration_scaled);
  md << "\nOne vs rest per class (ECE of p_class against the class's observed frequency, every subject counted):\n\n";
  std::vector<std::string> head = {"class", "ECE (T = 1)"};
  if (r.calibration_scaled) head.push_back("ECE (T = " + io::general(r.run.temperature) + ")");
  md << row(head) << rule(head.size());
  for (size_t k = 0; k < c.classes.size(); ++k) {
    std::vector<std::string> cells = {c.classes[k].name, num(c.classes[k].ece)};
    if (r.calibration_scaled) cells.push_back(num(r.calibration_scaled->classes[k].ece));
    md << row(cells);
  }
  md << "\n![Reliability diagrams](reliability.svg)\n";
  return md.str();
}

io::Json calibration_json(const Report& r) {
  if (!r.calibration) return io::Json();
  io::Json j = {{"bins", r.calibration->bins}, {"temperature", r.run.temperature},
            {"temperature_source", r.run.temperature_source}, {"as_reported", result_json(*r.calibration, 1.0)}};
  j["temperature_scaled"] = r.calibration_scaled ? result_json(*r.calibration_scaled, r.run.temperature) : io::Json();
  return j;
}

std::string reliability_svg(const Report& r) {
  std::vector<io::plot::LineChart> panels;
  auto panel = [&](const std::string& title, const ReliabilityCurve& raw, const ReliabilityCurve* scaled,
                   const std::string& xlabel, const std::string& ylabel) {
    io::plot::LineChart c;
    c.title = title;
    c.x = {xlabel, 0, 1, true};
    c.y = {ylabel, 0, 1, true};
    c.diagonal = true;
    c.legend = io::plot::Legend::InsideTopRight;
    c.width = 460, c.height = 440;
    c.series.push_back(reliability_series(raw, "T = 1", false));
    if (scaled) c.series.push_back(reliability_series(*scaled, "T = " + io::general(r.run.temperature), true));
    panels.push_back(std::move(c));
  };
  const CalibrationResult& c = *r.calibration;
  const CalibrationResult* s = r.calibration_scaled ? &*r.calibration_scaled : nullptr;
  panel("top label", c.top, s ? &s->top : nullptr, "confidence (max probability)", "accuracy");
  for (size_t k = 0; k < c.classes.size(); ++k)
    panel(c.classes[k].name + " vs rest", c.classes[k], s ? &s->classes[k] : nullptr,
          "predicted probability", "observed frequency");
  return io::plot::svg_panels(panels, 2, "Reliability diagrams (" + where(r) + "; diagonal = perfectly calibrated)");
}

}  // namespace mc::eval::report_text
