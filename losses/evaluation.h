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

// Not "Predictions": apps/common/evaluate.h has a struct of that name (a model's logits over a
// cache), and two classes of one name in one program break the one-definition rule.
struct PredictionTable {
  std::string source;  // file name, for messages
  std::vector<std::string> ids, class_names;
  std::vector<int64_t> labels;
  std::vector<double> scores;  // N x K, row-major
  int64_t size() const { return int64_t(labels.size()); }
  int64_t num_classes() const { return int64_t(class_names.size()); }
};

// Errors name the file, line and column (1-based): "preds.csv:7:3: score 'abc' ... ".
PredictionTable read_predictions_csv(const std::string& path);
PredictionTable parse_predictions_csv(std::istream& in, const std::string& name);
// The CSV text parse_predictions_csv reads back exactly: id,label,score_0..score_{K-1}, labels
// as indices, scores as the shortest decimals that round-trip. Ids may not hold ',' '"' or
// line breaks (the reader does not unquote them).
std::string predictions_csv(const PredictionTable& p);

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
Evaluation evaluate(const PredictionTable& p, const EvalOptions& o);

// Human-readable: metrics in percent with their intervals, per-class table, confusion matrix,
// notes; with several tau2 a sweep table (the paper's Table VI) first.
std::string format_report(const Evaluation& e);
// Fractions as sklearn gives them; undefined values and NaN are null.
std::string to_json(const Evaluation& e);

// JSON pieces for callers that wrap to_json in a larger document: the shortest number that
// reads back exactly (null for NaN and infinities), and a quoted, escaped string.
std::string json_number(double v);
std::string json_string(const std::string& s);

// ---- threshold rules on one feature (screening baselines such as "median HU < 90.25") ----
// Classes follow the feature upwards: x < t[0] -> 0, t[0] <= x < t[1] -> 1, ...,
// x >= t[K-2] -> K-1. Thresholds are non-decreasing; +-infinity leaves a class empty.
int64_t threshold_class(double x, const std::vector<double>& thresholds);
// The K-1 thresholds that maximise balanced accuracy on (x, labels), over cut points at the
// midpoints between consecutive distinct values (and +-infinity). Exact, by dynamic programming
// over the sorted values; ties go to the lowest cut points. Labels in [0, K); NaN x are skipped.
std::vector<double> fit_thresholds(const std::vector<double>& x, const std::vector<int64_t>& labels,
                                   int64_t K);

}  // namespace mc
