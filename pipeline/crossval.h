// Cross-validation as one run (mc_train --folds K, or train.all_folds: true): every fold trained
// in turn from one config into <output.dir>/fold_<k>/, then ONE report of the pooled
// out-of-fold predictions in <output.dir>/report/ (eval/report.h, with eval/crossval.h's
// per-fold table and mean +- SD).
//
// The subjects: mc_prep's fold caches (<cache_dir>/fold0..fold<K-1>.safetensors, written with
// data.split.mode kfold) when they are there, else the train and val caches pooled and dealt
// into K stratified folds (io/split.h, seed train.seed); the test cache is then left alone, a
// held-out split for the fold ensemble (mc_eval). Fold k trains on the other folds but one:
// fold k is out of fold (its data.test_cache), fold k+1 (mod K) validates (model selection,
// temperature), the rest train, as data.split.fold describes. Each fold's caches are copies
// of its subjects' cubes in fold_<k>/data/ (train, val, oof .safetensors).
//
// Resumable per fold: a fold with fold_<k>/done.json is finished and not trained again; one
// with a last.safetensors resumes from it; a rerun with another config in the same output.dir
// is an error, and a rerun of a finished run with its report in place does nothing.
//
// One fold per process (or GPU): with only_fold = k just fold k is trained, so K processes can
// train the K folds at once into the same output.dir (each fold writes only into its own
// fold_<k>/; the run's config.yaml and crossval.json are the same bytes from every process,
// written atomically). The process that finds every fold finished writes the pooled report. The K best checkpoints are an ensemble: fold_checkpoints() lists them for
// mc_predict --checkpoint DIR and mc_eval (which evaluates the ensemble on a held-out split).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "eval/report.h"
#include "pipeline/config.h"
#include "pipeline/train.h"

namespace mc::pipeline {

struct FoldPlan {
  struct Subject {
    std::string cache;  // the cache it comes from
    int64_t index = 0;  // its row there
    std::string id;
    int64_t label = -1;
    int fold = 0;
  };
  int folds = 0;
  std::vector<Subject> subjects;
  std::string source;  // where the subjects and their folds come from, in words
};
// Throws when the caches are missing, disagree (volume shape, task), or hold an id twice.
FoldPlan plan_folds(const Config& cfg);

// Fold k's run config: output.dir/fold_<k>, its three caches, train.all_folds off.
Config fold_config(const Config& cfg, int k);

struct CrossValSummary {
  std::string run_dir, report_dir;
  std::vector<std::string> checkpoints;  // best.safetensors of each finished fold
  std::vector<int> trained, resumed, skipped;  // folds by what this call did with them
  std::vector<int> waiting;  // with only_fold: the other folds not finished yet (no report yet)
  bool interrupted = false;  // a fold stopped early: no report yet, rerun to continue
  int64_t pooled_subjects = 0;
  // The pooled out-of-fold report, when this call wrote it: not when interrupted, nor when every
  // fold was finished before and report/report.json is there (a rerun is then a no-op).
  eval::Report report;
};
// only_fold: -1 trains every unfinished fold in turn; k in [0, K) trains fold k alone (an error
// names the range otherwise).
CrossValSummary train_folds(const Config& cfg, const TrainHooks& hooks = {}, int only_fold = -1);

// Is `dir` a cross-validation run folder (it has crossval.json)?
bool is_crossval_dir(const std::string& dir);
// The best.safetensors of each fold of a cross-validation run folder, in fold order; an error
// names a fold without one (the run is not finished).
std::vector<std::string> fold_checkpoints(const std::string& dir);

}  // namespace mc::pipeline
