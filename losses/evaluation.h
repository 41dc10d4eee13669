// Evaluation of saved predictions (what mc_eval --predictions runs): read a CSV of per-sample
// scores, optionally apply post-hoc logit adjustment for one or several tau2, compute every
// metric with bootstrap intervals, and report them as a table and as JSON.
//
// CSV: a header naming an `id` column, a `label` column and K >= 2 score columns, either
// `score_0..score_{K-1}` (in that order) or class names (`normal,osteopenia,osteoporosis`).
// Labels are class indices or class names. Scores are logits or probabilities (ScoreKind).
#pragma once
#include <iosfwd>
#include <string>
#include <vector>

#include "losses/posthoc.h"

namespace mc {

struct Predictions {
  std::string source;  // file name, for messages
  std::vector<std::string> ids, class_names;
  std::vector<int64_t> labels;
  std::vector<double> scores;  // N x K, row-major
  int64_t size() const { return int64_t(labels.size()); }
  int64_t num_classes() const { return int64_t(class_names.size()); }
};
// Errors name the file, line and column (1-based): "preds.csv:7:3: score 'abc' ... ".
Predictions read_predictions_csv(const std::string& path);
Predictions parse_predictions_csv(std::istream& in, const std::string& name);

// Auto: probabilities when every score is in [0, 1] and every row sums to 1 within 1e-6.
enum class ScoreKind { Auto, Logits, Probabilities };
ScoreKind parse_score_kind(const std::string& s);  // "auto", "logits", "probabilities"
const char* score_kind_name(ScoreKind k);

struct EvalOptions {
  std::vector<double> tau2{0.0};  // one row of results per value
  std::vector<double> prior;      // training class counts or frequencies (needed if tau2 != 0)
  ScoreKind kind = ScoreKind::Auto;
  BootstrapOptions bootstrap;     // resamples = 0: no intervals
  bool roc = true;                // ROC curve points per class in each row
};

struct EvalRow {
  double tau2 = 0;
  ClassificationMetrics metrics;
  std::optional<BootstrapResult> ci;
  std::vector<RocCurve> roc;  // per class, when EvalOptions::roc
};

struct Evaluation {
  std::string source;
  std::vector<std::string> class_names;
  ScoreKind kind = ScoreKind::Logits;  // what the scores were taken to be
  std::vector<double> prior;           // normalised, empty when not given
  EvalOptions options;
  std::vector<EvalRow> rows;
};

// Metrics are computed on probabilities: softmax(logits - tau2 log prior), where the logits
// of probability inputs are log p. Probabilities with tau2 = 0 are used exactly as given.
Evaluation evaluate(const Predictions& p, const EvalOptions& o);

// Human-readable: metrics in percent with their intervals, per-class table, confusion matrix,
// notes; with several tau2 a sweep table (the paper's Table VI) first.
std::string format_report(const Evaluation& e);
// Fractions as sklearn gives them; undefined values and NaN are null.
std::string to_json(const Evaluation& e);

}  // namespace mc
