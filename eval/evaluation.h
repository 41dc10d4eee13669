// Evaluation of a PredictionTable (what mc_eval --predictions runs, and the core of every
// report): optionally post-hoc logit adjustment for one or several tau2, every metric with
// bootstrap intervals, reported as a table and as JSON.
#pragma once
#include <string>
#include <vector>

#include "eval/predictions.h"
#include "eval/sweep.h"
#include "io/json.h"

namespace mc::eval {

struct EvalOptions {
  std::vector<double> tau2{0.0};  // one row of results per value
  std::vector<double> prior;      // training class counts or frequencies (needed if tau2 != 0)
  BootstrapOptions bootstrap;     // resamples = 0: no intervals
  bool roc = true;                // ROC curve points per class in each row
};

struct Evaluation {
  std::string source;
  std::vector<std::string> class_names;
  ScoreKind kind = ScoreKind::Logits;  // what the scores were taken to be (PredictionTable::kind resolved)
  std::vector<double> prior;           // normalised, empty when not given
  EvalOptions options;
  std::vector<EvalRow> rows;
};

// Metrics are computed on probabilities: softmax(logits - tau2 log prior), where the logits
// of probability inputs are log p. Probabilities with tau2 = 0 are used exactly as given.
// Every label must be a class index (drop unknown labels first).
Evaluation evaluate(const PredictionTable& p, const EvalOptions& o);

// Human-readable: metrics in percent with their intervals, per-class table, confusion matrix,
// notes; with several tau2 a sweep table (the paper's Table VI) first.
std::string format_report(const Evaluation& e);
// Fractions as sklearn gives them; undefined values and NaN are null. evaluation_json is the
// document, for callers that embed it in a larger one; to_json its text.
io::Json evaluation_json(const Evaluation& e);
std::string to_json(const Evaluation& e);

}  // namespace mc::eval
