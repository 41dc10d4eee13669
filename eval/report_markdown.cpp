// The report as Markdown (report.md) and the tables mc_eval prints, plus the number formats
// every part of the report shares.
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "eval/report_text.h"
#include "io/text.h"

namespace mc::eval::report_text {
namespace fs = std::filesystem;

const std::vector<std::pair<std::string, std::string>> kMetrics = {
    {"accuracy", "Accuracy"},
    {"balanced_accuracy", "Balanced accuracy"},
    {"sensitivity_macro", "Sensitivity (macro)"},
    {"specificity_macro", "Specificity (macro)"},
    {"f1_weighted", "F1 (weighted)"},
    {"f1_macro", "F1 (macro)"},
    {"auc_macro", "ROC AUC (macro, one vs rest)"},
    {"sensitivity_micro", "Sensitivity (micro) = accuracy"},
    {"specificity_micro", "Specificity (micro)"}};

std::string pct(double v) { return io::fixed(100 * v, 2); }
std::string pct(const MetricValue& v) { return v.defined ? pct(v.value) : "n/a"; }
std::string interval(const Interval& iv) { return iv.defined ? "[" + pct(iv.lo) + ", " + pct(iv.hi) + "]" : ""; }
std::string cell(const MetricValue& v, const Interval* iv) {
  std::string s = pct(v);
  if (v.defined && iv && iv->defined) s += " " + interval(*iv);
  return s;
}
MetricValue metric(const ClassificationMetrics& m, const std::string& name) {
  for (const auto& [n, v] : m.named())
    if (n == name) return v;
  MC_FAIL("no metric ", name);
}
const Interval* ci_of(const std::optional<BootstrapResult>& ci, const std::string& name) {
  return ci ? &ci->at(name) : nullptr;
}
std::string tau_text(double t) { return io::general(t); }
std::string row(const std::vector<std::string>& cells) {
  std::string s = "|";
  for (const auto& c : cells) s += " " + c + " |";
  return s + "\n";
}
std::string rule(size_t n) {
  std::string s = "|:--|";
  for (size_t i = 1; i < n; ++i) s += "--:|";
  return s + "\n";
}
std::string where(const Report& r) {
  return (r.run.split.empty() ? fs::path(r.run.source).filename().string() : r.run.split + " split") +
         (r.run.tau2 != 0 ? ", tau2 = " + tau_text(r.run.tau2) : "");
}

std::string sweep_table(const Report& r) {
  std::string s = row({"tau2", "accuracy", "balanced accuracy [95% CI]", "sensitivity (macro)",
                       "specificity (macro)", "F1 (weighted)", "ROC AUC (macro)"}) + rule(7);
  for (const EvalRow& e : r.sweep->rows) {
    const bool reported = e.tau2 == r.run.tau2;
    auto b = [&](const std::string& x) { return reported ? "**" + x + "**" : x; };
    std::vector<std::string> cells = {b(e.tau2 == 0 ? "0 (none)" : tau_text(e.tau2))};
    for (const char* name : {"accuracy", "balanced_accuracy", "sensitivity_macro", "specificity_macro",
                             "f1_weighted", "auc_macro"}) {
      const std::string n = name;
      cells.push_back(b(n == "balanced_accuracy" ? cell(metric(e.metrics, n), ci_of(e.ci, n)) : pct(metric(e.metrics, n))));
    }
    s += row(cells);
  }
  return s;
}

std::string hu_table(const Report& r) {
  const EvalRow& h = r.headline.rows.at(0);
  const auto& m = h.metrics;
  const std::string& first = r.headline.class_names.at(0);  // the lowest-HU class
  std::string s = row({"method", "measured on", "n", "accuracy", "balanced accuracy", first + " sensitivity",
                       first + " specificity", first + " AUC"}) + rule(8);
  s += row({"model (tau2 = " + tau_text(r.run.tau2) + ")", "L1 cube", std::to_string(m.num_samples),
            cell(m.accuracy, ci_of(h.ci, "accuracy")), cell(m.balanced_accuracy, ci_of(h.ci, "balanced_accuracy")),
            cell(m.sensitivity[0], ci_of(h.ci, "sensitivity[0]")), cell(m.specificity[0], ci_of(h.ci, "specificity[0]")),
            cell(m.auc[0], ci_of(h.ci, "auc[0]"))});
  for (const HuRule& u : r.hu.rules) {
    const auto& um = u.metrics;
    s += row({u.name, u.roi, std::to_string(um.num_samples),
              u.binary ? "-" : cell(um.accuracy, ci_of(u.ci, "accuracy")),
              u.binary ? "-" : cell(um.balanced_accuracy, ci_of(u.ci, "balanced_accuracy")),
              cell(um.sensitivity[0], ci_of(u.ci, "sensitivity[0]")),
              cell(um.specificity[0], ci_of(u.ci, "specificity[0]")),
              cell(u.auc_osteoporosis, u.ci ? &u.auc_osteoporosis_ci : nullptr)});
  }
  return s;
}

std::string markdown(const Report& r) {
  const EvalRow& h = r.headline.rows.at(0);
  const auto& m = h.metrics;
  const auto& names = r.headline.class_names;
  const size_t K = names.size();
  const auto& bs = r.headline.options.bootstrap;
  std::ostringstream md;
  md << "# Evaluation: " << r.run.title << "\n\n" << row({"", ""}) << "|:--|:--|\n";
  if (!r.run.model.empty()) md << row({"model", r.run.model});
  md << row({r.run.model.empty() ? "predictions" : "checkpoint",
             "`" + r.run.source + "`" + (r.run.epoch >= 0 ? " (epoch " + std::to_string(r.run.epoch) + ")" : "")});
  std::string classes;
  for (size_t k = 0; k < K; ++k) classes += (k ? ", " : "") + names[k] + " " + std::to_string(m.support[k]);
  md << row({"subjects", std::to_string(m.num_samples) + (r.run.split.empty() ? "" : " of the " + r.run.split + " split") +
                             (r.run.cache.empty() ? "" : " (`" + r.run.cache + "`)")})
     << row({"true classes", classes});
  std::string prior;
  for (size_t k = 0; k < r.run.prior.size(); ++k) prior += (k ? " / " : "") + tau_text(r.run.prior[k]);
  const bool upstream = !r.run.adjusted_upstream.empty();  // adjusted per model before this table
  md << row({"training prior", upstream && prior.empty() ? r.run.prior_source
                                                         : (prior.empty() ? "unknown" : prior) +
                                                               (r.run.prior_source.empty() ? "" : " (" + r.run.prior_source + ")")})
     << row({"post-hoc adjustment", upstream ? r.run.adjusted_upstream
                                    : r.run.tau2 == 0 ? "none (tau2 = 0)"
                                                     : "tau2 = " + tau_text(r.run.tau2) + ": probabilities = softmax(logits - " +
                                                           tau_text(r.run.tau2) + " log prior)"})
     << row({"intervals", bs.resamples > 0 ? tau_text(100 * bs.level) + "% percentile bootstrap, " +
                                                 std::to_string(bs.resamples) + " resamples, seed " + std::to_string(bs.seed)
                                           : "none (bootstrap off)"});
  if (!r.run.device.empty()) md << row({"device", r.run.device});
  if (r.regression) md << regression_markdown(*r.regression);
  md << "\nValues in percent; brackets hold the bootstrap interval.\n\n## Metrics\n\n"
     << row({"metric", "value", "95% CI"}) << rule(3);
  for (const auto& [key, label] : kMetrics) {
    const Interval* iv = ci_of(h.ci, key);
    md << row({label, pct(metric(m, key)), iv ? interval(*iv) : ""});
  }
  md << "\n## Per class\n\n" << row({"class", "support", "sensitivity", "specificity", "F1", "ROC AUC"}) << rule(6);
  for (size_t k = 0; k < K; ++k) {
    const std::string i = "[" + std::to_string(k) + "]";
    md << row({names[k], std::to_string(m.support[k]), cell(m.sensitivity[k], ci_of(h.ci, "sensitivity" + i)),
               cell(m.specificity[k], ci_of(h.ci, "specificity" + i)), cell(m.f1[k], ci_of(h.ci, "f1" + i)),
               cell(m.auc[k], ci_of(h.ci, "auc" + i))});
  }
  md << "\n## Confusion matrix\n\nRows: true class; columns: predicted class; count (share of the row).\n\n";
  std::vector<std::string> head = {"true \\ predicted"};
  head.insert(head.end(), names.begin(), names.end());
  head.push_back("total");
  md << row(head) << rule(head.size());
  for (size_t t = 0; t < K; ++t) {
    std::vector<std::string> cells = {names[t]};
    for (size_t p = 0; p < K; ++p) {
      const int64_t v = m.confusion[t * K + p];
      const double share = m.support[t] ? 100.0 * double(v) / double(m.support[t]) : 0.0;
      cells.push_back(std::to_string(v) + " (" + io::fixed(share, 1) + "%)");
    }
    cells.push_back(std::to_string(m.support[t]));
    md << row(cells);
  }
  md << "\n![Confusion matrix](confusion.svg)\n\n![ROC curves](roc.svg)\n";
  if (r.run.crossval) md << crossval_markdown(*r.run.crossval);
  if (r.screening) md << screening_section(r);
  if (r.sweep)
    md << "\n## Post-hoc logit adjustment sweep\n\nscores = logits - tau2 * log(prior) (Menon et al.; the paper's "
          "Table VI). tau2 = 0 is the unadjusted model; the bold row is the one reported above.\n\n"
       << sweep_table(r) << "\n![tau2 sweep](tau2_sweep.svg)\n";
  md << calibration_markdown(r);
  md << "\n## HU screening baseline\n\n";
  if (!r.hu.available) {
    md << r.hu.note << "\n";
  } else {
    md << "Rules on the Hounsfield units of L1 from mc_prep's manifest (`" << r.hu.manifest
       << "`), each on the region named in its row: TotalSegmentator's spine-report cut-off (body median, "
          "non-contrast CT; it adds 20 HU for arterial and 14.75 HU for portal-venous phase), Pickhardt et al. "
          "2013 (trabecular attenuation <= 160 HU ~90% sensitive, <= 110 HU ~90% specific for osteoporosis), "
          "the ACR QCT categories when a scanner calibration gives volumetric BMD, and threshold pairs chosen on "
          "the train split (n = " << r.hu.n_train << ") to maximise balanced accuracy, applied unchanged here (n = "
       << r.hu.n_eval << " usable rows; a rule scores the subjects that have its measurement). The trabecular ROI "
          "is the vertebral body eroded by the margin shown, leaving the cortex out. Binary rules score "
       << r.headline.class_names.at(0) << " against the rest. The " << r.headline.class_names.at(0)
       << " AUC scores -HU for the rules and the model's probability for the model.\n\n"
       << hu_table(r);
    if (!r.hu.note.empty()) md << "\n" << r.hu.note << "\n";
  }
  if (!r.training_curves.empty()) md << "\n## Training curves\n\n![Training curves](training_curves.svg)\n";
  std::vector<std::string> notes = m.notes;
  notes.insert(notes.end(), r.notes.begin(), r.notes.end());
  if (!notes.empty()) {
    md << "\n## Notes\n\n";
    for (const auto& n : notes) md << "- " << n << "\n";
  }
  md << "\n## Reproduce\n\n```\nmc_eval --predictions " << (r.predictions.empty() ? r.run.source : "predictions.csv")
     << " --scores " << score_kind_name(r.headline.kind) << " --tau2 " << tau_text(r.run.tau2);
  if (!r.run.prior.empty()) {
    md << " --prior ";
    for (size_t k = 0; k < r.run.prior.size(); ++k) md << (k ? "," : "") << tau_text(r.run.prior[k]);
  }
  md << " --bootstrap " << bs.resamples << " --seed " << bs.seed << "\n```\n";
  return md.str();
}

}  // namespace mc::eval::report_text
