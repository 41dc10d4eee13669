#include "losses/evaluation.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>

namespace mc {
namespace {

bool rows_are_probabilities(const PredictionTable& p) {
  const int64_t K = p.num_classes();
  for (int64_t i = 0; i < p.size(); ++i) {
    double s = 0;
    for (int64_t k = 0; k < K; ++k) {
      const double v = p.scores[size_t(i * K + k)];
      if (v < 0 || v > 1) return false;
      s += v;
    }
    if (std::abs(s - 1) > 1e-6) return false;
  }
  return true;
}

std::string num(double v) { return json_number(v); }
std::string quoted(const std::string& s) { return json_string(s); }

template <class T, class F>
std::string array(const std::vector<T>& v, F f) {
  std::string o = "[";
  for (size_t i = 0; i < v.size(); ++i) o += (i ? ", " : "") + f(v[i]);
  return o + "]";
}

std::string pct(const MetricValue& v) {
  if (!v.defined) return "undefined";
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", 100 * v.value);
  return b;
}

std::string pct_ci(const std::optional<BootstrapResult>& ci, const std::string& name) {
  if (!ci) return "";
  const Interval& iv = ci->at(name);
  if (!iv.defined) return "[undefined]";
  char b[64];
  std::snprintf(b, sizeof b, "[%.2f, %.2f]", 100 * iv.lo, 100 * iv.hi);
  return b;
}

std::string pad(std::string s, size_t w) {
  if (s.size() < w) s.append(w - s.size(), ' ');
  return s;
}

const char* kHeadline[] = {"accuracy",          "balanced_accuracy", "sensitivity_macro",
                           "specificity_macro", "f1_weighted",       "f1_macro",
                           "auc_macro",         "sensitivity_micro", "specificity_micro"};

MetricValue value_of(const ClassificationMetrics& m, const std::string& name) {
  for (const auto& [n, v] : m.named())
    if (n == name) return v;
  MC_FAIL("no metric ", name);
}

}  // namespace

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char b[32];
  for (int digits = 15; digits <= 17; ++digits) {
    std::snprintf(b, sizeof b, "%.*g", digits, v);
    if (std::strtod(b, nullptr) == v) break;
  }
  return b;
}

std::string json_string(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      o += b;
    } else {
      o += c;
    }
  }
  return o + "\"";
}

int64_t threshold_class(double x, const std::vector<double>& thresholds) {
  int64_t k = 0;
  while (size_t(k) < thresholds.size() && x >= thresholds[size_t(k)]) ++k;
  return k;
}

std::vector<double> fit_thresholds(const std::vector<double>& x, const std::vector<int64_t>& labels,
                                   int64_t K) {
  MC_CHECK(K >= 2 && x.size() == labels.size(), "fit_thresholds: ", x.size(), " values and ",
           labels.size(), " labels for ", K, " classes");
  std::vector<std::pair<double, int64_t>> v;
  for (size_t i = 0; i < x.size(); ++i) {
    MC_CHECK(labels[i] >= 0 && labels[i] < K, "fit_thresholds: label ", labels[i], " outside [0, ", K, ")");
    if (!std::isnan(x[i])) v.emplace_back(x[i], labels[i]);
  }
  MC_CHECK(!v.empty(), "fit_thresholds: no values");
  std::sort(v.begin(), v.end());
  // Groups of equal values; a cut may only fall between groups. cum[g][k]: class-k samples in
  // groups before g.
  std::vector<double> value;
  std::vector<std::vector<int64_t>> cum(1, std::vector<int64_t>(size_t(K), 0));
  for (size_t i = 0; i < v.size(); ++i) {
    if (i == 0 || v[i].first != v[i - 1].first) {
      value.push_back(v[i].first);
      cum.push_back(cum.back());
    }
    ++cum.back()[size_t(v[i].second)];
  }
  const size_t G = value.size();
  const std::vector<int64_t>& n = cum[G];
  // Balanced accuracy = sum over present classes of recall / their number: the common divisor
  // does not move the argmax, so maximise the sum of recalls. best[k][j]: the best sum for
  // classes 0..k with class k ending at cut j; from[k][j]: where class k started.
  auto gain = [&](size_t k, size_t a, size_t b) {
    return n[k] ? double(cum[b][k] - cum[a][k]) / double(n[k]) : 0.0;
  };
  std::vector<std::vector<double>> best(size_t(K), std::vector<double>(G + 1, -1));
  std::vector<std::vector<size_t>> from(size_t(K), std::vector<size_t>(G + 1, 0));
  for (size_t j = 0; j <= G; ++j) best[0][j] = gain(0, 0, j);
  for (size_t k = 1; k < size_t(K); ++k)
    for (size_t j = 0; j <= G; ++j)
      for (size_t i = 0; i <= j; ++i) {
        const double b = best[k - 1][i] + gain(k, i, j);
        if (b > best[k][j] + 1e-12) best[k][j] = b, from[k][j] = i;
      }
  std::vector<size_t> cut(size_t(K) - 1);
  size_t j = G;
  for (size_t k = size_t(K) - 1; k >= 1; --k) cut[k - 1] = j = from[k][j];
  std::vector<double> t;
  for (size_t c : cut)
    t.push_back(c == 0   ? -std::numeric_limits<double>::infinity()
                : c == G ? std::numeric_limits<double>::infinity()
                         : (value[c - 1] + value[c]) / 2);
  return t;
}

ScoreKind parse_score_kind(const std::string& s) {
  if (s == "auto") return ScoreKind::Auto;
  if (s == "logits") return ScoreKind::Logits;
  if (s == "probabilities") return ScoreKind::Probabilities;
  MC_FAIL("unknown score kind '", s, "' (allowed: auto, logits, probabilities)");
}

const char* score_kind_name(ScoreKind k) {
  return k == ScoreKind::Auto ? "auto" : k == ScoreKind::Logits ? "logits" : "probabilities";
}

Evaluation evaluate(const PredictionTable& p, const EvalOptions& o) {
  const int64_t N = p.size(), K = p.num_classes();
  MC_CHECK(N > 0 && K >= 2 && int64_t(p.scores.size()) == N * K,
           p.source, ": predictions need N rows of K >= 2 scores");
  Evaluation e;
  e.source = p.source;
  e.class_names = p.class_names;
  e.options = o;
  e.kind = o.kind;
  if (e.kind == ScoreKind::Auto)
    e.kind = rows_are_probabilities(p) ? ScoreKind::Probabilities : ScoreKind::Logits;
  if (!o.prior.empty()) {
    MC_CHECK(int64_t(o.prior.size()) == K, "prior has ", o.prior.size(), " values but ",
             p.source, " has ", K, " classes");
    e.prior = normalize_prior(o.prior);
  }
  Tensor labels = Tensor::from(p.labels, {N});
  Tensor given = Tensor::from(p.scores, {N, K});
  Tensor logits = given;
  if (e.kind == ScoreKind::Probabilities) {
    for (double v : p.scores)
      MC_CHECK(v >= 0 && v <= 1, p.source, ": scores were declared probabilities but ", v,
               " is outside [0, 1]");
    logits = given.clone();
    for (int64_t i = 0; i < N * K; ++i) logits.data<double>()[i] = std::log(p.scores[size_t(i)]);
  }
  MC_CHECK(!o.tau2.empty(), "evaluation: no tau2 values");
  for (double tau : o.tau2) {
    const Tensor probs = e.kind == ScoreKind::Probabilities && tau == 0
                             ? given
                             : posthoc_probabilities(logits, e.prior, tau);
    EvalRow r{tau, classification_metrics(labels, probs), std::nullopt, {}};
    if (o.bootstrap.resamples > 0) r.ci = bootstrap_ci(labels, probs, o.bootstrap);
    if (o.roc)
      for (int64_t k = 0; k < K; ++k) r.roc.push_back(roc_curve(labels, probs, k));
    e.rows.push_back(std::move(r));
  }
  return e;
}

std::string format_report(const Evaluation& e) {
  std::ostringstream s;
  const auto& o = e.options;
  const int64_t K = int64_t(e.class_names.size());
  const int64_t N = e.rows.empty() ? 0 : e.rows[0].metrics.num_samples;
  s << e.source << ": " << N << " samples, " << K << " classes, scores taken as "
    << score_kind_name(e.kind) << "\n";
  if (o.bootstrap.resamples > 0)
    s << "intervals: " << o.bootstrap.level * 100 << "% percentile bootstrap, "
      << o.bootstrap.resamples << " resamples, seed " << o.bootstrap.seed << "\n";
  s << "values in percent\n";
  if (e.rows.size() > 1) {
    s << "\npost-hoc logit adjustment sweep (scores = logits - tau2 * log prior)\n"
      << pad("tau2", 8);
    for (const char* m : kHeadline) s << pad(m, std::strlen(m) + 2);
    s << "\n";
    for (const EvalRow& r : e.rows) {
      char t[16];
      std::snprintf(t, sizeof t, "%.3g", r.tau2);
      s << pad(t, 8);
      for (const char* m : kHeadline) s << pad(pct(value_of(r.metrics, m)), std::strlen(m) + 2);
      s << "\n";
    }
  }
  for (const EvalRow& r : e.rows) {
    const auto& m = r.metrics;
    s << "\n== tau2 = " << r.tau2 << "\n";
    for (const char* name : kHeadline)
      s << "  " << pad(name, 20) << pad(pct(value_of(m, name)), 11) << pct_ci(r.ci, name) << "\n";
    s << "  per class         " << pad("support", 9) << pad("sensitivity", 26)
      << pad("specificity", 26) << pad("f1", 26) << "auc\n";
    for (int64_t k = 0; k < K; ++k) {
      const auto ks = size_t(k);
      auto cell = [&](const char* what, const MetricValue& v) {
        const std::string n = std::string(what) + "[" + std::to_string(k) + "]";
        return pad(pct(v) + " " + pct_ci(r.ci, n), 26);
      };
      const std::string& cn = e.class_names[ks];
      s << "  " << pad(cn == std::to_string(k) ? cn : std::to_string(k) + " " + cn, 18)
        << pad(std::to_string(m.support[ks]), 9) << cell("sensitivity", m.sensitivity[ks])
        << cell("specificity", m.specificity[ks]) << cell("f1", m.f1[ks])
        << pct(m.auc[ks]) << " " << pct_ci(r.ci, "auc[" + std::to_string(k) + "]") << "\n";
    }
    s << "  confusion matrix (rows = true, columns = predicted)\n";
    for (int64_t t = 0; t < K; ++t) {
      s << "    " << pad(e.class_names[size_t(t)], 16);
      for (int64_t p = 0; p < K; ++p) s << pad(std::to_string(m.confusion[size_t(t * K + p)]), 8);
      s << "\n";
    }
    for (const auto& n : m.notes) s << "  note: " << n << "\n";
  }
  return s.str();
}

std::string to_json(const Evaluation& e) {
  const auto& o = e.options;
  std::ostringstream s;
  s << "{\n  \"source\": " << quoted(e.source) << ",\n  \"num_samples\": "
    << (e.rows.empty() ? 0 : e.rows[0].metrics.num_samples)
    << ",\n  \"class_names\": " << array(e.class_names, quoted)
    << ",\n  \"scores\": " << quoted(score_kind_name(e.kind))
    << ",\n  \"prior\": " << (e.prior.empty() ? "null" : array(e.prior, num))
    << ",\n  \"bootstrap\": " << (o.bootstrap.resamples > 0
                                      ? "{\"resamples\": " + std::to_string(o.bootstrap.resamples) +
                                            ", \"seed\": " + std::to_string(o.bootstrap.seed) +
                                            ", \"level\": " + num(o.bootstrap.level) + "}"
                                      : std::string("null"))
    << ",\n  \"results\": [";
  for (size_t ri = 0; ri < e.rows.size(); ++ri) {
    const EvalRow& r = e.rows[ri];
    const auto& m = r.metrics;
    s << (ri ? "," : "") << "\n    {\"tau2\": " << num(r.tau2) << ",\n     \"metrics\": {";
    const auto named = m.named();
    for (size_t i = 0; i < named.size(); ++i) {
      const auto& [name, v] = named[i];
      s << (i ? "," : "") << "\n       " << quoted(name) << ": {\"value\": "
        << (v.defined ? num(v.value) : "null") << ", \"defined\": " << (v.defined ? "true" : "false");
      if (r.ci) {
        const Interval& iv = r.ci->at(name);
        s << ", \"ci\": " << (iv.defined ? "[" + num(iv.lo) + ", " + num(iv.hi) + "]" : "null")
          << ", \"ci_resamples\": " << iv.defined_in;
      }
      s << "}";
    }
    const int64_t K = m.num_classes;
    s << "},\n     \"support\": " << array(m.support, [](int64_t v) { return std::to_string(v); })
      << ",\n     \"confusion\": [";
    for (int64_t t = 0; t < K; ++t) {
      std::vector<int64_t> row(m.confusion.begin() + t * K, m.confusion.begin() + (t + 1) * K);
      s << (t ? ", " : "") << array(row, [](int64_t v) { return std::to_string(v); });
    }
    s << "],\n     \"notes\": " << array(m.notes, quoted) << ",\n     \"roc\": [";
    for (size_t k = 0; k < r.roc.size(); ++k)
      s << (k ? "," : "") << "\n       {\"class\": " << k << ", \"fpr\": " << array(r.roc[k].fpr, num)
        << ", \"tpr\": " << array(r.roc[k].tpr, num)
        << ", \"thresholds\": " << array(r.roc[k].thresholds, num) << "}";
    s << "]}";
  }
  s << "\n  ]\n}\n";
  return s.str();
}

}  // namespace mc
