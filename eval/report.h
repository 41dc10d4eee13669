// The evaluation report behind mc_eval: a model's predictions on one split, every metric with
// its bootstrap interval, the per-class table, the confusion matrix, the post-hoc tau2 sweep
// (the paper's Table VI) and a screening baseline on the vertebra's HU, written into one folder:
//   report.md, report.json, predictions.csv (id,label,score_0.. = logits; mc_eval --predictions
//   reads it), roc.svg, confusion.svg, tau2_sweep.svg, reliability.svg (calibration, before and
//   after temperature scaling: eval/calibration.h; not for a regression head's derived classes),
//   training_curves.svg (from the run's metrics.csv, when there is one); for two classes also the
//   screening section (eval/screening.h) and pr.svg, the precision-recall curve.
// A checkpoint's report (the model run over a cache first) is pipeline/evaluate.h's.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "eval/calibration.h"
#include "eval/crossval.h"
#include "eval/evaluation.h"
#include "eval/hu_baseline.h"
#include "eval/regression.h"
#include "eval/screening.h"

namespace mc::eval {

struct ReportRun {  // what was evaluated, for the summary
  std::string title;       // "resnet10 on the test split"
  std::string source;      // checkpoint, or predictions CSV
  std::string model;       // "resnet10 (1 input channel, 3 classes)"; "" in --predictions mode
  int64_t epoch = -1;      // of the checkpoint, when known
  std::string split, cache, device;
  std::vector<double> prior;  // training class counts (or frequencies); empty: unknown
  std::string prior_source;
  double tau2 = 0;            // the headline's post-hoc adjustment
  // Set when the table's scores were adjusted before it was made (each fold or ensemble member
  // with its own prior): what was done, shown instead of "none (tau2 = 0)".
  std::string adjusted_upstream;
  std::vector<double> sweep;  // tau2 values of the sweep (empty: no sweep)
  std::string metrics_csv;    // the run log for the training curves ("" = none)
  // Temperature scaling fitted on validation (eval/calibration.h): 1 = none. The calibration
  // section shows the split before and after it.
  double temperature = 1;
  std::string temperature_source;  // where it came from ("" = no temperature)
  int64_t calibration_bins = 15;
  // Test-time augmentation: what was averaged and how it did on validation (Markdown), "" = none.
  std::string tta, tta_validation;
  std::vector<std::string> notes;  // caveats found while gathering the above
  // Binary tasks: the screening section's positive class and validation-chosen threshold;
  // unset for a binary table: saved_screening_options without validation (the second class).
  std::optional<ScreeningOptions> screening;
  // Regression heads: the T-score report; the table then holds the derived classes.
  std::optional<RegressionReport> regression;
  // A cross-validation run's pooled out-of-fold report: the folds' own metrics, mean +- SD.
  std::optional<CrossValidation> crossval;
};

struct Report {
  ReportRun run;
  Evaluation headline;             // one row, at run.tau2, with ROC curves
  std::optional<Evaluation> sweep; // one row per sweep value
  HuBaseline hu;
  // Calibration of the headline probabilities (at run.tau2) as they are, and after dividing the
  // adjusted scores by run.temperature (when it is not 1). Unset for a regression head: its
  // derived classes are hard calls, with no probabilities to calibrate.
  std::optional<CalibrationResult> calibration;
  std::optional<CalibrationResult> calibration_scaled;
  std::optional<ScreeningReport> screening;  // binary tables only, at the headline's tau2
  std::optional<RegressionReport> regression;  // run.regression, with tscore_scatter.svg and bland_altman.svg
  std::vector<std::string> notes;
  std::string dir, markdown, json, predictions, roc, confusion, sweep_chart, training_curves, reliability, pr, scatter,
      bland_altman;
  std::string terminal;  // the tables mc_eval prints
};

// Evaluates `table` (its kind says logits or probabilities) as `run` says and writes the folder;
// with write_predictions also predictions.csv.
Report write_report(const PredictionTable& table, ReportRun run, const BootstrapOptions& bootstrap,
                    HuBaseline hu, const std::string& out_dir, bool write_predictions);

// mc_eval --predictions ... --out DIR: the report for saved scores (no HU baseline and no
// training curves; several --tau2 values make the sweep, the first is the headline). A binary
// table's screening section follows `screening` (eval/screening.h's saved_screening_options;
// unset: its defaults, no validation threshold).
Report write_predictions_report(const PredictionTable& p, const EvalOptions& o, const std::string& out_dir,
                                std::optional<ScreeningOptions> screening = std::nullopt);

// The screening section as mc_eval prints it: positive class, ROC and PR AUC with intervals, the
// operating points and the notes (why a point is missing).
std::string format_screening(const ScreeningReport& s);

}  // namespace mc::eval
