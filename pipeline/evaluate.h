// A checkpoint's evaluation report (what mc_eval --config writes): the model over one split's
// cache -> a PredictionTable -> eval/report.h's folder, with the training prior, the tau2 sweep
// of the config, the HU baseline from mc_prep's manifest and the run's training curves.
#pragma once
#include <string>
#include <vector>

#include "eval/report.h"
#include "pipeline/config.h"

namespace mc::pipeline {

struct ReportOptions {
  std::string checkpoint;  // "" = <output.dir>/best.safetensors
  std::string split = "test";
  std::string out_dir;     // "" = <output.dir>/report
  bool progress = false;   // progress bar while predicting
  bool tta = false;        // test-time augmentation by flips (pipeline/tta.h), compared on val
  // More checkpoints: with them (or with a cross-validation folder as `checkpoint`, or with
  // train.all_folds and no checkpoint: output.dir's folds) the report is the ensemble's, the
  // mean of the members' probabilities, each after its own adjustment and temperature, written
  // to <output.dir>/report_ensemble_<split> unless out_dir says otherwise.
  std::vector<std::string> ensemble;
};

// Loads the checkpoint into the configured model (strict), predicts the split's cache, takes the
// training prior from the train cache (or the checkpoint's state), and writes the report.
// Bootstrap: cfg.eval.bootstrap resamples with seed cfg.train.seed. Errors (missing checkpoint
// or cache, unknown split) throw mc::Error.
eval::Report write_model_report(const Config& cfg, const ReportOptions& o);

// A regression head's predicted T-scores (one score column of a table predicted from a cache,
// with its indices) against the cache's true ones, and the table of the classes both derive
// with the task's thresholds (one-hot scores), which the classification report then scores.
// Subjects without a true T-score are left out (counted in `unlabelled`).
eval::PredictionTable regression_derived_classes(const io::Task& task, const eval::PredictionTable& s, const BootstrapOptions& b,
                                           eval::RegressionReport& report, int64_t& unlabelled);

// A binary task's screening section without an operating point from validation: the positive
// class, its name and eval.target_sensitivity, with `note` saying why no threshold was chosen.
eval::ScreeningOptions screening_without_validation(const io::Task& task, const Config& cfg, std::string note);

}  // namespace mc::pipeline
