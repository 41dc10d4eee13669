#include "eval/hu_baseline.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <tuple>

#include "io/csv.h"
#include "io/labels.h"
#include "io/text.h"

namespace mc {
namespace fs = std::filesystem;
namespace {

struct ManifestRow {
  std::string id, split;
  int64_t label = -1;
  double mean_hu = 0, median_hu = 0;
};

// Rows usable for the baseline: status ok (when the column exists), labelled, with both HU.
std::vector<ManifestRow> read_manifest(const std::string& path) {
  const CsvTable t = read_csv(path, {.what = "manifest"});
  MC_CHECK(!t.header.empty(), path, ": empty manifest");
  auto col = [&](const std::string& name) {
    const int c = t.column(name);
    MC_CHECK(c >= 0 || name == "status", path, ": no column '", name, "'");
    return c;
  };
  const int id = col("id"), label = col("label"), split = col("split"), mean = col("mean_hu"),
            median = col("median_hu"), status = col("status");
  std::vector<ManifestRow> rows;
  for (const CsvRow& row : t.rows) {
    const auto& f = row.cells;
    if (status >= 0 && f[size_t(status)] != "ok") continue;
    // An empty cell: that subject has no statistics.
    const auto y = parse_int(f[size_t(label)]);
    const auto a = parse_double(f[size_t(mean)]), m = parse_double(f[size_t(median)]);
    if (!y || !a || !m || *y < 0 || !std::isfinite(*a) || !std::isfinite(*m)) continue;
    rows.push_back({f[size_t(id)], f[size_t(split)], *y, *a, *m});
  }
  return rows;
}

HuRule score_rule(HuRule r, const std::vector<double>& x, const std::vector<int64_t>& y,
                  const BootstrapOptions& b, int64_t num_classes) {
  const int64_t N = int64_t(x.size()), K = r.binary ? 2 : num_classes;
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

}  // namespace

std::string hu_text(double t) {
  if (std::isinf(t)) return t < 0 ? "-inf" : "+inf";
  std::string s = fixed(t, 2);
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

int64_t threshold_class(double x, const std::vector<double>& thresholds) {
  int64_t k = 0;
  while (size_t(k) < thresholds.size() && x >= thresholds[size_t(k)]) ++k;
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
                       const Task& task) {
  const int64_t K = task.num_classes();
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
  for (int64_t v : y)
    if (v >= K) {
      h.note = "the manifest " + manifest + " has label " + std::to_string(v) + ", outside the task's " +
               std::to_string(K) + " classes (" + task.names_csv() + "): no HU baseline (prepared for another task?)";
      return h;
    }
  h.available = true;
  // The spine report's cut-off flags osteoporosis: it applies when class 0 is the lowest T-score band.
  if (task.from_tscores()) h.rules.push_back(score_rule({.name = "median HU < " + hu_text(kTotalSegmentatorHuThreshold) +
                                         " -> osteoporosis (TotalSegmentator spine report)",
                                 .key = "totalsegmentator_median_hu",
                                 .feature = "median_hu",
                                 .thresholds = {kTotalSegmentatorHuThreshold},
                                 .binary = true},
                                median, y, b, K));
  if (train_y.empty()) {
    h.note = "no train rows in the manifest: no thresholds fitted";
    return h;
  }
  for (const auto& [feature, tx, ex] : {std::tuple{"mean_hu", &train_mean, &mean}, std::tuple{"median_hu", &train_median, &median}}) {
    const std::vector<double> t = fit_thresholds(*tx, train_y, K);
    const std::string what = std::string(feature) == "mean_hu" ? "mean HU" : "median HU";
    std::string name = what;
    for (int64_t k = 0; k + 1 < K; ++k) name += (k ? ", < " : " < ") + hu_text(t[size_t(k)]) + " " + task.name(k);
    name += ", else " + task.name(K - 1) + " (fitted on train)";
    h.rules.push_back(score_rule({.name = name,
                                   .key = std::string("fitted_") + feature,
                                   .feature = feature,
                                   .thresholds = t,
                                   .binary = false},
                                  *ex, y, b, K));
  }
  return h;
}

}  // namespace mc
