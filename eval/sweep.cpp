#include "eval/sweep.h"

#include "losses/posthoc.h"

namespace mc::eval {

EvalRow eval_row(const Tensor& labels, const Tensor& probs, double tau2, const BootstrapOptions& bootstrap,
                 bool roc) {
  EvalRow r{tau2, classification_metrics(labels, probs), std::nullopt, {}};
  if (bootstrap.resamples > 0) r.ci = bootstrap_ci(labels, probs, bootstrap);
  if (roc)
    for (int64_t k = 0; k < probs.size(1); ++k) r.roc.push_back(roc_curve(labels, probs, k));
  return r;
}

std::vector<EvalRow> tau2_sweep(const Tensor& labels, const Tensor& logits, const std::vector<double>& prior,
                                const std::vector<double>& taus, const BootstrapOptions& bootstrap, bool roc) {
  MC_CHECK(!taus.empty(), "tau2 sweep: no tau2 values");
  std::vector<EvalRow> rows;
  for (double tau : taus) rows.push_back(eval_row(labels, losses::posthoc_probabilities(logits, prior, tau), tau, bootstrap, roc));
  return rows;
}

std::vector<double> paper_tau2_grid() {
  std::vector<double> t;
  for (int i = 10; i >= 1; --i) t.push_back(i / 10.0);
  return t;
}

}  // namespace mc::eval
