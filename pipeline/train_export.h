// Two aids of mc_train around its loop, both cheap:
//
//  * The start check: on the first training step the pooled features (the classifier's input)
//    of the batch are read once; when they do not vary across the batch the network has started
//    dead (only the classifier bias gets a gradient: a plateau at the class prior), and the
//    run prints a warning naming the cause and the fix instead of training silently on it.
//
//  * The export hooks (mc_train --export-init / --export-steps, off by default) for checking a
//    run against PyTorch (benchmarks/pytorch/train_parity.py): the weights training starts
//    from, and per step the batch our loader drew and how it was augmented, with the step's
//    learning rate and loss. The step log is JSON lines:
//      line 1   {"format": "medconv-train-steps", "version": 1, "config": {key: YAML value},
//                "train_cache", "val_cache", "class_counts", "steps_per_epoch", "volume_shape",
//                "init_weights", "dtype" (float32, or float64 with --float64)}
//      then     {"epoch", "step" (in the epoch, from 0), "global_step" (from 0), "lr", "loss",
//                "indices" (cache indices), "labels",
//                "augment": per sample {"A": 9 floats (row-major, out[o] = in[c + A (o - c)],
//                 kernels/augment.h), "interpolate", "border", "scale", "shift", "noise_std"}
//                 or [] when augmentation is off}
//      and after each validation {"epoch", "validation": {"loss", "accuracy",
//                "balanced_accuracy", "auc_macro"}}
//    Exporting reads each step's loss as it is taken (train.sync_every = 1: one host wait per
//    step); nothing else changes, so the numbers are those of the run without the export.
#pragma once
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "engine/tensor.h"
#include "kernels/augment.h"
#include "pipeline/config.h"

namespace mc::pipeline {

// How much the rows of pooled [N, F] differ: the largest per-feature standard deviation over
// the batch (biased), beside the mean absolute value for scale.
struct FeatureSpread {
  int64_t batch = 0, features = 0;
  double max_std = 0, mean_abs = 0;
  // Every feature the same for every sample (to max_std <= 1e-4 * max(1, mean_abs): rounding
  // noise across a batch, as PyTorch's 3e-5 in the case this check was written for, counts as
  // constant). Never true for a batch of one, whose spread says nothing.
  bool constant() const { return batch >= 2 && max_std <= 1e-4 * (mean_abs > 1 ? mean_abs : 1.0); }
};
FeatureSpread feature_spread(const Tensor& pooled);

// The warning for a constant start: what was seen, the likely cause for this config and volume
// shape [C, D, H, W], and the fix.
std::string dead_start_warning(const FeatureSpread& s, const Config& cfg, const Shape& volume);

struct StepRecord {
  int64_t epoch = 0, step = 0, global_step = 0;
  double lr = 0, loss = 0;
  std::vector<int64_t> indices, labels;
  std::vector<kernels::AugmentParams> augment;
};

struct ValidationRecord {
  int64_t epoch = 0;  // 1-based, as the metrics log
  double loss = 0, accuracy = 0, balanced_accuracy = 0, auc_macro = 0;
};

// Writes the step log (format above). Errors name the file.
class StepExporter {
 public:
  StepExporter(const std::string& path, const Config& cfg, const std::string& train_cache,
               const std::string& val_cache, const std::vector<int64_t>& class_counts,
               int64_t steps_per_epoch, const Shape& volume, const std::string& init_weights,
               const std::string& dtype);
  void step(const StepRecord& r);
  void validation(const ValidationRecord& r);

 private:
  void line(const std::string& text);
  std::string path_;
  std::ofstream out_;
};

}  // namespace mc::pipeline
