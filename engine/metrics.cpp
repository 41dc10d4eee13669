#include "engine/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/dispatch.h"
#include "kernels/metrics.h"

namespace mc {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// Device memory for one chunk of bootstrap multiplicities (int32 per row and resample).
constexpr int64_t kBootstrapChunkBytes = int64_t(256) << 20;

// Where the kernels run: the inputs' device (engine/dispatch.h routes each call).
struct Backend {
  Device dev;
  explicit Backend(Device d) : dev(d) {}
  Tensor empty(int64_t n, DType dt) const { return Tensor::empty({std::max<int64_t>(n, 1)}, dt, dev); }
};
#define MC_KERNEL(be, fn, ...) MC_DISPATCH((be).dev, fn, __VA_ARGS__)
#define MC_KERNEL_SIZE(be, fn, ...) MC_DISPATCH_SIZE((be).dev, fn, __VA_ARGS__)

// Inputs on one device, validated, with predictions and the per-class sort every metric uses.
struct Prepared {
  int64_t N = 0, K = 0;
  Tensor labels, scores, pred, order, sorted, group_end;
};

Prepared prepare(const Tensor& labels, const Tensor& scores) {
  MC_CHECK(scores.dim() == 2 && is_floating(scores.dtype()), "metrics: scores must be [N, K] "
           "floating point, got ", scores.str());
  const int64_t N = scores.size(0), K = scores.size(1);
  MC_CHECK(labels.dim() == 1 && labels.size(0) == N && labels.dtype() == DType::I64,
           "metrics: labels must be i64[", N, "], got ", labels.str());
  MC_CHECK(labels.device() == scores.device(), "metrics: labels on ", labels.device().str(),
           ", scores on ", scores.device().str());
  MC_CHECK(N >= 1 && K >= 2, "metrics: need at least 1 sample and 2 classes, got ", scores.str());
  MC_CHECK(N < std::numeric_limits<int32_t>::max(), "metrics: at most 2^31 - 2 samples");
  Backend be(scores.device());
  Prepared p;
  p.N = N;
  p.K = K;
  p.labels = labels;
  p.scores = scores.to(DType::F64);
  Tensor faults = be.empty(2, DType::I64);
  MC_KERNEL(be, validate, p.labels.data<int64_t>(), p.scores.data<double>(), N, K,
            faults.data<int64_t>());
  const auto f = faults.to_vector<int64_t>();
  if (f[0] < N)
    MC_FAIL("metrics: row ", f[0], " has label ", labels.flat_slice(f[0], {1}).item(),
            ", outside [0, ", K, ")");
  MC_CHECK(f[1] == N, "metrics: row ", f[1], " has a NaN or infinite score");
  p.pred = be.empty(N, DType::I32);
  MC_KERNEL(be, argmax_rows, p.scores.data<double>(), N, K, p.pred.data<int32_t>());
  p.order = be.empty(K * N, DType::I32);
  p.sorted = be.empty(K * N, DType::F64);
  p.group_end = be.empty(K * N, DType::U8);
  const size_t ws = MC_KERNEL_SIZE(be, sort_columns_workspace, N);
  Tensor work = be.empty(int64_t(ws), DType::U8);
  MC_KERNEL(be, sort_columns, p.scores.data<double>(), N, K, p.order.data<int32_t>(),
            p.sorted.data<double>(), p.group_end.data<uint8_t>(), ws ? work.raw() : nullptr, ws);
  return p;
}

MetricCounts point_counts(const Prepared& p) {
  Backend be(p.scores.device());
  const int64_t N = p.N, K = p.K;
  Tensor cm = be.empty(K * K, DType::I64), pos = be.empty(K, DType::I64),
         rank2 = be.empty(K, DType::I64);
  MC_KERNEL(be, confusion_matrix, p.labels.data<int64_t>(), p.pred.data<int32_t>(), N, K,
            cm.data<int64_t>());
  const size_t ws = MC_KERNEL_SIZE(be, auc_rank_sums_workspace, N);
  Tensor work = be.empty(int64_t(ws), DType::U8);
  MC_KERNEL(be, auc_rank_sums, p.labels.data<int64_t>(), p.order.data<int32_t>(),
            p.group_end.data<uint8_t>(), N, K, pos.data<int64_t>(), rank2.data<int64_t>(),
            ws ? work.raw() : nullptr, ws);
  MetricCounts c{K, cm.to_vector<int64_t>(), pos.to_vector<int64_t>(), {}, rank2.to_vector<int64_t>()};
  for (size_t k = 0; k < size_t(K); ++k) {
    c.neg.push_back(N - c.pos[k]);
    c.u2[k] -= c.pos[k] * (c.pos[k] + 1);  // sum of 2 * ranks -> 2U
  }
  return c;
}

std::vector<MetricCounts> resample_counts(const Prepared& p, const BootstrapOptions& o) {
  MC_CHECK(o.resamples >= 1, "bootstrap: resamples must be >= 1, got ", o.resamples);
  Backend be(p.scores.device());
  const int64_t N = p.N, K = p.K;
  const int64_t chunk = std::clamp<int64_t>(kBootstrapChunkBytes / (4 * N), 1, o.resamples);
  std::vector<MetricCounts> out;
  for (int64_t first = 0; first < o.resamples; first += chunk) {
    const int64_t B = std::min(chunk, o.resamples - first);
    Tensor counts = be.empty(B * N, DType::I32), cm = be.empty(B * K * K, DType::I64);
    Tensor pos = be.empty(B * K, DType::I64), neg = be.empty(B * K, DType::I64),
           u2 = be.empty(B * K, DType::I64);
    MC_KERNEL(be, bootstrap_counts, o.seed, first, B, N, counts.data<int32_t>());
    MC_KERNEL(be, bootstrap_confusion, counts.data<int32_t>(), p.labels.data<int64_t>(),
              p.pred.data<int32_t>(), N, B, K, cm.data<int64_t>());
    const size_t ws = MC_KERNEL_SIZE(be, bootstrap_auc_workspace, N, B, K);
    Tensor work = be.empty(int64_t(ws), DType::U8);
    MC_KERNEL(be, bootstrap_auc, counts.data<int32_t>(), p.labels.data<int64_t>(),
              p.order.data<int32_t>(), p.group_end.data<uint8_t>(), N, B, K, pos.data<int64_t>(),
              neg.data<int64_t>(), u2.data<int64_t>(), ws ? work.raw() : nullptr, ws);
    const auto hcm = cm.to_vector<int64_t>(), hp = pos.to_vector<int64_t>(),
               hn = neg.to_vector<int64_t>(), hu = u2.to_vector<int64_t>();
    for (int64_t b = 0; b < B; ++b) {
      auto slice = [&](const std::vector<int64_t>& v, int64_t n) {
        return std::vector<int64_t>(v.begin() + b * n, v.begin() + (b + 1) * n);
      };
      out.push_back({K, slice(hcm, K * K), slice(hp, K), slice(hn, K), slice(hu, K)});
    }
  }
  return out;
}

Tensor host_labels(const std::vector<int64_t>& labels) {
  return Tensor::from(labels, {int64_t(labels.size())});
}
Tensor host_scores(const std::vector<double>& scores, int64_t K, size_t N) {
  MC_CHECK(K >= 1 && scores.size() == N * size_t(K), "metrics: ", scores.size(),
           " scores for ", N, " labels and ", K, " classes");
  return Tensor::from(scores, {int64_t(N), K});
}

MetricValue mean_of(const std::vector<MetricValue>& v, bool defined_only) {
  double s = 0;
  int64_t n = 0;
  for (const MetricValue& m : v)
    if (m.defined || !defined_only) { s += m.value; ++n; }
  return n ? MetricValue{s / double(n), true} : MetricValue{kNaN, false};
}

}  // namespace

ClassificationMetrics metrics_from_counts(const MetricCounts& c) {
  const int64_t K = c.K;
  ClassificationMetrics m;
  m.num_classes = K;
  m.confusion = c.confusion;
  std::vector<int64_t> predicted(size_t(K), 0);
  m.support.assign(size_t(K), 0);
  int64_t N = 0, correct = 0;
  for (int64_t t = 0; t < K; ++t)
    for (int64_t p = 0; p < K; ++p) {
      const int64_t v = c.confusion[size_t(t * K + p)];
      m.support[size_t(t)] += v;
      predicted[size_t(p)] += v;
      N += v;
      if (t == p) correct += v;
    }
  m.num_samples = N;
  MC_CHECK(N > 0, "metrics: no samples");
  m.accuracy = {double(correct) / double(N), true};
  m.sensitivity_micro = m.accuracy;
  int64_t tn_sum = 0, neg_sum = 0;
  for (int64_t k = 0; k < K; ++k) {
    const auto ks = size_t(k);
    const int64_t tp = c.confusion[size_t(k * K + k)], sup = m.support[ks], pr = predicted[ks];
    const int64_t negatives = N - sup, tn = N - sup - pr + tp;
    const double recall = sup ? double(tp) / double(sup) : 0.0;
    const double precision = pr ? double(tp) / double(pr) : 0.0;
    m.sensitivity.push_back({recall, sup > 0});
    m.specificity.push_back({negatives ? double(tn) / double(negatives) : 0.0, negatives > 0});
    const double denom = precision + recall;  // sklearn's expression, for the same rounding
    m.f1.push_back({denom == 0 ? 0.0 : 2.0 * precision * recall / denom, sup > 0 || pr > 0});
    tn_sum += tn;
    neg_sum += negatives;
    const bool auc_ok = c.pos[ks] > 0 && c.neg[ks] > 0;
    m.auc.push_back({auc_ok ? double(c.u2[ks]) / (2.0 * double(c.pos[ks]) * double(c.neg[ks]))
                            : kNaN,
                     auc_ok});
    if (!auc_ok)
      m.notes.push_back(detail::cat("auc[", k, "] undefined: class ", k, " has ",
                                    c.pos[ks] ? "no negatives" : "no samples",
                                    " in the labels; left out of auc_macro"));
    if (sup == 0)
      m.notes.push_back(detail::cat("class ", k, " has no samples: its sensitivity and F1 count "
                                    "as 0 in the macro means; balanced accuracy skips it"));
  }
  m.sensitivity_macro = mean_of(m.sensitivity, false);
  m.balanced_accuracy = mean_of(m.sensitivity, true);
  m.specificity_macro = mean_of(m.specificity, false);
  m.specificity_micro = {double(tn_sum) / double(neg_sum), neg_sum > 0};
  m.f1_macro = mean_of(m.f1, false);
  double wf = 0;
  for (int64_t k = 0; k < K; ++k) wf += m.f1[size_t(k)].value * double(m.support[size_t(k)]);
  m.f1_weighted = {wf / double(N), true};
  m.auc_macro = mean_of(m.auc, true);
  return m;
}

std::vector<std::pair<std::string, MetricValue>> ClassificationMetrics::named() const {
  std::vector<std::pair<std::string, MetricValue>> v = {
      {"accuracy", accuracy},
      {"balanced_accuracy", balanced_accuracy},
      {"sensitivity_macro", sensitivity_macro},
      {"sensitivity_micro", sensitivity_micro},
      {"specificity_macro", specificity_macro},
      {"specificity_micro", specificity_micro},
      {"f1_macro", f1_macro},
      {"f1_weighted", f1_weighted},
      {"auc_macro", auc_macro}};
  for (const auto& [name, per] : {std::pair{"sensitivity", &sensitivity},
                                  {"specificity", &specificity}, {"f1", &f1}, {"auc", &auc}})
    for (size_t k = 0; k < per->size(); ++k)
      v.push_back({detail::cat(name, "[", k, "]"), (*per)[k]});
  return v;
}

ClassificationMetrics classification_metrics(const Tensor& labels, const Tensor& scores) {
  return metrics_from_counts(point_counts(prepare(labels, scores)));
}

ClassificationMetrics classification_metrics(const std::vector<int64_t>& labels,
                                             const std::vector<double>& scores, int64_t K) {
  return classification_metrics(host_labels(labels), host_scores(scores, K, labels.size()));
}

RocCurve roc_curve(const Tensor& labels, const Tensor& scores, int64_t k) {
  MC_CHECK(scores.dim() == 2 && k >= 0 && k < scores.size(1), "roc_curve: class ", k,
           " of scores ", scores.str());
  const Prepared p = prepare(labels, scores);
  const int64_t N = p.N;
  const auto y = p.labels.to_vector<int64_t>();
  const auto order = p.order.flat_slice(k * N, {N}).to_vector<int32_t>();
  const auto sorted = p.sorted.flat_slice(k * N, {N}).to_vector<double>();
  const auto end = p.group_end.flat_slice(k * N, {N}).to_vector<uint8_t>();
  // Descending thresholds: walk the ascending sort from the top, one point per tie group.
  RocCurve r;
  std::vector<double> tps{0}, fps{0};
  r.thresholds.push_back(sorted[size_t(N - 1)] + 1);
  double tp = 0, fp = 0;
  for (int64_t q = N - 1; q >= 0; --q) {
    (y[size_t(order[size_t(q)])] == k ? tp : fp) += 1;
    if (q == 0 || end[size_t(q - 1)]) {  // q starts its group: the group is complete
      tps.push_back(tp);
      fps.push_back(fp);
      r.thresholds.push_back(sorted[size_t(q)]);
    }
  }
  r.defined = tp > 0 && fp > 0;
  for (size_t i = 0; i < tps.size(); ++i) {
    r.fpr.push_back(fp > 0 ? fps[i] / fp : kNaN);
    r.tpr.push_back(tp > 0 ? tps[i] / tp : kNaN);
  }
  return r;
}

RocCurve roc_curve(const std::vector<int64_t>& labels, const std::vector<double>& scores,
                   int64_t K, int64_t k) {
  return roc_curve(host_labels(labels), host_scores(scores, K, labels.size()), k);
}

double quantile_linear(std::vector<double> v, double q) {
  MC_CHECK(!v.empty() && q >= 0 && q <= 1, "quantile of ", v.size(), " values at ", q);
  std::sort(v.begin(), v.end());
  const double pos = q * double(v.size() - 1);
  const size_t lo = size_t(std::floor(pos));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - double(lo)) * (v[hi] - v[lo]);
}

std::vector<ClassificationMetrics> bootstrap_metrics(const Tensor& labels, const Tensor& scores,
                                                     const BootstrapOptions& o) {
  std::vector<ClassificationMetrics> out;
  for (const MetricCounts& c : resample_counts(prepare(labels, scores), o))
    out.push_back(metrics_from_counts(c));
  return out;
}

BootstrapResult bootstrap_ci(const Tensor& labels, const Tensor& scores,
                             const BootstrapOptions& o) {
  MC_CHECK(o.level > 0 && o.level < 1, "bootstrap: level must be in (0, 1), got ", o.level);
  MC_CHECK(o.resamples >= 0 && o.resamples <= kMaxBootstrapResamples, "bootstrap: ", o.resamples,
           " resamples; the maximum is ", kMaxBootstrapResamples);
  const auto all = bootstrap_metrics(labels, scores, o);
  BootstrapResult r{o, {}, {}};
  std::vector<std::vector<double>> values;
  for (const auto& m : all) {
    const auto named = m.named();
    if (r.names.empty())
      for (const auto& [name, v] : named) r.names.push_back(name);
    values.resize(named.size());
    for (size_t i = 0; i < named.size(); ++i)
      if (named[i].second.defined) values[i].push_back(named[i].second.value);
  }
  for (const auto& v : values) {
    Interval iv;
    iv.defined_in = int64_t(v.size());
    iv.defined = !v.empty();
    if (iv.defined) {
      iv.lo = quantile_linear(v, (1 - o.level) / 2);
      iv.hi = quantile_linear(v, (1 + o.level) / 2);
    }
    r.intervals.push_back(iv);
  }
  return r;
}

const Interval& BootstrapResult::at(const std::string& name) const {
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return intervals[i];
  MC_FAIL("bootstrap: no metric named '", name, "'");
}

Tensor softmax_with_offset(const Tensor& x, const std::vector<double>& offset, bool softmax) {
  MC_CHECK(x.dim() == 2 && (x.dtype() == DType::F32 || x.dtype() == DType::F64),
           "softmax_with_offset: x must be f32/f64 [N, K], got ", x.str());
  const int64_t N = x.size(0), K = x.size(1);
  MC_CHECK(offset.empty() || int64_t(offset.size()) == K, "softmax_with_offset: ", offset.size(),
           " offsets for ", K, " classes");
  Backend be(x.device());
  Tensor out = Tensor::empty({N, K}, DType::F64, x.device());
  const Tensor off = offset.empty() ? Tensor() : Tensor::from(offset, {K}).to(x.device());
  const double* o = offset.empty() ? nullptr : off.data<double>();
  if (x.dtype() == DType::F32)
    MC_KERNEL(be, offset_softmax, x.data<float>(), o, N, K, softmax, out.data<double>());
  else
    MC_KERNEL(be, offset_softmax, x.data<double>(), o, N, K, softmax, out.data<double>());
  return out;
}

}  // namespace mc
