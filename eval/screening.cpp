#include "eval/screening.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>

#include "engine/check.h"
#include "engine/random.h"
#include "io/text.h"

namespace mc::eval {
namespace {

struct Sorted {  // rows by decreasing score, with cumulative true / false positives per distinct score
  std::vector<double> score;   // distinct, decreasing
  std::vector<int64_t> tp, fp;  // counts with p >= score[i]
  int64_t P = 0, N = 0;
};

Sorted sort_scores(const std::vector<int64_t>& y, const std::vector<double>& p, int64_t positive) {
  MC_CHECK(y.size() == p.size(), "screening: ", y.size(), " labels and ", p.size(), " scores");
  std::vector<size_t> order(y.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p[a] > p[b]; });
  Sorted s;
  int64_t tp = 0, fp = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    const size_t r = order[i];
    MC_CHECK(std::isfinite(p[r]), "screening: score of row ", r, " is not finite");
    (y[r] == positive ? tp : fp) += 1;
    if (i + 1 == order.size() || p[order[i + 1]] != p[r]) {
      s.score.push_back(p[r]);
      s.tp.push_back(tp);
      s.fp.push_back(fp);
    }
  }
  s.P = tp, s.N = fp;
  return s;
}

MetricValue ratio(int64_t a, int64_t b) { return b > 0 ? MetricValue{double(a) / double(b), true} : MetricValue{0, false}; }

// AUC by Mann-Whitney with ties one half.
MetricValue auc_of(const Sorted& s) {
  if (s.P == 0 || s.N == 0) return {0, false};
  double area = 0;
  int64_t tp0 = 0, fp0 = 0;
  for (size_t i = 0; i < s.score.size(); ++i) {
    area += double(s.fp[i] - fp0) * (double(tp0) + 0.5 * double(s.tp[i] - tp0));
    tp0 = s.tp[i], fp0 = s.fp[i];
  }
  return {area / (double(s.P) * double(s.N)), true};
}

MetricValue ap_of(const Sorted& s) {
  if (s.P == 0) return {0, false};
  double ap = 0, prev_recall = 0;
  for (size_t i = 0; i < s.score.size(); ++i) {
    const double recall = double(s.tp[i]) / double(s.P);
    const double precision = double(s.tp[i]) / double(s.tp[i] + s.fp[i]);
    ap += (recall - prev_recall) * precision;
    prev_recall = recall;
  }
  return {ap, true};
}

void fill_point(OperatingPoint& o) {
  o.sensitivity = ratio(o.tp, o.tp + o.fn);
  o.specificity = ratio(o.tn, o.tn + o.fp);
  o.ppv = ratio(o.tp, o.tp + o.fp);
  o.npv = ratio(o.tn, o.tn + o.fn);
}

Interval percentile(std::vector<double> v, double level) {
  Interval iv;
  iv.defined_in = int64_t(v.size());
  if (v.empty()) return iv;
  iv.lo = quantile_linear(v, (1 - level) / 2);
  iv.hi = quantile_linear(v, (1 + level) / 2);
  iv.defined = true;
  return iv;
}

}  // namespace

PrCurve pr_curve(const std::vector<int64_t>& y, const std::vector<double>& p, int64_t positive) {
  const Sorted s = sort_scores(y, p, positive);
  PrCurve c;
  if (s.P == 0) return c;
  c.defined = true;
  for (size_t i = 0; i < s.score.size(); ++i) {
    c.thresholds.push_back(s.score[i]);
    c.recall.push_back(double(s.tp[i]) / double(s.P));
    c.precision.push_back(double(s.tp[i]) / double(s.tp[i] + s.fp[i]));
    if (s.tp[i] == s.P) break;  // sklearn stops at full recall
  }
  return c;
}

MetricValue average_precision(const std::vector<int64_t>& y, const std::vector<double>& p, int64_t positive) {
  return ap_of(sort_scores(y, p, positive));
}

std::optional<double> threshold_for_sensitivity(const std::vector<int64_t>& y, const std::vector<double>& p,
                                                int64_t positive, double target) {
  const Sorted s = sort_scores(y, p, positive);
  if (s.P == 0) return std::nullopt;
  for (size_t i = 0; i < s.score.size(); ++i)
    if (double(s.tp[i]) >= target * double(s.P) - 1e-9) return s.score[i];
  return s.score.back();
}

std::optional<double> youden_threshold(const std::vector<int64_t>& y, const std::vector<double>& p, int64_t positive) {
  const Sorted s = sort_scores(y, p, positive);
  if (s.P == 0 || s.N == 0) return std::nullopt;
  double best = -2;
  std::optional<double> t;
  for (size_t i = 0; i < s.score.size(); ++i) {
    const double j = double(s.tp[i]) / double(s.P) - double(s.fp[i]) / double(s.N);
    if (j > best + 1e-12) best = j, t = s.score[i];
  }
  return t;
}

OperatingPoint operating_point(const std::vector<int64_t>& y, const std::vector<double>& p, int64_t positive,
                               double threshold) {
  OperatingPoint o;
  o.threshold = threshold;
  for (size_t i = 0; i < y.size(); ++i) {
    const bool pos = y[i] == positive, called = p[i] >= threshold;
    (pos ? (called ? o.tp : o.fn) : (called ? o.fp : o.tn)) += 1;
  }
  fill_point(o);
  return o;
}

ScreeningReport screening_report(const std::vector<int64_t>& y, const std::vector<double>& p,
                                 const ScreeningOptions& o) {
  ScreeningReport r;
  r.positive = o.positive;
  r.positive_name = o.positive_name;
  r.positive_reason = o.positive_reason;
  r.n = int64_t(y.size());
  for (int64_t v : y) r.n_positive += v == o.positive;
  const Sorted s = sort_scores(y, p, o.positive);
  r.auc = auc_of(s);
  r.average_precision = ap_of(s);
  r.pr = pr_curve(y, p, o.positive);
  if (!r.auc.defined) r.notes.push_back("ROC AUC undefined: the split has no " + std::string(s.P == 0 ? "positive" : "negative") + " subject");

  const std::string pos = "p(" + o.positive_name + ")";
  auto add = [&](const std::string& key, const std::string& name, double t) {
    OperatingPoint op = operating_point(y, p, o.positive, t);
    op.key = key, op.name = name;
    r.points.push_back(op);
  };
  add("default", pos + " >= 0.5 (default rule: the more probable class)", 0.5);
  if (const auto t = youden_threshold(y, p, o.positive))
    add("youden", pos + " >= " + io::general(*t) + " (Youden-optimal on this split: optimistic)", *t);
  if (o.validation_threshold)
    add("validation", pos + " >= " + io::general(*o.validation_threshold) + " (chosen on " + o.validation_source +
                          " for sensitivity >= " + io::general(100 * o.target_sensitivity) + "%)",
        *o.validation_threshold);
  else
    r.notes.push_back("no validation-chosen threshold: " + o.validation_note);

  if (o.bootstrap.resamples > 0 && !y.empty()) {
    const size_t n = y.size(), P = r.points.size();
    std::vector<double> aucs, aps;
    std::vector<std::array<std::vector<double>, 4>> pts(P);
    Generator g(o.bootstrap.seed);
    std::vector<int64_t> by(n);
    std::vector<double> bp(n);
    for (int64_t b = 0; b < o.bootstrap.resamples; ++b) {
      for (size_t i = 0; i < n; ++i) {
        const size_t j = size_t(g.randint(0, int64_t(n)));
        by[i] = y[j], bp[i] = p[j];
      }
      const Sorted bs = sort_scores(by, bp, o.positive);
      if (const MetricValue a = auc_of(bs); a.defined) aucs.push_back(a.value);
      if (const MetricValue a = ap_of(bs); a.defined) aps.push_back(a.value);
      for (size_t k = 0; k < P; ++k) {
        const OperatingPoint q = operating_point(by, bp, o.positive, r.points[k].threshold);
        const MetricValue v[4] = {q.sensitivity, q.specificity, q.ppv, q.npv};
        for (int m = 0; m < 4; ++m)
          if (v[m].defined) pts[k][size_t(m)].push_back(v[m].value);
      }
    }
    const double lv = o.bootstrap.level;
    r.auc_ci = percentile(aucs, lv);
    r.average_precision_ci = percentile(aps, lv);
    for (size_t k = 0; k < P; ++k) {
      r.points[k].sensitivity_ci = percentile(pts[k][0], lv);
      r.points[k].specificity_ci = percentile(pts[k][1], lv);
      r.points[k].ppv_ci = percentile(pts[k][2], lv);
      r.points[k].npv_ci = percentile(pts[k][3], lv);
    }
  }
  return r;
}

std::vector<double> positive_column(const EvalRow& row, int64_t positive) {
  const std::vector<double> probs = row.probabilities.to_vector<double>();
  std::vector<double> p;
  for (size_t i = 0; 2 * i < probs.size(); ++i) p.push_back(probs[2 * i + size_t(positive)]);
  return p;
}

std::vector<double> positive_probabilities(const PredictionTable& t, double tau2, const std::vector<double>& prior,
                                           int64_t positive) {
  MC_CHECK(t.num_classes() == 2, t.source, ": screening needs a binary table, this one has ", t.num_classes(), " classes");
  MC_CHECK(positive == 0 || positive == 1, t.source, ": positive class ", positive, " outside [0, 2)");
  EvalOptions eo;
  eo.tau2 = {tau2};
  eo.prior = prior;
  eo.bootstrap.resamples = 0;
  eo.roc = false;
  return positive_column(evaluate(t, eo).rows.at(0), positive);
}

void choose_validation_threshold(const PredictionTable& val, double tau2, const std::vector<double>& prior,
                                 const std::string& what, ScreeningOptions& o) {
  const std::vector<double> p = positive_probabilities(val, tau2, prior, o.positive);
  o.validation_threshold = threshold_for_sensitivity(val.labels, p, o.positive, o.target_sensitivity);
  o.validation_source = what + " (n = " + std::to_string(val.size()) + ")";
  if (!o.validation_threshold) o.validation_note = what + " has no " + o.positive_name + " subject";
}

ScreeningOptions saved_screening_options(const PredictionTable& p, const EvalOptions& o, const PredictionTable* val,
                                         const std::string& positive, double target_sensitivity) {
  MC_CHECK(p.num_classes() == 2, p.source, ": screening options are for a binary table; this one has ", p.num_classes(),
           " classes");
  MC_CHECK(target_sensitivity > 0 && target_sensitivity <= 1, "target sensitivity ", target_sensitivity, " outside (0, 1]");
  ScreeningOptions so;
  so.target_sensitivity = target_sensitivity;
  if (positive.empty()) {
    so.positive = 1;
    so.positive_reason = "the second class of " + p.source + " (the table names no task; --positive picks another)";
  } else {
    so.positive = -1;
    for (int64_t k = 0; k < 2; ++k)
      if (io::lower(positive) == io::lower(p.class_names[size_t(k)]) || positive == std::to_string(k)) so.positive = int(k);
    MC_CHECK(so.positive >= 0, "--positive '", positive, "' is not a class of ", p.source, " (", p.class_names[0], ", ",
             p.class_names[1], ", or the index 0 / 1)");
    so.positive_reason = "--positive " + positive;
  }
  so.positive_name = p.class_names[size_t(so.positive)];
  if (!val) {
    so.validation_note = "no validation threshold was available: no validation predictions were given "
                         "(mc_eval --val-predictions FILE chooses one on them)";
    return so;
  }
  MC_CHECK(val->class_names == p.class_names, val->source, ": validation predictions of classes ",
           io::joined(val->class_names), ", but ", p.source, " has ", io::joined(p.class_names),
           ": both tables must come from the same task");
  MC_CHECK(!o.tau2.empty(), "evaluation: no tau2 values");
  choose_validation_threshold(*val, o.tau2[0], o.prior, val->source, so);
  return so;
}

}  // namespace mc::eval
