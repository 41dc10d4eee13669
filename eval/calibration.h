// Are the probabilities honest? Calibration measures (reliability diagram, expected calibration
// error with a bootstrap interval, Brier score, NLL) and temperature scaling (Guo et al. 2017).
//
// Composition order, the one used by mc_train, mc_eval and mc_predict:
//   scores        = logits - tau2 * log(prior)     post-hoc logit adjustment first (losses/posthoc.h)
//   probabilities = softmax(scores / T)            then one temperature T > 0
// T is fitted on the validation split by NLL *on the adjusted scores at the run's tau2*, so it
// calibrates the probabilities the run actually reports. Dividing by T never changes the arg-max,
// so accuracy and the confusion matrix are untouched by T (one-vs-rest AUCs can move slightly:
// p_k depends on the other scores too); tau2 changes them. Asking for another tau2 than the one T was fitted at still applies T (callers note it).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/metrics.h"

namespace mc::eval {

// One equal-width bin of a reliability diagram over (lo, hi] (the first bin includes 0).
struct ReliabilityBin {
  double lo = 0, hi = 0;
  int64_t count = 0;
  double confidence = 0;  // mean predicted probability in the bin (NaN when empty)
  double frequency = 0;   // observed fraction correct / positive in the bin (NaN when empty)
};
struct ReliabilityCurve {
  std::string name;  // "top label" or a class name
  std::vector<ReliabilityBin> bins;
  double ece = 0;    // sum_b count_b / N * |frequency_b - confidence_b|
};

// probs: N x K row-major probabilities, labels: class indices (all in 0..K-1).
// Top-label curve: confidence = max_k p_k, "correct" = arg-max equals the label (ties: lowest k).
ReliabilityCurve top_label_reliability(const std::vector<double>& probs, const std::vector<int64_t>& labels,
                                       int64_t K, int64_t bins);
// One-vs-rest curve of class k: p_k against 1[label == k], every row counted.
ReliabilityCurve class_reliability(const std::vector<double>& probs, const std::vector<int64_t>& labels,
                                   int64_t K, int64_t k, int64_t bins, const std::string& name);
// The top-label ECE (the usual "ECE": Guo et al., equal-width bins).
double expected_calibration_error(const std::vector<double>& probs, const std::vector<int64_t>& labels,
                                  int64_t K, int64_t bins);
// Multi-class Brier score: mean over rows of sum_k (p_k - 1[label == k])^2, in [0, 2]
// (Brier's original definition; sklearn's binary brier_score_loss is half of it for K = 2).
double brier_score(const std::vector<double>& probs, const std::vector<int64_t>& labels, int64_t K);
// Mean negative log-likelihood -log p_label (p clamped at 1e-300 so a zero is large, not inf).
double mean_nll(const std::vector<double>& probs, const std::vector<int64_t>& labels, int64_t K);

struct CalibrationResult {
  int64_t bins = 15;
  ReliabilityCurve top;                  // top-label reliability, with the ECE
  std::vector<ReliabilityCurve> classes; // one-vs-rest, per class
  double brier = 0, nll = 0;
  std::optional<Interval> ece_ci, brier_ci;  // percentile bootstrap, when resamples > 0
};
// Every measure above; the intervals resample rows with the engine's bootstrap draws
// (engine/metrics.h: index floor(u N), u = philox(b N + i, seed)), so they use the same
// resamples as the report's other intervals.
CalibrationResult calibration(const std::vector<double>& probs, const std::vector<int64_t>& labels,
                              const std::vector<std::string>& class_names, int64_t bins,
                              const BootstrapOptions& bootstrap);

// ---- temperature scaling ----
struct TemperatureFit {
  double temperature = 1;
  double nll_before = 0, nll_after = 0;  // mean NLL at T = 1 and at the fitted T
  bool at_bound = false;                 // the optimum lies at the search bound (see below)
};
// T minimising the mean NLL of softmax(scores / T) over the rows: scores N x K (already
// adjusted by tau2), labels in 0..K-1. NLL is convex in 1/T, so a golden-section search over
// 1/T in [1/kMaxT, 1/kMinT] finds the global optimum; on separable data the optimum is at
// T -> 0 and the fit stops at kMinT (at_bound). Needs N >= 1.
inline constexpr double kMinTemperature = 0.05, kMaxTemperature = 20;
TemperatureFit fit_temperature(const std::vector<double>& scores, const std::vector<int64_t>& labels, int64_t K);
// softmax(scores / T) row by row, in float64.
std::vector<double> softmax_rows(const std::vector<double>& scores, int64_t K, double temperature = 1);
// The documented composition: softmax((logits - tau2 log prior) / T). prior: counts or
// frequencies, may be empty only when tau2 == 0.
std::vector<double> calibrated_probabilities(const std::vector<double>& logits, int64_t K,
                                             const std::vector<double>& prior, double tau2, double temperature);

}  // namespace mc::eval
