// The tau2 sweep (the paper's Table VI): every metric, with bootstrap intervals when asked, after
// post-hoc logit adjustment (losses/posthoc.h) with each tau2. tau2 = 0 is the unadjusted model.
#pragma once
#include <optional>
#include <vector>

#include "engine/metrics.h"
#include "engine/tensor.h"

namespace mc::eval {

struct EvalRow {
  double tau2 = 0;
  ClassificationMetrics metrics;
  std::optional<BootstrapResult> ci;  // when bootstrap resamples > 0
  std::vector<RocCurve> roc;          // per class, when asked for
  Tensor probabilities;               // [N, K] f64: what the metrics were computed on (evaluate() sets it)
};

// One row from probabilities [N, K] (f64) and labels i64 [N], on their device.
EvalRow eval_row(const Tensor& labels, const Tensor& probs, double tau2, const BootstrapOptions& bootstrap,
                 bool roc);

// A row per tau2 on the logits' device: probabilities softmax(logits - tau2 log prior). Every
// row resamples with the same seed, so rows differ only by tau2. prior: counts or frequencies.
std::vector<EvalRow> tau2_sweep(const Tensor& labels, const Tensor& logits, const std::vector<double>& prior,
                                const std::vector<double>& taus, const BootstrapOptions& bootstrap,
                                bool roc = false);

// The paper's grid: tau2 from 1.0 down to 0.1 in steps of 0.1.
std::vector<double> paper_tau2_grid();

}  // namespace mc::eval
