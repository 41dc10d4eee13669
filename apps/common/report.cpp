#include "apps/common/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <tuple>

#include "apps/common/predict.h"
#include "io/labels.h"
#include "io/plot.h"
#include "io/runlog.h"

namespace mc {
namespace fs = std::filesystem;
namespace {

// ---- numbers as people read them: percent with two decimals, as the paper reports ----

std::string pct(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", 100 * v);
  return b;
}
std::string pct(const MetricValue& v) { return v.defined ? pct(v.value) : "n/a"; }
std::string interval(const Interval& iv) {
  return iv.defined ? "[" + pct(iv.lo) + ", " + pct(iv.hi) + "]" : "";
}
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
std::string tau_text(double t) {
  char b[32];
  std::snprintf(b, sizeof b, "%g", t);
  return b;
}
std::string row(const std::vector<std::string>& cells) {
  std::string s = "|";
  for (const auto& c : cells) s += " " + c + " |";
  return s + "\n";
}
std::string rule(size_t n) {  // first column left-aligned, numbers right-aligned
  std::string s = "|:--|";
  for (size_t i = 1; i < n; ++i) s += "--:|";
  return s + "\n";
}

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

// ---- the HU baseline ----

struct ManifestRow {
  std::string id, split;
  int64_t label = -1;
  double mean_hu = 0, median_hu = 0;
};

// Rows usable for the baseline: status ok (when the column exists), labelled, with both HU.
std::vector<ManifestRow> read_manifest(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  MC_CHECK(in && std::getline(in, line), path, ": cannot read");
  const char sep = detect_csv_separator(line);
  const auto header = split_csv_line(line, sep);
  auto col = [&](const std::string& name) {
    auto it = std::find(header.begin(), header.end(), name);
    MC_CHECK(it != header.end() || name == "status", path, ": no column '", name, "'");
    return it == header.end() ? -1 : int(it - header.begin());
  };
  const int id = col("id"), label = col("label"), split = col("split"), mean = col("mean_hu"),
            median = col("median_hu"), status = col("status");
  std::vector<ManifestRow> rows;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto f = split_csv_line(line, sep);
    if (f.size() != header.size() || (status >= 0 && f[size_t(status)] != "ok")) continue;
    try {
      ManifestRow r{f[size_t(id)], f[size_t(split)], std::stoll(f[size_t(label)]),
                    std::stod(f[size_t(mean)]), std::stod(f[size_t(median)])};
      if (r.label >= 0 && std::isfinite(r.mean_hu) && std::isfinite(r.median_hu)) rows.push_back(r);
    } catch (const std::exception&) {  // an empty cell: that subject has no statistics
    }
  }
  return rows;
}

HuRule score_rule(HuRule r, const std::vector<double>& x, const std::vector<int64_t>& y,
                  const BootstrapOptions& b) {
  const int64_t N = int64_t(x.size()), K = r.binary ? 2 : kNumClasses;
  std::vector<int64_t> labels, vs_rest;
  std::vector<double> onehot(size_t(N * K), 0.0), by_hu;
  for (int64_t i = 0; i < N; ++i) {
    vs_rest.push_back(y[size_t(i)] == 0 ? 0 : 1);
    labels.push_back(r.binary ? vs_rest.back() : y[size_t(i)]);
    onehot[size_t(i * K + threshold_class(x[size_t(i)], r.thresholds))] = 1;
    by_hu.insert(by_hu.end(), {-x[size_t(i)], x[size_t(i)]});  // low HU: osteoporosis
  }
  r.metrics = classification_metrics(labels, onehot, K);
  const ClassificationMetrics screen = classification_metrics(vs_rest, by_hu, 2);
  r.auc_osteoporosis = screen.auc[0];
  if (b.resamples > 0) {
    r.ci = bootstrap_ci(Tensor::from(labels, {N}), Tensor::from(onehot, {N, K}), b);
    r.auc_osteoporosis_ci = bootstrap_ci(Tensor::from(vs_rest, {N}), Tensor::from(by_hu, {N, 2}), b).at("auc[0]");
  }
  return r;
}

std::string hu_text(double t) {  // 90.25, 118.3, 57
  if (std::isinf(t)) return t < 0 ? "-inf" : "+inf";
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", t);
  std::string s = b;
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

}  // namespace

HuBaseline hu_baseline(const std::string& manifest, const std::string& split, const BootstrapOptions& b) {
  HuBaseline h;
  h.manifest = manifest;
  if (!fs::exists(manifest)) {
    h.note = "no manifest at " + manifest + " (mc_prep writes manifest.csv beside the caches): no HU baseline";
    return h;
  }
  std::vector<ManifestRow> rows;
  try {
    rows = read_manifest(manifest);
  } catch (const Error& e) {
    h.note = std::string("manifest unusable, no HU baseline: ") + e.what();
    return h;
  }
  std::vector<double> train_mean, train_median, mean, median;
  std::vector<int64_t> train_y, y;
  for (const auto& r : rows) {
    if (r.split == "train")
      train_mean.push_back(r.mean_hu), train_median.push_back(r.median_hu), train_y.push_back(r.label);
    if (r.split == split)
      mean.push_back(r.mean_hu), median.push_back(r.median_hu), y.push_back(r.label), h.eval_ids.push_back(r.id);
  }
  h.n_train = int64_t(train_y.size());
  h.n_eval = int64_t(y.size());
  if (y.empty()) {
    h.note = "the manifest " + manifest + " has no usable rows (status ok, labelled, with HU) in split '" + split + "'";
    return h;
  }
  h.available = true;
  h.rules.push_back(score_rule({"median HU < " + hu_text(kTotalSegmentatorHuThreshold) +
                                    " -> osteoporosis (TotalSegmentator spine report)",
                                "totalsegmentator_median_hu", "median_hu", {kTotalSegmentatorHuThreshold}, true},
                               median, y, b));
  if (train_y.empty()) {
    h.note = "no train rows in the manifest: no thresholds fitted";
    return h;
  }
  for (const auto& [feature, tx, ex] : {std::tuple{"mean_hu", &train_mean, &mean}, std::tuple{"median_hu", &train_median, &median}}) {
    const std::vector<double> t = fit_thresholds(*tx, train_y, kNumClasses);
    const std::string what = std::string(feature) == "mean_hu" ? "mean HU" : "median HU";
    h.rules.push_back(score_rule({what + " < " + hu_text(t[0]) + " osteoporosis, < " + hu_text(t[1]) +
                                      " osteopenia, else normal (fitted on train)",
                                  std::string("fitted_") + feature, feature, t, false},
                                 *ex, y, b));
  }
  return h;
}

}  // namespace mc

namespace mc {
namespace {

std::string fixed3(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.3f", v);
  return b;
}

std::string where(const Report& r) {  // "test split, tau2 = 0.5"
  return (r.run.split.empty() ? fs::path(r.run.source).filename().string() : r.run.split + " split") +
         (r.run.tau2 != 0 ? ", tau2 = " + tau_text(r.run.tau2) : "");
}

std::string roc_chart(const Report& r) {
  const EvalRow& h = r.headline.rows.at(0);
  plot::LineChart c;
  c.title = "ROC curves, one vs rest (" + where(r) + ")";
  c.x = {"false positive rate (1 - specificity)", 0, 1, true};
  c.y = {"true positive rate (sensitivity)", 0, 1, true};
  c.diagonal = true;
  c.legend = plot::Legend::InsideBottomRight;
  c.width = 640, c.height = 620;
  for (size_t k = 0; k < h.roc.size(); ++k) {
    const MetricValue& a = h.metrics.auc[k];
    const Interval* iv = ci_of(h.ci, "auc[" + std::to_string(k) + "]");
    plot::Series s{r.headline.class_names[k] + "  AUC " + (a.defined ? fixed3(a.value) : "undefined")};
    if (a.defined && iv && iv->defined) s.name += " [" + fixed3(iv->lo) + ", " + fixed3(iv->hi) + "]";
    if (h.roc[k].defined) s.x = h.roc[k].fpr, s.y = h.roc[k].tpr;
    c.series.push_back(s);
  }
  return plot::svg(c);
}

std::string sweep_chart(const Report& r) {
  plot::BarChart c;
  c.title = "Post-hoc logit adjustment sweep (" + (r.run.split.empty() ? r.run.source : r.run.split + " split") + ")";
  c.x_label = "tau2   (scores = logits - tau2 * log prior)";
  c.y = {"", 0, 1, true};
  const std::vector<std::pair<std::string, std::string>> shown = {
      {"accuracy", "accuracy"}, {"balanced_accuracy", "balanced accuracy"},
      {"f1_weighted", "F1 (weighted)"}, {"auc_macro", "ROC AUC (macro)"}};
  for (const auto& [key, label] : shown) c.series.push_back({label});
  for (const EvalRow& row : r.sweep->rows) {
    if (row.tau2 == r.run.tau2) c.highlight = int(c.categories.size()), c.highlight_label = "reported";
    c.categories.push_back(row.tau2 == 0 ? "0 (none)" : tau_text(row.tau2));
    for (size_t i = 0; i < shown.size(); ++i) {
      const MetricValue v = metric(row.metrics, shown[i].first);
      const Interval* iv = ci_of(row.ci, shown[i].first);
      c.series[i].values.push_back(v.defined ? v.value : NAN);
      if (iv) {
        c.series[i].lo.push_back(iv->defined ? iv->lo : NAN);
        c.series[i].hi.push_back(iv->defined ? iv->hi : NAN);
      }
    }
  }
  c.width = std::max(640, 110 + 64 * int(c.categories.size()) + 190);
  return plot::svg(c);
}

std::optional<std::string> curves_chart(Report& r) {
  std::vector<LogRow> rows;
  try {
    rows = RunLog::read_csv(r.run.metrics_csv);
  } catch (const std::exception& e) {
    r.notes.push_back("training curves left out: " + r.run.metrics_csv + " unreadable (" + e.what() + ")");
    return std::nullopt;
  }
  if (rows.empty()) return std::nullopt;
  auto column = [&](const std::string& name) {
    std::vector<double> v;
    for (const LogRow& row : rows) {
      double x = NAN;
      for (const auto& [k, value] : row)
        if (k == name) x = value;
      v.push_back(x);
    }
    return v;
  };
  const std::vector<double> epoch = column("epoch");
  plot::LineChart loss, val;
  loss.title = "Loss";
  loss.x = val.x = {"epoch", plot::kAuto, plot::kAuto, false, true};
  loss.y.label = "loss";
  loss.series = {{"train", epoch, column("train_loss")}, {"validation", epoch, column("val_loss"), "", true}};
  val.title = "Validation metrics (as mc_train logged them)";
  val.y = {"", 0, 1, true};
  val.series = {{"accuracy", epoch, column("val_accuracy")},
                {"balanced accuracy", epoch, column("val_balanced_accuracy")},
                {"ROC AUC (macro)", epoch, column("val_auc_macro")}};
  if (r.run.epoch > 0) loss.vlines = val.vlines = {{double(r.run.epoch), "checkpoint (epoch " + std::to_string(r.run.epoch) + ")"}};
  return plot::svg_panels({loss, val}, 1, "Training curves");
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
  std::string s = row({"method", "n", "accuracy", "balanced accuracy", "osteoporosis sensitivity",
                       "osteoporosis specificity", "osteoporosis AUC"}) + rule(7);
  s += row({"model (tau2 = " + tau_text(r.run.tau2) + ")", std::to_string(m.num_samples),
            cell(m.accuracy, ci_of(h.ci, "accuracy")), cell(m.balanced_accuracy, ci_of(h.ci, "balanced_accuracy")),
            cell(m.sensitivity[0], ci_of(h.ci, "sensitivity[0]")), cell(m.specificity[0], ci_of(h.ci, "specificity[0]")),
            cell(m.auc[0], ci_of(h.ci, "auc[0]"))});
  for (const HuRule& u : r.hu.rules) {
    const auto& um = u.metrics;
    s += row({u.name, std::to_string(um.num_samples),
              u.binary ? "-" : cell(um.accuracy, ci_of(u.ci, "accuracy")),
              u.binary ? "-" : cell(um.balanced_accuracy, ci_of(u.ci, "balanced_accuracy")),
              cell(um.sensitivity[0], ci_of(u.ci, "sensitivity[0]")),
              cell(um.specificity[0], ci_of(u.ci, "specificity[0]")),
              cell(u.auc_osteoporosis, u.ci ? &u.auc_osteoporosis_ci : nullptr)});
  }
  return s;
}

}  // namespace
}  // namespace mc

namespace mc {
namespace {

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
  md << row({"training prior", (prior.empty() ? "unknown" : prior) + (r.run.prior_source.empty() ? "" : " (" + r.run.prior_source + ")")})
     << row({"post-hoc adjustment", r.run.tau2 == 0 ? "none (tau2 = 0)"
                                                     : "tau2 = " + tau_text(r.run.tau2) + ": probabilities = softmax(logits - " +
                                                           tau_text(r.run.tau2) + " log prior)"})
     << row({"intervals", bs.resamples > 0 ? tau_text(100 * bs.level) + "% percentile bootstrap, " +
                                                 std::to_string(bs.resamples) + " resamples, seed " + std::to_string(bs.seed)
                                           : "none (bootstrap off)"});
  if (!r.run.device.empty()) md << row({"device", r.run.device});
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
      char b[48];
      std::snprintf(b, sizeof b, "%lld (%.1f%%)", (long long)v, m.support[t] ? 100.0 * double(v) / double(m.support[t]) : 0.0);
      cells.push_back(b);
    }
    cells.push_back(std::to_string(m.support[t]));
    md << row(cells);
  }
  md << "\n![Confusion matrix](confusion.svg)\n\n![ROC curves](roc.svg)\n";
  if (r.sweep)
    md << "\n## Post-hoc logit adjustment sweep\n\nscores = logits - tau2 * log(prior) (Menon et al.; the paper's "
          "Table VI). tau2 = 0 is the unadjusted model; the bold row is the one reported above.\n\n"
       << sweep_table(r) << "\n![tau2 sweep](tau2_sweep.svg)\n";
  md << "\n## HU screening baseline\n\n";
  if (!r.hu.available) {
    md << r.hu.note << "\n";
  } else {
    md << "Rules on the Hounsfield units of the L1 mask, from mc_prep's manifest (`" << r.hu.manifest
       << "`): TotalSegmentator's spine-report cut-off, and threshold pairs on mean or median HU chosen on the "
          "train split (n = " << r.hu.n_train << ") to maximise balanced accuracy, applied unchanged here (n = "
       << r.hu.n_eval << "). The spine report measures the vertebral body of non-contrast CT (it adds 20 HU for "
          "arterial and 14.75 HU for portal-venous phase); mc_prep measures the whole L1 mask, so the fixed "
          "cut-off is indicative only. The osteoporosis AUC scores -HU for the rules and the model's probability "
          "for the model.\n\n"
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

std::string metrics_json(const ClassificationMetrics& m, const std::optional<BootstrapResult>& ci) {
  std::string s = "{";
  for (const auto& [name, v] : m.named()) {
    const Interval* iv = ci_of(ci, name);
    s += (s.size() > 1 ? ", " : "") + json_string(name) + ": {\"value\": " + (v.defined ? json_number(v.value) : "null") +
         ", \"ci\": " + (iv && iv->defined ? "[" + json_number(iv->lo) + ", " + json_number(iv->hi) + "]" : "null") + "}";
  }
  return s + "}";
}

std::string json(const Report& r) {
  const auto& run = r.run;
  auto list = [](const std::vector<std::string>& v) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + json_string(v[i]);
    return s + "]";
  };
  auto numbers = [](const std::vector<double>& v) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + json_number(v[i]);
    return s + "]";
  };
  auto file = [&](const std::string& p) { return p.empty() ? std::string("null") : json_string(fs::path(p).filename().string()); };
  std::ostringstream j;
  j << "{\n\"generator\": \"mc_eval\",\n\"run\": {\"title\": " << json_string(run.title) << ", \"source\": " << json_string(run.source)
    << ", \"model\": " << json_string(run.model) << ", \"epoch\": " << run.epoch << ", \"split\": " << json_string(run.split)
    << ", \"cache\": " << json_string(run.cache) << ", \"device\": " << json_string(run.device)
    << ", \"prior\": " << (run.prior.empty() ? "null" : numbers(run.prior)) << ", \"prior_source\": " << json_string(run.prior_source)
    << ", \"tau2\": " << json_number(run.tau2) << ", \"sweep\": " << numbers(run.sweep) << "},\n\"evaluation\": " << to_json(r.headline)
    << ",\n\"sweep\": " << (r.sweep ? to_json(*r.sweep) : "null\n") << ",\n\"hu_baseline\": {\"manifest\": " << json_string(r.hu.manifest)
    << ", \"available\": " << (r.hu.available ? "true" : "false") << ", \"note\": " << json_string(r.hu.note)
    << ", \"n_train\": " << r.hu.n_train << ", \"n_eval\": " << r.hu.n_eval << ", \"rules\": [";
  for (size_t i = 0; i < r.hu.rules.size(); ++i) {
    const HuRule& u = r.hu.rules[i];
    const Interval& a = u.auc_osteoporosis_ci;
    j << (i ? "," : "") << "\n  {\"key\": " << json_string(u.key) << ", \"name\": " << json_string(u.name)
      << ", \"feature\": " << json_string(u.feature) << ", \"thresholds\": " << numbers(u.thresholds)
      << ", \"binary\": " << (u.binary ? "true" : "false") << ",\n   \"metrics\": " << metrics_json(u.metrics, u.ci)
      << ",\n   \"auc_osteoporosis\": {\"value\": " << (u.auc_osteoporosis.defined ? json_number(u.auc_osteoporosis.value) : "null")
      << ", \"ci\": " << (u.ci && a.defined ? "[" + json_number(a.lo) + ", " + json_number(a.hi) + "]" : "null") << "}}";
  }
  j << "]},\n\"notes\": " << list(r.notes) << ",\n\"files\": {\"markdown\": " << file(r.markdown) << ", \"predictions\": "
    << file(r.predictions) << ", \"roc\": " << file(r.roc) << ", \"confusion\": " << file(r.confusion)
    << ", \"tau2_sweep\": " << file(r.sweep_chart) << ", \"training_curves\": " << file(r.training_curves) << "}\n}\n";
  return j.str();
}

}  // namespace

Report write_report(const PredictionTable& table, ReportRun run, const BootstrapOptions& bootstrap,
                    HuBaseline hu, const std::string& out_dir, bool write_predictions, ScoreKind kind) {
  Report r;
  r.notes = run.notes;
  r.run = std::move(run);
  r.hu = std::move(hu);
  r.dir = out_dir;
  EvalOptions eo;
  eo.tau2 = {r.run.tau2};
  eo.prior = r.run.prior;
  eo.kind = kind;
  eo.bootstrap = bootstrap;
  r.headline = evaluate(table, eo);
  if (!r.run.sweep.empty()) {
    eo.tau2 = r.run.sweep;
    eo.roc = false;
    r.sweep = evaluate(table, eo);
  }
  if (r.hu.available &&
      std::set<std::string>(r.hu.eval_ids.begin(), r.hu.eval_ids.end()) != std::set<std::string>(table.ids.begin(), table.ids.end()))
    r.notes.push_back("the HU baseline covers the " + std::to_string(r.hu.n_eval) + " usable manifest rows of the split; the model "
                      "was scored on the " + std::to_string(table.size()) + " subjects of its cache: the sets differ");

  fs::create_directories(out_dir);
  auto path = [&](const char* name) { return (fs::path(out_dir) / name).string(); };
  auto save_svg = [&](std::string& field, const char* name, const std::string& svg) {
    const std::string problem = plot::xml_problem(svg);
    MC_CHECK(problem.empty(), name, " is not well-formed XML: ", problem);
    field = path(name);
    plot::write_text_atomic(field, svg);
  };
  if (write_predictions) {
    r.predictions = path("predictions.csv");
    plot::write_text_atomic(r.predictions, predictions_csv(table));
  }
  save_svg(r.roc, "roc.svg", roc_chart(r));
  save_svg(r.confusion, "confusion.svg",
           plot::svg(plot::ConfusionChart{"Confusion matrix (" + where(r) + ")", r.headline.class_names,
                                          r.headline.rows.at(0).metrics.confusion}));
  if (r.sweep) save_svg(r.sweep_chart, "tau2_sweep.svg", sweep_chart(r));
  if (!r.run.metrics_csv.empty())
    if (auto svg = curves_chart(r)) save_svg(r.training_curves, "training_curves.svg", *svg);
  r.markdown = path("report.md");
  r.json = path("report.json");
  plot::write_text_atomic(r.json, json(r));
  plot::write_text_atomic(r.markdown, markdown(r));

  r.terminal = format_report(r.headline);
  if (r.sweep) r.terminal += "\npost-hoc adjustment sweep\n" + sweep_table(r);
  r.terminal += "\nHU screening baseline\n" + (r.hu.available ? hu_table(r) : "") + (r.hu.note.empty() ? "" : r.hu.note + "\n");
  for (const auto& n : r.notes) r.terminal += "note: " + n + "\n";
  return r;
}

Report write_predictions_report(const PredictionTable& p, const EvalOptions& o, const std::string& out_dir) {
  ReportRun run;
  run.title = fs::path(p.source).filename().string();
  run.source = p.source;
  run.prior = o.prior;
  run.prior_source = o.prior.empty() ? "" : "--prior";
  MC_CHECK(!o.tau2.empty(), "evaluation: no tau2 values");
  run.tau2 = o.tau2[0];
  if (o.tau2.size() > 1) run.sweep = o.tau2;
  HuBaseline hu;
  hu.note = "no HU baseline for saved predictions: it needs the run's config and mc_prep's manifest (mc_eval --config)";
  return write_report(p, run, o.bootstrap, hu, out_dir, false, o.kind);
}

Report write_model_report(const Config& cfg, const ReportOptions& o) {
  MC_CHECK(o.split == "test" || o.split == "val" || o.split == "train", "unknown split '", o.split,
           "' (allowed: test, val, train)");
  const std::string checkpoint = o.checkpoint.empty() ? (fs::path(cfg.output.dir) / "best.safetensors").string() : o.checkpoint;
  MC_CHECK(fs::is_regular_file(checkpoint), "checkpoint '", checkpoint, "' not found",
           o.checkpoint.empty() ? " (the best epoch of the run in output.dir; pass --checkpoint to choose another)" : "");
  LoadedModel m = load_model(cfg, checkpoint);
  const SplitLogits s = predict_split(m, cfg, o.split, o.progress);
  const int64_t K = s.num_classes;

  PredictionTable t;
  t.source = s.cache;
  t.class_names = class_names_for(K);
  int64_t unlabelled = 0;
  for (size_t i = 0; i < s.ids.size(); ++i) {
    if (s.labels[i] < 0) {
      ++unlabelled;
      continue;
    }
    t.ids.push_back(s.ids[i]);
    t.labels.push_back(s.labels[i]);
    t.scores.insert(t.scores.end(), s.logits.begin() + int64_t(i) * K, s.logits.begin() + int64_t(i + 1) * K);
  }
  MC_CHECK(t.size() > 0, "the ", o.split, " cache '", s.cache, "' has no labelled subjects to evaluate");

  ReportRun run;
  run.title = std::string(model_arch(cfg.model.name)) + " on the " + o.split + " split";
  run.source = checkpoint;
  run.model = std::string(model_arch(cfg.model.name)) + " (" + std::to_string(cfg.model.in_chans) + " input channel" +
              (cfg.model.in_chans == 1 ? "" : "s") + ", " + std::to_string(K) + " classes)";
  run.epoch = m.epoch;
  run.split = o.split;
  run.cache = s.cache;
  run.device = m.device.str();
  const TrainingPrior prior = training_prior(cfg, checkpoint, /*cache_first=*/true);
  run.prior_source = prior.source;
  run.prior.assign(prior.counts.begin(), prior.counts.end());
  if (prior.usable()) {
    run.tau2 = cfg.posthoc.tau2;
    std::set<double, std::greater<>> taus(cfg.posthoc.sweep.begin(), cfg.posthoc.sweep.end());
    taus.insert({cfg.posthoc.tau2, 0.0});  // the reported value and the unadjusted model
    run.sweep.assign(taus.begin(), taus.end());
  }
  const std::string log = (fs::path(cfg.output.dir) / "metrics.csv").string();
  if (fs::exists(log)) run.metrics_csv = log;

  const BootstrapOptions b{cfg.eval.bootstrap, uint64_t(cfg.train.seed), 0.95};
  HuBaseline hu;
  if (K == kNumClasses) hu = hu_baseline((fs::path(cfg.data.cache_dir) / "manifest.csv").string(), o.split, b);
  else hu.note = "no HU baseline: it predicts the " + std::to_string(kNumClasses) + " WHO classes, the model has " + std::to_string(K);
  if (unlabelled) run.notes.push_back(std::to_string(unlabelled) + " subjects of the cache have no label and were left out");
  if (!prior.usable() && cfg.posthoc.tau2 != 0)
    run.notes.push_back("no post-hoc adjustment (posthoc.tau2 = " + tau_text(cfg.posthoc.tau2) + " asked): training prior: " + prior.source);
  return write_report(t, run, b, hu, o.out_dir.empty() ? (fs::path(cfg.output.dir) / "report").string() : o.out_dir, true);
}

}  // namespace mc
