// Cross-validation's report pieces (mc_train --folds K): the pooled out-of-fold table (every
// subject predicted once, by the fold model that never saw it) and the per-fold metrics with
// their mean and SD, a section of the ordinary report (eval/report.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/metrics.h"
#include "eval/predictions.h"
#include "io/json.h"

namespace mc::eval {

struct FoldResult {
  int fold = 0;
  int64_t n = 0;                 // out-of-fold subjects scored
  ClassificationMetrics metrics;  // on its out-of-fold subjects (regression: derived classes)
  double mae = NAN;              // regression heads: T-score MAE
  std::string checkpoint;        // the fold's model
  int64_t best_epoch = -1;
  double temperature = 1;        // fitted on the fold's validation split (1 = none)
};

struct CrossValidation {
  std::vector<FoldResult> folds;
  std::string pooling;  // how the pooled table was made, in words
};

// The fold tables one after another (same classes and score kind); an id met twice, or in
// two folds, is an error naming it: each subject must be predicted exactly once.
PredictionTable pool_fold_tables(const std::vector<PredictionTable>& folds);

// Sample mean and SD (n - 1) of the defined values; SD NaN with fewer than two.
struct MeanSd {
  double mean = NAN, sd = NAN;
  int64_t n = 0;
};
MeanSd mean_sd(const std::vector<double>& v);

// The metrics tabulated per fold: accuracy, balanced accuracy, macro AUC, weighted F1 (and MAE
// for regression), one row per fold and a mean +- SD row.
std::string crossval_markdown(const CrossValidation& cv);
std::string crossval_terminal(const CrossValidation& cv);
io::Json crossval_json(const CrossValidation& cv);

}  // namespace mc::eval
