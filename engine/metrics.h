// Classification metrics as sklearn computes them, with bootstrap confidence intervals and ROC
// curves. Inputs: labels (int64 in [0, K)) and scores [N, K] (any real scores; the class of a
// row is the first argmax, as numpy.argmax). Tensors on CUDA run on the GPU (kernels/metrics.cu),
// tensors on the CPU and host vectors on the CPU twins; both give identical numbers.
//
// Conventions (sklearn 1.2 called with labels=range(K); checked against it in the tests):
//  * sensitivity = recall = TP / (TP + FN); specificity = TN / (TN + FP).
//  * zero_division = 0: a per-class recall of a class absent from the labels, a specificity
//    with no negatives and an F1 of a class neither present nor predicted are 0 (sklearn's
//    default "warn" gives the same numbers) and are flagged undefined. Macro means average all
//    K classes including those zeros, exactly as recall_score / f1_score(average='macro').
//  * balanced accuracy averages recall over the classes present in the labels only
//    (balanced_accuracy_score), so it differs from macro recall when a class is absent.
//  * micro sensitivity = accuracy; micro specificity = sum TN / sum (TN + FP).
//  * F1 = 2PR / (P + R) per class; weighted F1 weights by support (f1_score(average='weighted')).
//  * ROC AUC one-vs-rest per class: Mann-Whitney with ties counted one half, equal to
//    roc_auc_score(y == k, scores[:, k]). A class absent from the labels (or with no negatives)
//    has an undefined AUC: flagged, excluded from the macro mean, and named in `notes` (sklearn
//    raises instead). The macro mean equals roc_auc_score(multi_class='ovr') when all are
//    defined; unlike sklearn we do not require the rows to be probabilities.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace mc {

struct MetricValue {
  double value = 0;
  bool defined = true;
};

struct ClassificationMetrics {
  int64_t num_samples = 0, num_classes = 0;
  std::vector<int64_t> confusion;  // K x K, row = true class, column = predicted class
  std::vector<int64_t> support;    // true samples per class
  MetricValue accuracy, balanced_accuracy;
  MetricValue sensitivity_macro, sensitivity_micro, specificity_macro, specificity_micro;
  MetricValue f1_macro, f1_weighted, auc_macro;
  std::vector<MetricValue> sensitivity, specificity, f1, auc;  // per class
  std::vector<std::string> notes;  // why something is undefined
  // Every scalar by name, in a fixed order: "accuracy", "balanced_accuracy", ..., "auc_macro",
  // then "sensitivity[0]", ..., "auc[K-1]".
  std::vector<std::pair<std::string, MetricValue>> named() const;
};

// Integer sufficient statistics of one (re)sample: everything above derives from them.
struct MetricCounts {
  int64_t K = 0;
  std::vector<int64_t> confusion;      // K x K
  std::vector<int64_t> pos, neg, u2;   // per class: positives, negatives, 2 * Mann-Whitney U
};
ClassificationMetrics metrics_from_counts(const MetricCounts& c);

ClassificationMetrics classification_metrics(const Tensor& labels, const Tensor& scores);
ClassificationMetrics classification_metrics(const std::vector<int64_t>& labels,
                                             const std::vector<double>& scores, int64_t K);

// sklearn.metrics.roc_curve(y == k, scores[:, k], drop_intermediate=False) of sklearn 1.2: the
// first threshold is max score + 1 (newer sklearn writes inf there). With no positives (or no
// negatives) tpr (fpr) is NaN as in sklearn and `defined` is false.
struct RocCurve {
  std::vector<double> fpr, tpr, thresholds;
  bool defined = true;
};
RocCurve roc_curve(const Tensor& labels, const Tensor& scores, int64_t k);
RocCurve roc_curve(const std::vector<int64_t>& labels, const std::vector<double>& scores,
                   int64_t K, int64_t k);

// Percentile bootstrap: `resamples` resamples of N rows drawn with replacement by Philox from
// `seed` (kernels/metrics.h: identical draws on CPU and GPU); each metric is recomputed on each
// resample and its interval is the (1-level)/2 and (1+level)/2 quantiles (linear interpolation
// between order statistics, numpy.percentile's default) over the resamples where it is defined.
// The most resamples bootstrap_ci takes (mc_eval --bootstrap, eval.bootstrap): 1e6 already
// pins a 95% percentile to well under 0.1 points; more is a typo that would run for minutes and
// exhaust memory (every resample's metrics are kept for the percentiles).
inline constexpr int64_t kMaxBootstrapResamples = 1000000;
struct BootstrapOptions {
  int64_t resamples = 1000;
  uint64_t seed = 0;
  double level = 0.95;
};
struct Interval {
  double lo = 0, hi = 0;
  int64_t defined_in = 0;  // resamples where the metric was defined
  bool defined = false;    // false when it was defined in none
};
struct BootstrapResult {
  BootstrapOptions options;
  std::vector<std::string> names;  // as ClassificationMetrics::named()
  std::vector<Interval> intervals;
  const Interval& at(const std::string& name) const;  // throws for an unknown name
};
// Each resample's metrics, in resample order (the tests recompute them from explicit draws).
std::vector<ClassificationMetrics> bootstrap_metrics(const Tensor& labels, const Tensor& scores,
                                                     const BootstrapOptions& o);
BootstrapResult bootstrap_ci(const Tensor& labels, const Tensor& scores, const BootstrapOptions& o);
// Quantile q in [0, 1] of the values by linear interpolation (sorts a copy).
double quantile_linear(std::vector<double> values, double q);

// probabilities (or shifted scores, softmax = false) = softmax(x + offset) in float64, on x's
// device; x is [N, K] f32/f64, offset has K values. Post-hoc logit adjustment uses this.
Tensor softmax_with_offset(const Tensor& x, const std::vector<double>& offset, bool softmax = true);

}  // namespace mc
