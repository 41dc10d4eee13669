// The HU screening baseline a report puts beside the model: threshold rules on the L1's
// Hounsfield units from mc_prep's manifest (columns id, label, split, mean_hu, median_hu,
// status), fitted on the train split only and scored on the evaluated split.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "engine/metrics.h"
#include "io/task.h"

namespace mc {

// ---- threshold rules on one feature ("median HU < 90.25") ----
// Classes follow the feature upwards: x < t[0] -> 0, t[0] <= x < t[1] -> 1, ...,
// x >= t[K-2] -> K-1. Thresholds are non-decreasing; +-infinity leaves a class empty.
int64_t threshold_class(double x, const std::vector<double>& thresholds);
// The K-1 thresholds that maximise balanced accuracy on (x, labels), over cut points at the
// midpoints between consecutive distinct values (and +-infinity). Exact, by dynamic programming
// over the sorted values; ties go to the lowest cut points. Labels in [0, K); NaN x are skipped.
std::vector<double> fit_thresholds(const std::vector<double>& x, const std::vector<int64_t>& labels,
                                   int64_t K);

struct HuRule {
  std::string name;      // for people: "median HU < 90.25 -> osteoporosis (TotalSegmentator)"
  std::string key;       // for JSON: "totalsegmentator_median_hu"
  std::string feature;   // "median_hu" or "mean_hu"
  std::vector<double> thresholds;  // threshold_class() cut points
  bool binary = false;   // osteoporosis vs rest only (no osteopenia / normal split)
  ClassificationMetrics metrics;   // 3 classes, or 2 (osteoporosis, rest) when binary
  std::optional<BootstrapResult> ci;
  // Threshold-free: AUC of -feature for osteoporosis vs rest, with its interval.
  MetricValue auc_osteoporosis;
  Interval auc_osteoporosis_ci;
};

struct HuBaseline {
  std::string manifest;
  bool available = false;
  std::string note;  // why it is missing, or caveats
  int64_t n_train = 0, n_eval = 0;
  std::vector<std::string> eval_ids;
  std::vector<HuRule> rules;
};

// The spine report's cut-off: median HU of the vertebra below it flags osteoporosis
// (TotalSegmentator's totalseg_spine_report.py, non-contrast CT).
inline constexpr double kTotalSegmentatorHuThreshold = 90.25;

// Never throws for a missing or unusable manifest: `available` is false and `note` says why.
// Rules for `task`'s classes (low HU -> class 0, the lowest T-score band); the spine report's
// fixed cut-off only when the task's classes come from T-scores.
HuBaseline hu_baseline(const std::string& manifest, const std::string& split,
                       const BootstrapOptions& bootstrap, const Task& task = Task::who());

// "90.25", "118.3", "57", "-inf": thresholds as the report prints them.
std::string hu_text(double t);

}  // namespace mc
