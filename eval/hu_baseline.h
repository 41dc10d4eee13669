// The HU screening baselines a report puts beside the model: threshold rules on the L1's
// Hounsfield units from mc_prep's manifest (io/prep.h, io/prep_hu.h), fixed rules from the
// literature and rules fitted on the train split only, scored on the evaluated split.
//
// With the per-vertebra columns (mc_prep with data.hu on):
//   TotalSegmentator spine report: L1 body median HU < 90.25 -> osteoporosis;
//   Pickhardt et al. 2013: L1 trabecular-ROI mean HU <= 160 (~90% sensitivity) and <= 110
//     (~90% specificity) -> osteoporosis;
//   fitted on train: three classes by two thresholds on the L1 trabecular-ROI mean HU, on the
//     L1 body median HU, and on the whole L1 mask's median HU;
//   with a scanner calibration: ACR QCT categories of volumetric BMD (mean of L1 and L2, else
//     L1): < 80 mg/cm^3 osteoporosis, 80-120 osteopenia, > 120 normal.
// From an older manifest (whole L1 mask only): 90.25 HU on its median and the fitted rules
// on its mean and median, each named "whole L1 mask".
// Each rule names the ROI it used, and scores only the subjects with that measurement.
// Classes are indices (0 osteoporosis, 1 osteopenia, 2 normal: io/labels.h's WHO order).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "engine/metrics.h"
#include "io/task.h"

namespace mc::eval {

// ---- threshold rules on one feature ("median HU < 90.25") ----
// Classes follow the feature upwards: x < t[0] -> 0, t[0] <= x < t[1] -> 1, ...,
// x >= t[K-2] -> K-1. Thresholds are non-decreasing; +-infinity leaves a class empty.
// at_or_below[i] (when given) makes threshold i inclusive: x <= t[i] stays below it.
int64_t threshold_class(double x, const std::vector<double>& thresholds,
                        const std::vector<bool>& at_or_below = {});
// The K-1 thresholds that maximise balanced accuracy on (x, labels), over cut points at the
// midpoints between consecutive distinct values (and +-infinity). Exact, by dynamic programming
// over the sorted values; ties go to the lowest cut points. Labels in [0, K); NaN x are skipped.
std::vector<double> fit_thresholds(const std::vector<double>& x, const std::vector<int64_t>& labels,
                                   int64_t K);

struct HuRule {
  std::string name;      // for people: "median HU < 90.25 -> osteoporosis (TotalSegmentator)"
  std::string key;       // for JSON: "totalsegmentator_median_hu"
  std::string feature;   // the manifest column: "L1_body_median_hu", "median_hu", "bmd_l1_l2"
  std::string roi;       // what was measured: "L1 body (body map)", "whole L1 mask", ...
  std::vector<double> thresholds;  // threshold_class() cut points
  std::vector<bool> at_or_below;   // threshold_class()'s inclusive flags
  bool binary = false;   // osteoporosis vs rest only (no osteopenia / normal split)
  int64_t n_train = 0;   // train rows the thresholds were fitted on (0: fixed rule)
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
// Pickhardt et al., Ann Intern Med 2013: L1 trabecular attenuation <= 160 HU ~90% sensitive,
// <= 110 HU ~90% specific for osteoporosis.
inline constexpr double kPickhardtSensitiveHu = 160, kPickhardtSpecificHu = 110;
// ACR QCT practice parameter, mg/cm^3: < 80 osteoporosis, 80-120 osteopenia, > 120 normal.
inline constexpr double kQctOsteoporosisBelow = 80, kQctNormalAbove = 120;

// Never throws for a missing or unusable manifest: `available` is false and `note` says why.
// Rules for `task`'s classes (low HU -> class 0, the lowest T-score band); the spine report's
// fixed cut-off only when the task's classes come from T-scores.
HuBaseline hu_baseline(const std::string& manifest, const std::string& split,
                       const BootstrapOptions& bootstrap, const io::Task& task = io::Task::who());

// "90.25", "118.3", "57", "-inf": thresholds as the report prints them.
std::string hu_text(double t);

}  // namespace mc::eval
