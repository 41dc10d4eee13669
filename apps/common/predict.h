// A trained model outside training: the checkpoint's config, the model with its weights, the
// training prior for post-hoc adjustment, and predictions for raw scans preprocessed exactly as
// mc_prep does (what mc_predict runs; mc_eval's report loads its model here too).
#pragma once
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/nn.h"
#include "pipeline/config.h"
#include "io/preprocess.h"

namespace mc {

// The run config behind a checkpoint: config_path (+ overrides) when given, else the resolved
// config mc_train stored in the metadata of <tag>.state.safetensors beside the weights.
Config checkpoint_config(const std::string& checkpoint, const std::string& config_path,
                         const std::vector<std::string>& overrides = {});

struct LoadedModel {
  std::unique_ptr<nn::Module> model;  // eval mode, on `device`
  Device device = Device::cpu();
  std::string checkpoint;
  int64_t epoch = -1;  // from the weights' metadata when mc_train wrote them, else -1
  int64_t in_chans = 1, num_classes = 3;
};
// build_model(cfg) without its pretrained import (the checkpoint replaces every tensor), then a
// strict load: every tensor must be there with its shape; "module." prefixes (DataParallel,
// MedicalNet) are stripped. Errors name the checkpoint and what does not fit.
LoadedModel load_model(const Config& cfg, const std::string& checkpoint);

// Training class counts for post-hoc logit adjustment, from the "class_counts" metadata of the
// checkpoint's state file ("20,110,181") or from the train cache of cfg.data, in that order
// (cache_first: the other way round). counts is empty when neither is there, or when a class has
// no samples (log 0): `source` then says why, and callers skip the adjustment.
struct TrainingPrior {
  std::vector<int64_t> counts;
  std::string source;
  bool usable() const { return !counts.empty(); }
};
TrainingPrior training_prior(const Config& cfg, const std::string& checkpoint, bool cache_first = false);

// Display names of the model's classes: io/labels.h's when there are kNumClasses, else "0", "1"...
std::vector<std::string> class_names_for(int64_t num_classes);

// ---- raw scans ----
struct ScanInput {
  std::string id, ct, seg;   // seg empty: ct is an L1 crop (PreprocessOptions::precropped)
  bool binary_mask = false;  // seg is a one-structure mask (any non-zero voxel), not a label map
};
// Subjects of a folder by mc_prep's pairing rule (io/prep.h); a subject without a mask comes
// back with seg empty unless `precropped`.
std::vector<ScanInput> folder_inputs(const std::string& ct_dir, const std::string& seg_dir,
                                     const PreprocessOptions& opts);
// The model input [1, C, V, V, V] f32, as the model saw it in training: preprocess_files(), then
// rounded through f16 because mc_prep's caches store f16. Errors name the subject and its files.
Tensor prepare_input(const ScanInput& in, const PreprocessOptions& opts);

struct ScanPrediction {
  std::string id;
  int64_t cls = -1;
  std::vector<double> logits, probabilities;
  double tau2 = 0;   // the adjustment applied to the probabilities
  std::string note;  // why no adjustment was applied, when one was asked for
};
// Eval mode, no gradients. probabilities = softmax(logits - tau2 * log prior); with tau2 != 0
// and no usable prior they are the plain softmax and `note` says so.
ScanPrediction predict_scan(LoadedModel& m, const Tensor& input, const std::string& id,
                            const TrainingPrior& prior, double tau2);

std::string prediction_json(const ScanPrediction& p, const std::vector<std::string>& names, bool raw);
std::string prediction_csv_header(const std::vector<std::string>& names, bool raw);
std::string prediction_csv_row(const ScanPrediction& p, const std::vector<std::string>& names, bool raw);

// The model over one split's cache (cfg.data), in cache order, with the config's batch size.
struct SplitLogits {
  std::string cache;
  std::vector<std::string> ids;
  std::vector<int64_t> labels;  // -1 = unknown
  std::vector<double> logits;   // N x K, row-major
  int64_t num_classes = 0;
};
SplitLogits predict_split(LoadedModel& m, const Config& cfg, const std::string& split,
                          bool progress);

// ---- the command line of mc_predict (here, so tests run it without a process) ----
struct PredictCommand {
  bool help = false;
  std::string checkpoint, config, ct, seg, crop, ct_dir, seg_dir, out;
  std::vector<std::string> overrides;  // key=value, applied to the config
  std::optional<int64_t> label_id;
  std::optional<double> tau2;  // default: the config's posthoc.tau2
  bool raw = false;
  bool progress = true;
};
// Throws mc::Error naming the bad argument.
PredictCommand parse_predict_command(const std::vector<std::string>& args);
std::string predict_usage();
// JSON (one scan) or CSV (a folder) on `out` or into cmd.out; notes and progress on `err`.
// Returns the exit status: 0, or 1 when some scans of a folder failed (each named on `err`).
// Problems with the run itself (missing files, bad checkpoint) throw mc::Error.
int run_predict(const PredictCommand& cmd, std::ostream& out, std::ostream& err);

}  // namespace mc
