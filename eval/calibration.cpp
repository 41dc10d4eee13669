#include "eval/calibration.h"

#include <algorithm>
#include <cmath>

#include "engine/check.h"
#include "kernels/philox.h"

namespace mc::eval {
namespace {

void check_table(const std::vector<double>& probs, const std::vector<int64_t>& labels, int64_t K) {
  MC_CHECK(K >= 2, "calibration: need at least 2 classes, got ", K);
  MC_CHECK(int64_t(probs.size()) == int64_t(labels.size()) * K, "calibration: ", probs.size(),
           " scores for ", labels.size(), " rows of ", K, " classes");
  for (int64_t y : labels) MC_CHECK(y >= 0 && y < K, "calibration: label ", y, " is not a class index 0..", K - 1);
}

// Bin of p over (lo, hi]: 0 and anything at or below 1/B go to the first bin.
int64_t bin_of(double p, int64_t B) {
  return std::clamp<int64_t>(int64_t(std::ceil(p * double(B))) - 1, 0, B - 1);
}

// Reliability from (confidence, outcome) pairs with per-row weights (bootstrap multiplicities).
ReliabilityCurve curve(const std::vector<double>& conf, const std::vector<double>& hit,
                       const std::vector<double>& weight, int64_t B, const std::string& name) {
  MC_CHECK(B >= 1, "calibration: bins must be >= 1, got ", B);
  ReliabilityCurve c;
  c.name = name;
  std::vector<double> w(size_t(B), 0.0), sc(size_t(B), 0.0), sh(size_t(B), 0.0);
  double total = 0;
  for (size_t i = 0; i < conf.size(); ++i) {
    const double wi = weight.empty() ? 1.0 : weight[i];
    if (wi == 0) continue;
    const size_t b = size_t(bin_of(conf[i], B));
    w[b] += wi;
    sc[b] += wi * conf[i];
    sh[b] += wi * hit[i];
    total += wi;
  }
  for (int64_t b = 0; b < B; ++b) {
    ReliabilityBin r;
    r.lo = double(b) / double(B);
    r.hi = double(b + 1) / double(B);
    r.count = int64_t(std::llround(w[size_t(b)]));
    r.confidence = w[size_t(b)] > 0 ? sc[size_t(b)] / w[size_t(b)] : NAN;
    r.frequency = w[size_t(b)] > 0 ? sh[size_t(b)] / w[size_t(b)] : NAN;
    if (w[size_t(b)] > 0) c.ece += w[size_t(b)] / total * std::abs(r.frequency - r.confidence);
    c.bins.push_back(r);
  }
  return c;
}

int64_t argmax_row(const double* p, int64_t K) {
  int64_t best = 0;
  for (int64_t k = 1; k < K; ++k)
    if (p[k] > p[best]) best = k;
  return best;
}

void top_pairs(const std::vector<double>& probs, const std::vector<int64_t>& labels, int64_t K,
               std::vector<double>& conf, std::vector<double>& hit) {
  conf.resize(labels.size());
  hit.resize(labels.size());
  for (size_t i = 0; i < labels.size(); ++i) {
    const double* p = probs.data() + i * size_t(K);
    const int64_t a = argmax_row(p, K);
    conf[i] = p[a];
    hit[i] = a == labels[i] ? 1.0 : 0.0;
  }
}

double weighted_brier(const std::vector<double>& probs, const std::vector<int64_t>& labels, int64_t K,
                      const std::vector<double>& weight) {
  double s = 0, total = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    const double wi = weight.empty() ? 1.0 : weight[i];
    double r = 0;
    for (int64_t k = 0; k < K; ++k) {
      const double d = probs[i * size_t(K) + size_t(k)] - (labels[i] == k ? 1.0 : 0.0);
      r += d * d;
    }
    s += wi * r;
    total += wi;
  }
  return s / total;
}

Interval percentile(std::vector<double> v, const BootstrapOptions& o) {
  Interval iv;
  iv.defined_in = int64_t(v.size());
  iv.defined = !v.empty();
  if (!iv.defined) return iv;
  iv.lo = quantile_linear(v, (1 - o.level) / 2);
  iv.hi = quantile_linear(std::move(v), (1 + o.level) / 2);
  return iv;
}

}  // namespace

ReliabilityCurve top_label_reliability(const std::vector<double>& probs, const std::vector<int64_t>& labels,
                                       int64_t K, int64_t bins) {
  check_table(probs, labels, K);
  std::vector<double> conf, hit;
  top_pairs(probs, labels, K, conf, hit);
  return curve(conf, hit, {}, bins, "top label");
}

ReliabilityCurve class_reliability(const std::vector<double>& probs, const std::vector<int64_t>& labels,
                                   int64_t K, int64_t k, int64_t bins, const std::string& name) {
  check_table(probs, labels, K);
  MC_CHECK(k >= 0 && k < K, "calibration: class ", k, " out of 0..", K - 1);
  std::vector<double> conf(labels.size()), hit(labels.size());
  for (size_t i = 0; i < labels.size(); ++i) {
    conf[i] = probs[i * size_t(K) + size_t(k)];
    hit[i] = labels[i] == k ? 1.0 : 0.0;
  }
  return curve(conf, hit, {}, bins, name);
}

double expected_calibration_error(const std::vector<double>& probs, const std::vector<int64_t>& labels,
                                  int64_t K, int64_t bins) {
  return top_label_reliability(probs, labels, K, bins).ece;
}

double brier_score(const std::vector<double>& probs, const std::vector<int64_t>& labels, int64_t K) {
  check_table(probs, labels, K);
  MC_CHECK(!labels.empty(), "brier score: no rows");
  return weighted_brier(probs, labels, K, {});
}

double mean_nll(const std::vector<double>& probs, const std::vector<int64_t>& labels, int64_t K) {
  check_table(probs, labels, K);
  MC_CHECK(!labels.empty(), "NLL: no rows");
  double s = 0;
  for (size_t i = 0; i < labels.size(); ++i)
    s -= std::log(std::max(probs[i * size_t(K) + size_t(labels[i])], 1e-300));
  return s / double(labels.size());
}

CalibrationResult calibration(const std::vector<double>& probs, const std::vector<int64_t>& labels,
                              const std::vector<std::string>& class_names, int64_t bins,
                              const BootstrapOptions& bootstrap) {
  const int64_t K = int64_t(class_names.size());
  check_table(probs, labels, K);
  MC_CHECK(!labels.empty(), "calibration: no rows");
  CalibrationResult r;
  r.bins = bins;
  r.top = top_label_reliability(probs, labels, K, bins);
  for (int64_t k = 0; k < K; ++k) r.classes.push_back(class_reliability(probs, labels, K, k, bins, class_names[size_t(k)]));
  r.brier = brier_score(probs, labels, K);
  r.nll = mean_nll(probs, labels, K);
  if (bootstrap.resamples <= 0) return r;
  std::vector<double> conf, hit;
  top_pairs(probs, labels, K, conf, hit);
  const int64_t N = int64_t(labels.size());
  std::vector<double> eces, briers;
  std::vector<double> w(static_cast<size_t>(N));
  for (int64_t b = 0; b < bootstrap.resamples; ++b) {
    std::fill(w.begin(), w.end(), 0.0);
    for (int64_t i = 0; i < N; ++i) {
      const double u = kernels::philox_uniform_d(uint64_t(b * N + i), bootstrap.seed);
      w[size_t(std::min<int64_t>(int64_t(u * double(N)), N - 1))] += 1;
    }
    eces.push_back(curve(conf, hit, w, bins, "").ece);
    briers.push_back(weighted_brier(probs, labels, K, w));
  }
  r.ece_ci = percentile(std::move(eces), bootstrap);
  r.brier_ci = percentile(std::move(briers), bootstrap);
  return r;
}

std::vector<double> softmax_rows(const std::vector<double>& scores, int64_t K, double temperature) {
  MC_CHECK(K >= 1 && scores.size() % size_t(K) == 0, "softmax: ", scores.size(), " scores are not rows of ", K);
  MC_CHECK(std::isfinite(temperature) && temperature > 0, "temperature must be a positive number, got ", temperature);
  std::vector<double> p(scores.size());
  for (size_t r = 0; r < scores.size() / size_t(K); ++r) {
    const double* s = scores.data() + r * size_t(K);
    double m = s[0] / temperature, z = 0;
    for (int64_t k = 1; k < K; ++k) m = std::max(m, s[k] / temperature);
    for (int64_t k = 0; k < K; ++k) z += (p[r * size_t(K) + size_t(k)] = std::exp(s[k] / temperature - m));
    for (int64_t k = 0; k < K; ++k) p[r * size_t(K) + size_t(k)] /= z;
  }
  return p;
}

std::vector<double> calibrated_probabilities(const std::vector<double>& logits, int64_t K,
                                             const std::vector<double>& prior, double tau2, double temperature) {
  std::vector<double> s = logits;
  if (tau2 != 0) {
    MC_CHECK(int64_t(prior.size()) == K, "post-hoc adjustment: prior has ", prior.size(), " classes, the scores ", K);
    double total = 0;
    for (double c : prior) total += c;
    for (size_t i = 0; i < s.size(); ++i) {
      const double f = prior[i % size_t(K)] / total;
      MC_CHECK(f > 0, "post-hoc adjustment: class ", i % size_t(K), " has prior 0 (log 0)");
      s[i] -= tau2 * std::log(f);
    }
  }
  return softmax_rows(s, K, temperature);
}

TemperatureFit fit_temperature(const std::vector<double>& scores, const std::vector<int64_t>& labels, int64_t K) {
  check_table(scores, labels, K);
  MC_CHECK(!labels.empty(), "temperature scaling: no validation rows to fit on");
  // NLL(beta) for beta = 1/T: mean of logsumexp(beta s) - beta s_y, convex in beta.
  auto nll = [&](double beta) {
    double total = 0;
    for (size_t i = 0; i < labels.size(); ++i) {
      const double* s = scores.data() + i * size_t(K);
      int64_t top = 0;
      for (int64_t k = 1; k < K; ++k)
        if (s[k] > s[top]) top = k;
      const double m = beta * s[top];
      double rest = 0;  // log1p keeps tiny losses of confident rows (else 1 + 1e-40 == 1: flat)
      for (int64_t k = 0; k < K; ++k)
        if (k != top) rest += std::exp(beta * s[k] - m);
      total += m + std::log1p(rest) - beta * s[labels[i]];
    }
    return total / double(labels.size());
  };
  const double phi = (std::sqrt(5.0) - 1) / 2;
  double a = 1 / kMaxTemperature, b = 1 / kMinTemperature;
  double c = b - phi * (b - a), d = a + phi * (b - a), fc = nll(c), fd = nll(d);
  while (b - a > 1e-9 * std::max(1.0, b)) {
    if (fc <= fd) {
      b = d, d = c, fd = fc;
      c = b - phi * (b - a), fc = nll(c);
    } else {
      a = c, c = d, fc = fd;
      d = a + phi * (b - a), fd = nll(d);
    }
  }
  double beta = (a + b) / 2;
  TemperatureFit f;
  f.nll_before = nll(1.0);
  // The bracket ends are candidates too: the optimum may sit on a bound.
  for (double cand : {1 / kMaxTemperature, 1 / kMinTemperature})
    if (nll(cand) < nll(beta)) beta = cand;
  f.temperature = 1 / beta;
  f.nll_after = nll(beta);
  f.at_bound = beta <= 1 / kMaxTemperature * (1 + 1e-6) || beta >= 1 / kMinTemperature * (1 - 1e-6);
  if (f.nll_after > f.nll_before) {  // T = 1 is inside the bracket; never do worse than it
    f.temperature = 1;
    f.nll_after = f.nll_before;
  }
  return f;
}

}  // namespace mc::eval
