#include "eval/hu_baseline.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <set>

#include "io/csv.h"
#include "io/labels.h"
#include "io/text.h"

namespace mc::eval {
namespace fs = std::filesystem;
namespace {

// The manifest rows usable for a baseline: status ok (when the column exists) and labelled.
// Features are read per rule, so a subject without one measurement still counts for others.
struct Manifest {
  io::CsvTable table;
  std::vector<size_t> rows;  // usable rows of table
  std::vector<int64_t> label;

  bool has(const std::string& col) const { return table.column(col) >= 0; }
  const std::string& cell(size_t n, const std::string& col) const {
    return table.rows[rows[n]].cells[size_t(table.column(col))];
  }
  // NaN where the cell is empty or no number (that subject has no such measurement).
  double number(size_t n, const std::string& col) const {
    const auto v = io::parse_double(cell(n, col));
    return v && std::isfinite(*v) ? *v : std::nan("");
  }
};

Manifest read_manifest(const std::string& path) {
  Manifest m;
  m.table = io::read_csv(path, {.what = "manifest"});
  MC_CHECK(!m.table.header.empty(), path, ": empty manifest");
  for (const char* c : {"id", "label", "split"}) MC_CHECK(m.has(c), path, ": no column '", c, "'");
  const int label = m.table.column("label"), status = m.table.column("status");
  for (size_t r = 0; r < m.table.rows.size(); ++r) {
    const auto& f = m.table.rows[r].cells;
    if (status >= 0 && f[size_t(status)] != "ok") continue;
    const auto y = io::parse_int(f[size_t(label)]);
    if (!y || *y < 0) continue;
    m.rows.push_back(r);
    m.label.push_back(*y);
  }
  return m;
}

// Distinct non-empty values of a text column among usable rows, joined: "body map / estimate".
std::string distinct(const Manifest& m, const std::string& col) {
  if (!m.has(col)) return {};
  std::set<std::string> seen;
  for (size_t n = 0; n < m.rows.size(); ++n)
    if (!m.cell(n, col).empty()) seen.insert(m.cell(n, col));
  std::string s;
  for (const auto& v : seen) s += (s.empty() ? "" : " / ") + v;
  return s;
}

HuRule score_rule(HuRule r, const std::vector<double>& x, const std::vector<int64_t>& y,
                  const BootstrapOptions& b, int64_t num_classes) {
  const int64_t N = int64_t(x.size()), K = r.binary ? 2 : num_classes;
  std::vector<int64_t> labels, vs_rest;
  std::vector<double> onehot(size_t(N * K), 0.0), by_hu;
  for (int64_t i = 0; i < N; ++i) {
    vs_rest.push_back(y[size_t(i)] == 0 ? 0 : 1);
    labels.push_back(r.binary ? vs_rest.back() : y[size_t(i)]);
    onehot[size_t(i * K + threshold_class(x[size_t(i)], r.thresholds, r.at_or_below))] = 1;
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

// Applies and scores rules on one split of a manifest.
struct Scorer {
  const Manifest& m;
  const std::string& split;
  const BootstrapOptions& b;
  HuBaseline& h;
  const io::Task& task;

  // (x, y) of the rows of `which` split with a value in `col`.
  void values(const std::string& col, const std::string& which, std::vector<double>& x,
              std::vector<int64_t>& y) const {
    x.clear(), y.clear();
    if (!m.has(col)) return;
    for (size_t n = 0; n < m.rows.size(); ++n) {
      if (m.cell(n, "split") != which) continue;
      const double v = m.number(n, col);
      if (!std::isnan(v)) x.push_back(v), y.push_back(m.label[n]);
    }
  }
  void fixed_rule(HuRule r) {
    std::vector<double> x;
    std::vector<int64_t> y;
    values(r.feature, split, x, y);
    if (x.empty()) {
      h.note += (h.note.empty() ? "" : "; ") + std::string("no '") + r.feature + "' values in split '" + split +
                "': rule " + r.key + " left out";
      return;
    }
    h.rules.push_back(score_rule(std::move(r), x, y, b, task.num_classes()));
  }
  // K - 1 thresholds fitted on train; `what` names the feature for people ("L1 trabecular mean HU").
  void fitted_rule(const std::string& feature, const std::string& what, const std::string& roi) {
    std::vector<double> tx, x;
    std::vector<int64_t> ty, y;
    values(feature, "train", tx, ty);
    values(feature, split, x, y);
    if (tx.empty() || x.empty()) {
      h.note += (h.note.empty() ? "" : "; ") + std::string("no '") + feature + "' values in the " +
                (tx.empty() ? std::string("train") : "'" + split + "'") + " split: no thresholds fitted on it";
      return;
    }
    const int64_t K = task.num_classes();
    const std::vector<double> t = fit_thresholds(tx, ty, K);
    std::string name = what;
    for (int64_t k = 0; k + 1 < K; ++k) name += (k ? ", < " : " < ") + hu_text(t[size_t(k)]) + " " + task.name(k);
    name += ", else " + task.name(K - 1) + " (fitted on train)";
    HuRule r{.name = name,
             .key = "fitted_" + feature,
             .feature = feature,
             .roi = roi,
             .thresholds = t};
    r.n_train = int64_t(tx.size());
    h.rules.push_back(score_rule(std::move(r), x, y, b, K));
  }
};

}  // namespace

std::string hu_text(double t) {
  if (std::isinf(t)) return t < 0 ? "-inf" : "+inf";
  std::string s = io::fixed(t, 2);
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

int64_t threshold_class(double x, const std::vector<double>& thresholds, const std::vector<bool>& at_or_below) {
  int64_t k = 0;
  auto above = [&](size_t i) {
    const bool inclusive = i < at_or_below.size() && at_or_below[i];
    return inclusive ? x > thresholds[i] : x >= thresholds[i];
  };
  while (size_t(k) < thresholds.size() && above(size_t(k))) ++k;
  return k;
}

std::vector<double> fit_thresholds(const std::vector<double>& x, const std::vector<int64_t>& labels,
                                   int64_t K) {
  MC_CHECK(K >= 2 && x.size() == labels.size(), "fit_thresholds: ", x.size(), " values and ",
           labels.size(), " labels for ", K, " classes");
  std::vector<std::pair<double, int64_t>> v;
  for (size_t i = 0; i < x.size(); ++i) {
    MC_CHECK(labels[i] >= 0 && labels[i] < K, "fit_thresholds: label ", labels[i], " outside [0, ", K, ")");
    if (!std::isnan(x[i])) v.emplace_back(x[i], labels[i]);
  }
  MC_CHECK(!v.empty(), "fit_thresholds: no values");
  std::sort(v.begin(), v.end());
  // Groups of equal values; a cut may only fall between groups. cum[g][k]: class-k samples in
  // groups before g.
  std::vector<double> value;
  std::vector<std::vector<int64_t>> cum(1, std::vector<int64_t>(size_t(K), 0));
  for (size_t i = 0; i < v.size(); ++i) {
    if (i == 0 || v[i].first != v[i - 1].first) {
      value.push_back(v[i].first);
      cum.push_back(cum.back());
    }
    ++cum.back()[size_t(v[i].second)];
  }
  const size_t G = value.size();
  const std::vector<int64_t>& n = cum[G];
  // Balanced accuracy = sum over present classes of recall / their number: the common divisor
  // does not move the argmax, so maximise the sum of recalls. best[k][j]: the best sum for
  // classes 0..k with class k ending at cut j; from[k][j]: where class k started.
  auto gain = [&](size_t k, size_t a, size_t b) {
    return n[k] ? double(cum[b][k] - cum[a][k]) / double(n[k]) : 0.0;
  };
  std::vector<std::vector<double>> best(size_t(K), std::vector<double>(G + 1, -1));
  std::vector<std::vector<size_t>> from(size_t(K), std::vector<size_t>(G + 1, 0));
  for (size_t j = 0; j <= G; ++j) best[0][j] = gain(0, 0, j);
  for (size_t k = 1; k < size_t(K); ++k)
    for (size_t j = 0; j <= G; ++j)
      for (size_t i = 0; i <= j; ++i) {
        const double b = best[k - 1][i] + gain(k, i, j);
        if (b > best[k][j] + 1e-12) best[k][j] = b, from[k][j] = i;
      }
  std::vector<size_t> cut(size_t(K) - 1);
  size_t j = G;
  for (size_t k = size_t(K) - 1; k >= 1; --k) cut[k - 1] = j = from[k][j];
  std::vector<double> t;
  for (size_t c : cut)
    t.push_back(c == 0   ? -std::numeric_limits<double>::infinity()
                : c == G ? std::numeric_limits<double>::infinity()
                         : (value[c - 1] + value[c]) / 2);
  return t;
}

HuBaseline hu_baseline(const std::string& manifest, const std::string& split, const BootstrapOptions& b,
                       const io::Task& task) {
  const int64_t K = task.num_classes();
  HuBaseline h;
  h.manifest = manifest;
  if (!fs::exists(manifest)) {
    h.note = "no manifest at " + manifest + " (mc_prep writes manifest.csv beside the caches): no HU baseline";
    return h;
  }
  Manifest m;
  try {
    m = read_manifest(manifest);
  } catch (const Error& e) {
    h.note = std::string("manifest unusable, no HU baseline: ") + e.what();
    return h;
  }
  for (size_t n = 0; n < m.rows.size(); ++n) {
    if (m.cell(n, "split") == "train") ++h.n_train;
    if (m.cell(n, "split") == split) ++h.n_eval, h.eval_ids.push_back(m.cell(n, "id"));
  }
  if (h.n_eval == 0) {
    h.note = "the manifest " + manifest + " has no usable rows (status ok, labelled) in split '" + split + "'";
    return h;
  }
  for (int64_t v : m.label)
    if (v >= K) {
      h.note = "the manifest " + manifest + " has label " + std::to_string(v) + ", outside the task's " +
               std::to_string(K) + " classes (" + task.names_csv() + "): no HU baseline (prepared for another task?)";
      return h;
    }
  // The fixed screening cut-offs flag osteoporosis: they apply when class 0 is the lowest
  // T-score band; the QCT categories only to the three WHO bands.
  const bool tscore_bands = task.from_tscores(), who = tscore_bands && K == 3;
  Scorer sc{m, split, b, h, task};
  const std::string ts = hu_text(kTotalSegmentatorHuThreshold);
  const std::string whole = "whole L1 mask (vertebra label, posterior elements and cortex included)";
  if (m.has("L1_body_median_hu")) {
    const std::string source = distinct(m, "L1_body_source"), margin = distinct(m, "roi_margin_mm");
    const std::string body = "L1 body (" + (source.empty() ? std::string("unknown source") : source) + ")";
    const std::string roi = "L1 trabecular ROI (body from " + (source.empty() ? std::string("?") : source) +
                            ", eroded " + (margin.empty() ? std::string("?") : margin) + " mm)";
    if (tscore_bands) {
      sc.fixed_rule({.name = "L1 body median HU < " + ts + " -> osteoporosis (TotalSegmentator spine report)",
                     .key = "totalsegmentator_body_median_hu", .feature = "L1_body_median_hu", .roi = body,
                     .thresholds = {kTotalSegmentatorHuThreshold}, .binary = true});
      for (const auto& [t, what] : {std::pair{kPickhardtSensitiveHu, "~90% sensitivity"},
                                    std::pair{kPickhardtSpecificHu, "~90% specificity"}})
        sc.fixed_rule({.name = "L1 trabecular mean HU <= " + hu_text(t) + " -> osteoporosis (Pickhardt 2013, " + what + ")",
                       .key = "pickhardt_" + hu_text(t) + "_roi_mean_hu", .feature = "L1_roi_mean_hu", .roi = roi,
                       .thresholds = {t}, .at_or_below = {true}, .binary = true});
    }
    if (who && (m.has("bmd_l1_l2") || m.has("L1_bmd"))) {
      // Mean of L1 and L2 as QCT reports it, where both were measured; else L1 alone.
      const bool pair = m.has("bmd_l1_l2") && m.has("L2_bmd");
      sc.fixed_rule({.name = "vBMD < " + hu_text(kQctOsteoporosisBelow) + " osteoporosis, <= " +
                             hu_text(kQctNormalAbove) + " osteopenia, else normal mg/cm^3 (ACR QCT)",
                     .key = "acr_qct_bmd", .feature = pair ? "bmd_l1_l2" : "L1_bmd",
                     .roi = (pair ? "mean of the L1 and L2 trabecular ROIs" : roi) +
                            std::string(", calibrated HU -> mg/cm^3"),
                     .thresholds = {kQctOsteoporosisBelow, kQctNormalAbove}, .at_or_below = {false, true}});
    }
    sc.fitted_rule("L1_roi_mean_hu", "L1 trabecular mean HU", roi);
    sc.fitted_rule("L1_body_median_hu", "L1 body median HU", body);
    if (m.has("median_hu")) sc.fitted_rule("median_hu", "whole-mask median HU", whole);
  } else {
    // A manifest from before the vertebral-body measurements: the whole mask is all there is.
    h.note = "the manifest has no vertebral-body columns (run mc_prep with data.hu.enabled): the rules use the whole L1 mask";
    if (tscore_bands)
      sc.fixed_rule({.name = "whole-mask median HU < " + ts + " -> osteoporosis (TotalSegmentator's cut-off, meant for the body)",
                     .key = "totalsegmentator_median_hu", .feature = "median_hu", .roi = whole,
                     .thresholds = {kTotalSegmentatorHuThreshold}, .binary = true});
    sc.fitted_rule("mean_hu", "whole-mask mean HU", whole);
    sc.fitted_rule("median_hu", "whole-mask median HU", whole);
  }
  h.available = !h.rules.empty();
  if (!h.available && h.note.empty()) h.note = "no HU measurements in " + manifest;
  return h;
}

}  // namespace mc::eval
