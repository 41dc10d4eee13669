#include "eval/regression.h"

#include <algorithm>
#include <cmath>

#include "engine/check.h"
#include "engine/random.h"
#include "io/plot.h"
#include "io/text.h"

namespace mc::eval {
namespace {

struct Scores {
  MetricValue mae, rmse, pearson, r2;
};

Scores scores_of(const std::vector<double>& t, const std::vector<double>& p) {
  const double n = double(t.size());
  double ae = 0, se = 0, mt = 0, mp = 0;
  for (size_t i = 0; i < t.size(); ++i) ae += std::abs(p[i] - t[i]), se += (p[i] - t[i]) * (p[i] - t[i]), mt += t[i], mp += p[i];
  mt /= n, mp /= n;
  double stt = 0, spp = 0, stp = 0;
  for (size_t i = 0; i < t.size(); ++i) stt += (t[i] - mt) * (t[i] - mt), spp += (p[i] - mp) * (p[i] - mp), stp += (t[i] - mt) * (p[i] - mp);
  Scores s;
  s.mae = {ae / n, true};
  s.rmse = {std::sqrt(se / n), true};
  s.pearson = stt > 0 && spp > 0 ? MetricValue{stp / std::sqrt(stt * spp), true} : MetricValue{0, false};
  s.r2 = stt > 0 ? MetricValue{1 - se / stt, true} : MetricValue{0, false};
  return s;
}

Interval percentile(std::vector<double> v, double level) {
  Interval iv;
  iv.defined_in = int64_t(v.size());
  if (v.empty()) return iv;
  iv.lo = quantile_linear(v, (1 - level) / 2), iv.hi = quantile_linear(v, (1 + level) / 2), iv.defined = true;
  return iv;
}

std::string num(const MetricValue& v, int d = 3) { return v.defined ? io::fixed(v.value, d) : "n/a"; }
std::string ci(const Interval& iv, int d = 3) { return iv.defined ? "[" + io::fixed(iv.lo, d) + ", " + io::fixed(iv.hi, d) + "]" : ""; }

// Points as isolated dots: a NaN between each pair leaves the line out (io/plot.h).
io::plot::Series dots(const std::string& name, const std::vector<double>& x, const std::vector<double>& y) {
  io::plot::Series s;
  s.name = name;
  for (size_t i = 0; i < x.size(); ++i) s.x.insert(s.x.end(), {x[i], NAN}), s.y.insert(s.y.end(), {y[i], NAN});
  return s;
}

}  // namespace

RegressionReport regression_report(const std::vector<double>& truth, const std::vector<double>& pred,
                                   const BootstrapOptions& b) {
  MC_CHECK(truth.size() == pred.size() && !truth.empty(), "regression report: ", truth.size(), " true and ",
           pred.size(), " predicted T-scores");
  RegressionReport r;
  r.n = int64_t(truth.size());
  r.truth = truth, r.pred = pred;
  const Scores s = scores_of(truth, pred);
  r.mae = s.mae, r.rmse = s.rmse, r.pearson = s.pearson, r.r2 = s.r2;
  double md = 0, sd = 0;
  for (size_t i = 0; i < truth.size(); ++i) md += pred[i] - truth[i];
  md /= double(truth.size());
  for (size_t i = 0; i < truth.size(); ++i) sd += (pred[i] - truth[i] - md) * (pred[i] - truth[i] - md);
  sd = truth.size() > 1 ? std::sqrt(sd / double(truth.size() - 1)) : 0;
  r.bias = md, r.loa_lo = md - 1.96 * sd, r.loa_hi = md + 1.96 * sd;
  if (b.resamples > 0) {
    Generator g(b.seed);
    std::vector<double> mae, rmse, pr, r2, bt(truth.size()), bp(truth.size());
    for (int64_t k = 0; k < b.resamples; ++k) {
      for (size_t i = 0; i < truth.size(); ++i) {
        const size_t j = size_t(g.randint(0, int64_t(truth.size())));
        bt[i] = truth[j], bp[i] = pred[j];
      }
      const Scores q = scores_of(bt, bp);
      mae.push_back(q.mae.value), rmse.push_back(q.rmse.value);
      if (q.pearson.defined) pr.push_back(q.pearson.value);
      if (q.r2.defined) r2.push_back(q.r2.value);
    }
    r.mae_ci = percentile(mae, b.level), r.rmse_ci = percentile(rmse, b.level);
    r.pearson_ci = percentile(pr, b.level), r.r2_ci = percentile(r2, b.level);
  }
  return r;
}

std::string regression_markdown(const RegressionReport& r) {
  std::string md = "\n## T-score regression\n\nThe model predicts the T-score; " + std::to_string(r.n) +
                   " subjects with a true T-score. Brackets hold the bootstrap interval.\n\n"
                   "| metric | value | 95% CI |\n|:--|--:|--:|\n";
  md += "| MAE (T units) | " + num(r.mae) + " | " + ci(r.mae_ci) + " |\n";
  md += "| RMSE (T units) | " + num(r.rmse) + " | " + ci(r.rmse_ci) + " |\n";
  md += "| Pearson r | " + num(r.pearson) + " | " + ci(r.pearson_ci) + " |\n";
  md += "| R^2 | " + num(r.r2) + " | " + ci(r.r2_ci) + " |\n";
  md += "\nBland-Altman: bias (predicted - true) " + io::fixed(r.bias, 3) + ", 95% limits of agreement [" +
        io::fixed(r.loa_lo, 3) + ", " + io::fixed(r.loa_hi, 3) + "].\n\n![Predicted vs true T-score](tscore_scatter.svg)\n\n"
        "![Bland-Altman](bland_altman.svg)\n\nThe tables below score the classes derived from the predicted T-score "
        "with the task's thresholds (one-hot scores: each AUC is that of a single operating point).\n";
  return md;
}

std::string regression_scatter_svg(const RegressionReport& r, const std::string& where) {
  io::plot::LineChart c;
  c.title = "Predicted vs true T-score (" + where + ")";
  double lo = 0, hi = 0;
  for (size_t i = 0; i < r.truth.size(); ++i)
    lo = std::min({lo, r.truth[i], r.pred[i]}), hi = std::max({hi, r.truth[i], r.pred[i]});
  lo = std::floor(lo - 0.5), hi = std::ceil(hi + 0.5);
  c.x = {"true T-score", lo, hi};
  c.y = {"predicted T-score", lo, hi};
  c.width = 640, c.height = 620;
  c.legend = io::plot::Legend::InsideBottomRight;
  c.series.push_back(dots("subjects (r " + num(r.pearson) + ", MAE " + num(r.mae) + ")", r.truth, r.pred));
  io::plot::Series ident;
  ident.name = "predicted = true";
  ident.x = {lo, hi}, ident.y = {lo, hi}, ident.dashed = true, ident.color = "#999999";
  c.series.push_back(ident);
  for (double t : r.thresholds) c.vlines.push_back({t, "T = " + io::general(t)});
  return io::plot::svg(c);
}

std::string bland_altman_svg(const RegressionReport& r, const std::string& where) {
  io::plot::LineChart c;
  c.title = "Bland-Altman (" + where + ")";
  c.x = {"mean of predicted and true T-score"};
  c.y = {"predicted - true T-score"};
  std::vector<double> mean, diff;
  double lo = 1e300, hi = -1e300;
  for (size_t i = 0; i < r.truth.size(); ++i) {
    mean.push_back((r.pred[i] + r.truth[i]) / 2), diff.push_back(r.pred[i] - r.truth[i]);
    lo = std::min(lo, mean.back()), hi = std::max(hi, mean.back());
  }
  c.series.push_back(dots("subjects", mean, diff));
  auto hline = [&](const std::string& name, double y, bool dashed) {
    io::plot::Series s;
    s.name = name, s.x = {lo, hi}, s.y = {y, y}, s.dashed = dashed;
    c.series.push_back(s);
  };
  hline("bias " + io::fixed(r.bias, 3), r.bias, false);
  hline("bias - 1.96 SD " + io::fixed(r.loa_lo, 3), r.loa_lo, true);
  hline("bias + 1.96 SD " + io::fixed(r.loa_hi, 3), r.loa_hi, true);
  return io::plot::svg(c);
}

}  // namespace mc::eval
