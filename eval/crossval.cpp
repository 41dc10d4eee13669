#include "eval/crossval.h"

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "engine/check.h"
#include "io/text.h"

namespace mc::eval {
namespace {

struct Column {
  const char* name;
  const char* label;
  double scale;  // 100: shown in percent, as the rest of the report
};
const std::vector<Column> kClassColumns = {{"accuracy", "accuracy", 100},
                                           {"balanced_accuracy", "balanced accuracy", 100},
                                           {"auc_macro", "macro AUC", 100},
                                           {"f1_weighted", "weighted F1", 100}};

double value_of(const FoldResult& f, const std::string& name) {
  if (name == "mae") return f.mae;
  for (const auto& [n, v] : f.metrics.named())
    if (n == name) return v.defined ? v.value : NAN;
  return NAN;
}

bool regression(const CrossValidation& cv) {
  for (const FoldResult& f : cv.folds)
    if (std::isfinite(f.mae)) return true;
  return false;
}

std::vector<Column> columns(const CrossValidation& cv) {
  std::vector<Column> c = kClassColumns;
  if (regression(cv)) c.insert(c.begin(), Column{"mae", "T-score MAE", 1});
  return c;
}

std::string shown(double v, double scale) { return std::isfinite(v) ? io::fixed(v * scale, scale == 1 ? 3 : 2) : "n/a"; }

}  // namespace

PredictionTable pool_fold_tables(const std::vector<PredictionTable>& folds) {
  MC_CHECK(!folds.empty(), "cross-validation: no folds to pool");
  PredictionTable p;
  p.class_names = folds[0].class_names;
  p.kind = folds[0].kind;
  p.source = "out-of-fold predictions of " + std::to_string(folds.size()) + " folds";
  std::map<std::string, size_t> seen;  // id -> fold
  for (size_t f = 0; f < folds.size(); ++f) {
    const PredictionTable& t = folds[f];
    MC_CHECK(t.class_names == p.class_names, "cross-validation: fold ", f, " (", t.source, ") has classes ",
             io::joined(t.class_names), ", fold 0 ", io::joined(p.class_names));
    MC_CHECK(t.kind == p.kind, "cross-validation: fold ", f, " has another kind of scores than fold 0");
    const int64_t K = t.num_classes();
    MC_CHECK(int64_t(t.scores.size()) == t.size() * K && int64_t(t.ids.size()) == t.size(), "cross-validation: fold ",
             f, " (", t.source, ") is not a table of ", K, " scores per subject");
    for (int64_t i = 0; i < t.size(); ++i) {
      const std::string& id = t.ids[size_t(i)];
      const auto [it, fresh] = seen.emplace(id, f);
      MC_CHECK(fresh, "cross-validation: subject '", id, "' is predicted by fold ", it->second, " and again by fold ", f,
               ": each subject must be out of fold exactly once");
      p.ids.push_back(id);
      p.labels.push_back(t.labels[size_t(i)]);
      p.scores.insert(p.scores.end(), t.scores.begin() + i * K, t.scores.begin() + (i + 1) * K);
    }
  }
  return p;
}

MeanSd mean_sd(const std::vector<double>& v) {
  MeanSd r;
  double s = 0;
  for (double x : v)
    if (std::isfinite(x)) s += x, ++r.n;
  if (r.n == 0) return r;
  r.mean = s / double(r.n);
  if (r.n < 2) return r;
  double q = 0;
  for (double x : v)
    if (std::isfinite(x)) q += (x - r.mean) * (x - r.mean);
  r.sd = std::sqrt(q / double(r.n - 1));
  return r;
}

std::string crossval_markdown(const CrossValidation& cv) {
  const auto cols = columns(cv);
  std::string md = "\n## Cross-validation: " + std::to_string(cv.folds.size()) + " folds\n\n" + cv.pooling +
                   " Each fold's own metrics on its out-of-fold subjects, and their mean +- SD over the folds (the "
                   "spread from one data split to another, which the pooled intervals above do not show):\n\n";
  md += "| fold | n | best epoch | T |";
  for (const Column& c : cols) md += std::string(" ") + c.label + " |";
  md += "\n|:--|--:|--:|--:|";
  for (size_t i = 0; i < cols.size(); ++i) md += "--:|";
  md += "\n";
  for (const FoldResult& f : cv.folds) {
    md += "| " + std::to_string(f.fold) + " | " + std::to_string(f.n) + " | " + std::to_string(f.best_epoch) + " | " +
          io::general(f.temperature) + " |";
    for (const Column& c : cols) md += " " + shown(value_of(f, c.name), c.scale) + " |";
    md += "\n";
  }
  md += "| mean +- SD | | | |";
  for (const Column& c : cols) {
    std::vector<double> v;
    for (const FoldResult& f : cv.folds) v.push_back(value_of(f, c.name));
    const MeanSd m = mean_sd(v);
    md += " " + shown(m.mean, c.scale) + " +- " + shown(m.sd, c.scale) + " |";
  }
  return md + "\n";
}

std::string crossval_terminal(const CrossValidation& cv) {
  std::string s = "cross-validation, mean +- SD over " + std::to_string(cv.folds.size()) + " folds:";
  for (const Column& c : columns(cv)) {
    std::vector<double> v;
    for (const FoldResult& f : cv.folds) v.push_back(value_of(f, c.name));
    const MeanSd m = mean_sd(v);
    s += std::string(" ") + c.label + " " + shown(m.mean, c.scale) + " +- " + shown(m.sd, c.scale) + ";";
  }
  s.back() = '\n';
  return s;
}

io::Json crossval_json(const CrossValidation& cv) {
  auto num = [](double v) { return std::isfinite(v) ? io::Json(v) : io::Json(); };
  io::Json folds = io::Json::array();
  for (const FoldResult& f : cv.folds) {
    io::Json m = io::Json::object();
    for (const Column& c : columns(cv)) m[c.name] = num(value_of(f, c.name));
    folds.push_back({{"fold", f.fold}, {"n", f.n}, {"checkpoint", f.checkpoint}, {"best_epoch", f.best_epoch},
                     {"temperature", f.temperature}, {"metrics", std::move(m)}});
  }
  io::Json summary = io::Json::object();
  for (const Column& c : columns(cv)) {
    std::vector<double> v;
    for (const FoldResult& f : cv.folds) v.push_back(value_of(f, c.name));
    const MeanSd m = mean_sd(v);
    summary[c.name] = {{"mean", num(m.mean)}, {"sd", num(m.sd)}, {"n", m.n}};
  }
  return {{"folds", std::move(folds)}, {"mean_sd", std::move(summary)}, {"pooling", cv.pooling}};
}

}  // namespace mc::eval
