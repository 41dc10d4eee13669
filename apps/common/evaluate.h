// Running a model over a cache split: logits for every subject, in cache order.
#pragma once
#include <string>
#include <vector>

#include "engine/nn.h"

namespace mc {

class Communicator;

struct Predictions {
  std::vector<std::string> ids;
  std::vector<int64_t> indices;  // cache indices, in the order of the rows
  Tensor labels;  // i64 [N] (-1 = unknown), CPU
  Tensor logits;  // f32 [N, K], CPU
};

// Eval mode, no gradients, batches of `batch` on `dev`; shows a progress bar when `label` is set.
// With world > 1 this rank predicts its shard only (see gather_predictions).
Predictions predict_cache(nn::Module& model, const std::string& cache_path, int batch, Device dev,
                          const std::string& label = "", int rank = 0, int world = 1);
// Every rank's shard gathered, in cache order, each subject once (shards wrap around to equal
// lengths, so a few subjects appear on two ranks). Identical on every rank.
Predictions gather_predictions(Communicator& comm, const Predictions& mine, int64_t num_subjects);
// Post-hoc adjustment of the logits: losses/posthoc.h.

}  // namespace mc
