// What screening studies report for a binary task: ROC AUC and the precision-recall curve with
// its area (average precision), and sensitivity, specificity, PPV and NPV at operating points
// on the positive class's probability: the default rule (p >= 0.5), the Youden-optimal
// threshold, and a threshold chosen on another split (validation) for a target sensitivity
// and applied unchanged here. Every number comes with a percentile bootstrap interval
// (subjects resampled; the thresholds stay fixed, as they would in use).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/metrics.h"
#include "eval/evaluation.h"

namespace mc::eval {

struct OperatingPoint {
  std::string key;   // "default", "youden", "validation"
  std::string name;  // for people: "p >= 0.5 (default rule)"
  double threshold = 0.5;  // positive when p >= threshold
  int64_t tp = 0, fp = 0, tn = 0, fn = 0;
  MetricValue sensitivity, specificity, ppv, npv;
  Interval sensitivity_ci, specificity_ci, ppv_ci, npv_ci;
};

// sklearn.metrics.precision_recall_curve's points, by decreasing threshold, up to the first
// threshold of full recall (without its final (recall 0, precision 1) point).
struct PrCurve {
  std::vector<double> precision, recall, thresholds;
  bool defined = false;  // false without positives
};

struct ScreeningReport {
  int64_t positive = 1;
  std::string positive_name, positive_reason;  // reason: ScreeningOptions's
  int64_t n = 0, n_positive = 0;
  MetricValue auc, average_precision;
  Interval auc_ci, average_precision_ci;
  PrCurve pr;
  std::vector<OperatingPoint> points;
  std::vector<std::string> notes;
};

// labels: class indices (0/1); p: probability (or any score) of class `positive` per row.
PrCurve pr_curve(const std::vector<int64_t>& labels, const std::vector<double>& p, int64_t positive);
// sklearn's average_precision_score: sum over thresholds of (R_n - R_{n-1}) P_n.
MetricValue average_precision(const std::vector<int64_t>& labels, const std::vector<double>& p, int64_t positive);
// The highest threshold t (a score of the data) with sensitivity(p >= t) >= target; nullopt
// without positives.
std::optional<double> threshold_for_sensitivity(const std::vector<int64_t>& labels, const std::vector<double>& p,
                                                int64_t positive, double target);
// The threshold maximising sensitivity + specificity - 1 (the highest among ties); nullopt
// without positives or negatives.
std::optional<double> youden_threshold(const std::vector<int64_t>& labels, const std::vector<double>& p,
                                       int64_t positive);
OperatingPoint operating_point(const std::vector<int64_t>& labels, const std::vector<double>& p, int64_t positive,
                               double threshold);

struct ScreeningOptions {
  int64_t positive = 1;
  std::string positive_name = "1";
  // Chosen elsewhere (validation) for target_sensitivity; nullopt: that point is left out and
  // `validation_note` says why.
  std::optional<double> validation_threshold;
  double target_sensitivity = 0.9;
  std::string validation_source;  // "val split (n = 36)"
  std::string validation_note;
  // Why this class is the positive one, for the report ("" = the task says so: no sentence).
  std::string positive_reason;
  BootstrapOptions bootstrap;
};

// p(positive) per row of a binary table, as evaluate() scores it: softmax(logits - tau2 log
// prior), probabilities as given when tau2 = 0. Every label must be a class index.
// Column `positive` of a binary evaluation row's [N, 2] probabilities.
std::vector<double> positive_column(const EvalRow& row, int64_t positive);
std::vector<double> positive_probabilities(const PredictionTable& t, double tau2, const std::vector<double>& prior,
                                           int64_t positive);
// The operating point chosen on validation: the highest threshold on p(positive) of `val`
// (scored with the same tau2 and prior as the evaluated table) reaching o.target_sensitivity
// there. Sets o.validation_threshold and o.validation_source ("<what> (n = N)"), or
// o.validation_note when `val` has no positive subject. The one rule behind the checkpoint
// report's threshold and mc_eval --val-predictions.
void choose_validation_threshold(const PredictionTable& val, double tau2, const std::vector<double>& prior,
                                 const std::string& what, ScreeningOptions& o);

// Saved predictions (mc_eval --predictions): a binary table knows no task, so its positive class
// is `positive` (a class name or index of the table) or, when "", the second class (score column
// 2: "mass" of normal,mass), and the report says which. With `val` (a validation table of the same
// classes, mc_eval --val-predictions) the threshold is chosen on it as above, with the table's
// tau2 (o.tau2[0]) and prior; without, the note says that no validation threshold was available.
// Errors name the files: not binary, other classes in `val`, an unknown `positive`.
ScreeningOptions saved_screening_options(const PredictionTable& p, const EvalOptions& o, const PredictionTable* val,
                                         const std::string& positive, double target_sensitivity);
ScreeningReport screening_report(const std::vector<int64_t>& labels, const std::vector<double>& p,
                                 const ScreeningOptions& o);

}  // namespace mc::eval
