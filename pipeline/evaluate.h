// A checkpoint's evaluation report (what mc_eval --config writes): the model over one split's
// cache -> a PredictionTable -> eval/report.h's folder, with the training prior, the tau2 sweep
// of the config, the HU baseline from mc_prep's manifest and the run's training curves.
#pragma once
#include <string>

#include "eval/report.h"
#include "pipeline/config.h"

namespace mc {

struct ReportOptions {
  std::string checkpoint;  // "" = <output.dir>/best.safetensors
  std::string split = "test";
  std::string out_dir;     // "" = <output.dir>/report
  bool progress = false;   // progress bar while predicting
  bool tta = false;        // test-time augmentation by flips (pipeline/tta.h), compared on val
};

// Loads the checkpoint into the configured model (strict), predicts the split's cache, takes the
// training prior from the train cache (or the checkpoint's state), and writes the report.
// Bootstrap: cfg.eval.bootstrap resamples with seed cfg.train.seed. Errors (missing checkpoint
// or cache, unknown split) throw mc::Error.
Report write_model_report(const Config& cfg, const ReportOptions& o);

}  // namespace mc
