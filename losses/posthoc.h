// Post-hoc logit adjustment (Menon et al.; the paper's Table VI): at evaluation the logits of a
// model trained on long-tailed data are shifted by the log prior,
//     scores = logits - tau2 * log(prior),
// and metrics are computed on softmax(scores). tau2 = 0 is the unadjusted model. tau2 is
// independent of the training loss's tau1.
#pragma once
#include <vector>

#include "engine/metrics.h"  // what callers score the probabilities with
#include "engine/tensor.h"

namespace mc::losses {

// Class counts or frequencies -> frequencies summing to 1. Every entry must be > 0.
std::vector<double> normalize_prior(const std::vector<double>& counts_or_prior);

// softmax(logits - tau2 * log(prior)) as f64 [N, K] on logits' device (f32/f64 logits).
// prior: counts or frequencies; may be empty only when tau2 == 0.
Tensor posthoc_probabilities(const Tensor& logits, const std::vector<double>& prior, double tau2);

// The tau2 sweep over these probabilities, with every metric: eval/sweep.h.

}  // namespace mc::losses
