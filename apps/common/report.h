// The evaluation report behind mc_eval: a model's predictions on one split, every metric with
// its bootstrap interval, the per-class table, the confusion matrix, the post-hoc tau2 sweep
// (the paper's Table VI) and a screening baseline on the vertebra's HU, written into one folder:
//   report.md, report.json, predictions.csv (id,label,score_0.. = logits; mc_eval --predictions
//   reads it), roc.svg, confusion.svg, tau2_sweep.svg, training_curves.svg (from the run's
//   metrics.csv, when there is one).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "pipeline/config.h"
#include "losses/evaluation.h"

namespace mc {

// ---- the HU screening baseline ----
// From mc_prep's manifest (columns id, label, split, mean_hu, median_hu, status): rules on the
// L1's HU, fitted on the train split only and scored on the evaluated split.
struct HuRule {
  std::string name;      // for people: "median HU < 90.25 -> osteoporosis (TotalSegmentator)"
  std::string key;       // for JSON: "totalsegmentator_median_hu"
  std::string feature;   // "median_hu" or "mean_hu"
  std::vector<double> thresholds;  // threshold_class() cut points
  bool binary = false;   // osteoporosis vs rest only (no osteopenia / normal split)
  ClassificationMetrics metrics;   // 3 classes, or 2 (osteoporosis, rest) when binary
  std::optional<BootstrapResult> ci;
  // Threshold-free: AUC of -feature for osteoporosis vs rest, with its interval.
  MetricValue auc_osteoporosis;
  Interval auc_osteoporosis_ci;
};

struct HuBaseline {
  std::string manifest;
  bool available = false;
  std::string note;  // why it is missing, or caveats
  int64_t n_train = 0, n_eval = 0;
  std::vector<std::string> eval_ids;
  std::vector<HuRule> rules;
};

// The spine report's cut-off: median HU of the vertebra below it flags osteoporosis
// (TotalSegmentator's totalseg_spine_report.py, non-contrast CT).
inline constexpr double kTotalSegmentatorHuThreshold = 90.25;

// Never throws for a missing or unusable manifest: `available` is false and `note` says why.
HuBaseline hu_baseline(const std::string& manifest, const std::string& split,
                       const BootstrapOptions& bootstrap);

// ---- the report ----
struct ReportRun {  // what was evaluated, for the summary
  std::string title;       // "resnet10 on the test split"
  std::string source;      // checkpoint, or predictions CSV
  std::string model;       // "resnet10 (1 input channel, 3 classes)"; "" in --predictions mode
  int64_t epoch = -1;      // of the checkpoint, when known
  std::string split, cache, device;
  std::vector<double> prior;  // training class counts (or frequencies); empty: unknown
  std::string prior_source;
  double tau2 = 0;            // the headline's post-hoc adjustment
  std::vector<double> sweep;  // tau2 values of the sweep (empty: no sweep)
  std::string metrics_csv;    // the run log for the training curves ("" = none)
  std::vector<std::string> notes;  // caveats found while gathering the above
};

struct Report {
  ReportRun run;
  Evaluation headline;             // one row, at run.tau2, with ROC curves
  std::optional<Evaluation> sweep; // one row per sweep value
  HuBaseline hu;
  std::vector<std::string> notes;
  std::string dir, markdown, json, predictions, roc, confusion, sweep_chart, training_curves;
  std::string terminal;  // the tables mc_eval prints
};

struct ReportOptions {
  std::string checkpoint;  // "" = <output.dir>/best.safetensors
  std::string split = "test";
  std::string out_dir;     // "" = <output.dir>/report
  bool progress = false;   // progress bar while predicting
};

// mc_eval --config: loads the checkpoint into the configured model (strict), predicts the
// split's cache, takes the training prior from the train cache (or the checkpoint's state),
// and writes everything above into the folder. Bootstrap: cfg.eval.bootstrap resamples with
// seed cfg.train.seed. Errors (missing checkpoint or cache, unknown split) throw mc::Error.
Report write_model_report(const Config& cfg, const ReportOptions& o);

// mc_eval --predictions ... --out DIR: the same report for saved scores (no HU baseline and no
// training curves; several --tau2 values make the sweep, the first is the headline).
Report write_predictions_report(const PredictionTable& p, const EvalOptions& o, const std::string& out_dir);

// The core both share: evaluates `table` (logits) as `run` says and writes the folder.
Report write_report(const PredictionTable& table, ReportRun run, const BootstrapOptions& bootstrap,
                    HuBaseline hu, const std::string& out_dir, bool write_predictions,
                    ScoreKind kind = ScoreKind::Logits);

}  // namespace mc
