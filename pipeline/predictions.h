// A model over a cache split: logits for every subject, in cache order, as a PredictionTable
// (eval/predictions.h), on one rank or gathered over several.
#pragma once
#include <string>

#include "engine/nn.h"
#include "eval/predictions.h"
#include "pipeline/config.h"
#include "pipeline/tta.h"

namespace mc {
class Communicator;
}  // namespace mc

namespace mc::io {
class Cache;
}  // namespace mc::io

namespace mc::pipeline {

struct LoadedModel;

// The names of a model's K outputs over `cache`: its task's classes (mc_prep stores them),
// {"tscore"} for one output, the WHO names for three outputs over a cache without a task
// (written before tasks were data), else "0".."K-1".
std::vector<std::string> cache_class_names(const io::Cache& cache, int64_t K);

// Eval mode, no gradients, batches of `batch` on `dev`; shows a progress bar when `label` is set.
// With `flips`, each row's outputs are the mean over those views (pipeline/tta.h).
// Rows in cache order, kind Logits, class names from the cache's task (cache_class_names),
// `indices` the cache rows. With world > 1 this rank predicts its shard only (see
// gather_predictions).
eval::PredictionTable predict_cache(nn::Module& model, const std::string& cache_path, int batch, Device dev,
                              const std::string& label = "", int rank = 0, int world = 1,
                              const std::vector<Flip>& flips = {});
// Every rank's shard gathered, in cache order, each subject once (shards wrap around to equal
// lengths, so a few subjects appear on two ranks). Identical on every rank.
eval::PredictionTable gather_predictions(Communicator& comm, const eval::PredictionTable& mine, int64_t num_subjects);

// The loaded model over one split's cache (cfg.data: "test", "val" or "train"), with the
// config's batch size; errors name the split and the cache (missing, wrong channel count).
eval::PredictionTable predict_split(LoadedModel& m, const Config& cfg, const std::string& split, bool progress,
                              const std::vector<Flip>& flips = {});

}  // namespace mc::pipeline
