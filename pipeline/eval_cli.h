// mc_eval as a library call: its command line (CLI11) and what it runs.
//   mc_eval --config FILE.yaml [key=value ...] [--checkpoint W] [--split test|val|train] [--out DIR]
//   mc_eval --predictions FILE.csv [--tau2 X[,Y,...]] [--prior p0,p1,...] [--bootstrap 1000]
//           [--seed S] [--level 0.95] [--scores auto|logits|probabilities] [--json OUT.json] [--out DIR]
//           binary tables: [--val-predictions VAL.csv] [--positive CLASS] [--target-sensitivity 0.9]
#pragma once
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "eval/evaluation.h"
#include "pipeline/evaluate.h"

namespace mc::pipeline {

struct EvalCommand {
  bool help = false;
  std::string config, predictions, json, out;
  std::vector<std::string> overrides;  // key=value, with --config
  ReportOptions report;                // --checkpoint, --split, --no-progress (with --config)
  eval::EvalOptions eval;                    // --tau2, --prior, --bootstrap, ... (with --predictions)
  std::optional<eval::ScoreKind> scores;     // --scores; default: the CSV's kind found by evaluate()
  // Binary tables (eval/screening.h's saved_screening_options): the validation predictions the
  // target-sensitivity threshold is chosen on, the positive class ("" = the second) and the target.
  std::string val_predictions, positive;
  double target_sensitivity = 0.9;
};
// Usage errors (mc::Error) name the option: a bad value, a --predictions option with --config.
EvalCommand parse_eval_command(const std::vector<std::string>& args);
std::string eval_usage();
// Writes the report (--config) or evaluates the CSV (--predictions) and prints the tables on
// `out`. Problems with the run itself throw mc::Error.
void run_eval(const EvalCommand& cmd, std::ostream& out);

}  // namespace mc::pipeline
