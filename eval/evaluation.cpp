#include "eval/evaluation.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/text.h"
#include "losses/posthoc.h"

namespace mc::eval {
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

std::string pct(const MetricValue& v) { return v.defined ? io::fixed(100 * v.value, 2) : "undefined"; }

std::string pct_ci(const std::optional<BootstrapResult>& ci, const std::string& name) {
  if (!ci) return "";
  const Interval& iv = ci->at(name);
  return iv.defined ? "[" + io::fixed(100 * iv.lo, 2) + ", " + io::fixed(100 * iv.hi, 2) + "]" : "[undefined]";
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

Evaluation evaluate(const PredictionTable& p, const EvalOptions& o) {
  const int64_t N = p.size(), K = p.num_classes();
  MC_CHECK(N > 0 && K >= 2 && int64_t(p.scores.size()) == N * K,
           p.source, ": predictions need N rows of K >= 2 scores");
  Evaluation e;
  e.source = p.source;
  e.class_names = p.class_names;
  e.options = o;
  e.kind = p.kind;
  if (e.kind == ScoreKind::Auto)
    e.kind = rows_are_probabilities(p) ? ScoreKind::Probabilities : ScoreKind::Logits;
  if (!o.prior.empty()) {
    MC_CHECK(int64_t(o.prior.size()) == K, "prior has ", o.prior.size(), " values but ",
             p.source, " has ", K, " classes");
    e.prior = losses::normalize_prior(o.prior);
  }
  const Tensor labels = p.labels_tensor();
  const Tensor given = p.scores_tensor();
  Tensor logits = given;
  if (e.kind == ScoreKind::Probabilities) {
    for (double v : p.scores)
      MC_CHECK(v >= 0 && v <= 1, p.source, ": scores were declared probabilities but ", v,
               " is outside [0, 1]");
    for (int64_t i = 0; i < N; ++i) {  // rounding to 6 digits in a CSV leaves ~1e-6 per row
      double sum = 0;
      for (int64_t k = 0; k < K; ++k) sum += p.scores[size_t(i * K + k)];
      MC_CHECK(std::abs(sum - 1) <= 1e-3, p.source, ": scores were declared probabilities but those of id '",
               i < int64_t(p.ids.size()) ? p.ids[size_t(i)] : std::to_string(i), "' sum to ", sum,
               ", not 1 (within 1e-3)");
    }
    logits = given.clone();
    for (int64_t i = 0; i < N * K; ++i) logits.data<double>()[i] = std::log(p.scores[size_t(i)]);
  }
  MC_CHECK(!o.tau2.empty(), "evaluation: no tau2 values");
  for (double tau : o.tau2) {
    const Tensor probs = e.kind == ScoreKind::Probabilities && tau == 0
                             ? given
                             : losses::posthoc_probabilities(logits, e.prior, tau);
    e.rows.push_back(eval_row(labels, probs, tau, o.bootstrap, o.roc));
    e.rows.back().probabilities = probs.to(Device::cpu()).to(DType::F64);
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

io::Json evaluation_json(const Evaluation& e) {
  const auto& o = e.options;
  io::Json j;
  j["source"] = e.source;
  j["num_samples"] = e.rows.empty() ? 0 : e.rows[0].metrics.num_samples;
  j["class_names"] = e.class_names;
  j["scores"] = score_kind_name(e.kind);
  j["prior"] = e.prior.empty() ? io::Json() : io::Json(e.prior);
  j["bootstrap"] = o.bootstrap.resamples > 0
                       ? io::Json{{"resamples", o.bootstrap.resamples}, {"seed", o.bootstrap.seed}, {"level", o.bootstrap.level}}
                       : io::Json();
  io::Json results = io::Json::array();
  for (const EvalRow& r : e.rows) {
    const auto& m = r.metrics;
    io::Json metrics = io::Json::object();
    for (const auto& [name, v] : m.named()) {
      io::Json x{{"value", v.defined ? io::Json(v.value) : io::Json()}, {"defined", v.defined}};
      if (r.ci) {
        const Interval& iv = r.ci->at(name);
        x["ci"] = iv.defined ? io::Json{iv.lo, iv.hi} : io::Json();
        x["ci_resamples"] = iv.defined_in;
      }
      metrics[name] = std::move(x);
    }
    const int64_t K = m.num_classes;
    io::Json confusion = io::Json::array();
    for (int64_t t = 0; t < K; ++t)
      confusion.push_back(std::vector<int64_t>(m.confusion.begin() + t * K, m.confusion.begin() + (t + 1) * K));
    io::Json roc = io::Json::array();
    for (size_t k = 0; k < r.roc.size(); ++k)
      roc.push_back({{"class", k}, {"fpr", r.roc[k].fpr}, {"tpr", r.roc[k].tpr}, {"thresholds", r.roc[k].thresholds}});
    results.push_back({{"tau2", r.tau2}, {"metrics", std::move(metrics)}, {"support", m.support},
                       {"confusion", std::move(confusion)}, {"notes", m.notes}, {"roc", std::move(roc)}});
  }
  j["results"] = std::move(results);
  return j;
}

std::string to_json(const Evaluation& e) { return io::json_text(evaluation_json(e)) + "\n"; }

}  // namespace mc::eval
