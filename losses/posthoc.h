// Post-hoc logit adjustment (Menon et al.; the paper's Table VI): at evaluation the logits of a
// model trained on long-tailed data are shifted by the log prior,
//     scores = logits - tau2 * log(prior),
// and metrics are computed on softmax(scores). tau2 = 0 is the unadjusted model. tau2 is
// independent of the training loss's tau1.
#pragma once
#include <optional>
#include <vector>

#include "engine/metrics.h"
#include "engine/tensor.h"

namespace mc {

// Class counts or frequencies -> frequencies summing to 1. Every entry must be > 0.
std::vector<double> normalize_prior(const std::vector<double>& counts_or_prior);

// softmax(logits - tau2 * log(prior)) as f64 [N, K] on logits' device (f32/f64 logits).
// prior: counts or frequencies; may be empty only when tau2 == 0.
Tensor posthoc_probabilities(const Tensor& logits, const std::vector<double>& prior, double tau2);

struct SweepRow {
  double tau2 = 0;
  ClassificationMetrics metrics;
  std::optional<BootstrapResult> ci;  // when bootstrap resamples > 0
};
// All metrics (and bootstrap intervals when `bootstrap.resamples` > 0) for each tau2, computed
// on the logits' device. Every row resamples with the same seed, so rows differ only by tau2.
std::vector<SweepRow> tau2_sweep(const Tensor& labels, const Tensor& logits,
                                 const std::vector<double>& prior, const std::vector<double>& taus,
                                 const BootstrapOptions& bootstrap);

// The paper's grid: tau2 from 1.0 down to 0.1 in steps of 0.1.
std::vector<double> paper_tau2_grid();

}  // namespace mc
