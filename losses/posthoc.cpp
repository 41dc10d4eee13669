#include "losses/posthoc.h"

#include <cmath>

#include "engine/metrics.h"

namespace mc::losses {

std::vector<double> normalize_prior(const std::vector<double>& v) {
  MC_CHECK(v.size() >= 2, "prior: need one value per class (at least 2), got ", v.size());
  double total = 0;
  for (size_t k = 0; k < v.size(); ++k) {
    MC_CHECK(std::isfinite(v[k]) && v[k] > 0, "prior: class ", k, " has ", v[k],
             "; every class needs a positive count or frequency (log(prior) must exist)");
    total += v[k];
  }
  std::vector<double> p;
  for (double x : v) p.push_back(x / total);
  return p;
}

Tensor posthoc_probabilities(const Tensor& logits, const std::vector<double>& prior, double tau2) {
  MC_CHECK(std::isfinite(tau2), "post-hoc adjustment: tau2 must be finite, got ", tau2);
  std::vector<double> offset;
  if (tau2 != 0) {
    MC_CHECK(!prior.empty(), "post-hoc adjustment with tau2 = ", tau2,
             " needs the training prior (class counts or frequencies)");
    const auto p = normalize_prior(prior);
    MC_CHECK(logits.dim() == 2 && logits.size(1) == int64_t(p.size()), "post-hoc adjustment: ",
             p.size(), " prior values for logits ", logits.str());
    for (double pk : p) offset.push_back(-tau2 * std::log(pk));
  }
  return softmax_with_offset(logits, offset, true);
}

}  // namespace mc::losses
