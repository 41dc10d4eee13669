// Predictions for raw scans with a trained model (pipeline/model.h), each scan preprocessed
// exactly as mc_prep does: what mc_predict runs.
#pragma once
#include <iosfwd>
#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/nn.h"
#include "pipeline/config.h"
#include "io/preprocess.h"
#include "pipeline/model.h"
#include "pipeline/tta.h"

namespace mc::pipeline {

// ---- raw scans ----
struct ScanInput {
  std::string id, ct, seg;   // seg empty: ct is an L1 crop (PreprocessOptions::precropped)
  bool binary_mask = false;  // seg is a one-structure mask (any non-zero voxel), not a label map
};
// Subjects of a folder by mc_prep's pairing rule (io/prep.h); a subject without a mask comes
// back with seg empty unless `precropped`.
std::vector<ScanInput> folder_inputs(const std::string& ct_dir, const std::string& seg_dir,
                                     const io::PreprocessOptions& opts);
// The model input [1, C, V, V, V] f32, as the model saw it in training: preprocess_files(), then
// rounded through f16 because mc_prep's caches store f16. Errors name the subject and its files.
Tensor prepare_input(const ScanInput& in, const io::PreprocessOptions& opts);
// The two halves of prepare_input: the preprocessed cube (with its affine to the scan's world)
// and the model input made from it.
io::Preprocessed preprocess_input(const ScanInput& in, const io::PreprocessOptions& opts);
Tensor cube_model_input(const Tensor& cube);

struct ScanPrediction {
  std::string id;
  int64_t cls = -1;
  std::vector<double> logits, probabilities;
  double tscore = std::nan("");  // regression heads: the predicted T-score (probabilities empty)
  double tau2 = 0;   // the adjustment applied to the probabilities
  double temperature = 1;  // the temperature applied after it
  std::string note;  // why no adjustment was applied, when one was asked for
};
// Eval mode, no gradients. probabilities = softmax((logits - tau2 * log prior) / temperature)
// (eval/calibration.h's order); with tau2 != 0 and no usable prior the adjustment is skipped
// and `note` says so.
ScanPrediction predict_scan(LoadedModel& m, const Tensor& input, const std::string& id,
                            const TrainingPrior& prior, double tau2, double temperature = 1,
                            const std::vector<Flip>& flips = {});  // flips: TTA (pipeline/tta.h)
// The same for logits already computed ([K] values of one scan).
ScanPrediction prediction_from_logits(const std::vector<double>& logits, const std::string& id,
                                      const TrainingPrior& prior, double tau2, double temperature);

// An ensemble's prediction: the mean of the members' probabilities (each member adjusted and
// scaled with its own prior and temperature), the class its arg-max; logits are the members'
// mean (for --raw only). One member gives that member's prediction unchanged. For a regression
// task: the mean T-score and the class it falls in.
ScanPrediction ensemble_prediction(const std::vector<ScanPrediction>& members, const io::Task& task = io::Task::who());

std::string prediction_json(const ScanPrediction& p, const std::vector<std::string>& names, bool raw);
std::string prediction_csv_header(const std::vector<std::string>& names, bool raw, bool regression = false);
std::string prediction_csv_row(const ScanPrediction& p, const std::vector<std::string>& names, bool raw);

// ---- prepared tensors (mc_predict --tensor) ----
// A .npy or one-tensor .safetensors file, [C, D, H, W] or [N, C, D, H, W], as f32 [N, C, D, H, W].
Tensor read_model_tensor(const std::string& path);
// The model on each sample of `input` as it is (no preprocessing): one JSON line per sample
// with the logits and probabilities (or the T-score of a regression head).
std::string predict_tensor_json(LoadedModel& m, const Tensor& input, const std::string& id, const TrainingPrior& prior,
                                double tau2, double temperature = 1);

// ---- the command line of mc_predict (here, so tests run it without a process) ----
struct PredictCommand {
  bool help = false;
  std::string checkpoint, config, ct, seg, crop, ct_dir, seg_dir, tensor, out;
  std::vector<std::string> ensemble;  // more checkpoints of the same config (e.g. the K fold models)
  std::vector<std::string> overrides;  // key=value, applied to the config
  std::optional<int64_t> label_id;
  std::optional<double> tau2;  // default: the config's posthoc.tau2
  std::optional<double> temperature;  // default: the checkpoint's (1 when it has none)
  bool raw = false;
  bool progress = true;
  std::string saliency;        // Grad-CAM NIfTI on the scan's grid (+ a PNG beside it); one scan only
  std::string saliency_class;  // class index or name; "" = the predicted class
  int saliency_stage = 0;
  bool tta = false;            // test-time augmentation by flips      // ResNet stage 1..4; 0 = layer4 unless its grid is one voxel
};
// Throws mc::Error naming the bad argument.
PredictCommand parse_predict_command(const std::vector<std::string>& args);
std::string predict_usage();
// JSON (one scan) or CSV (a folder) on `out` or into cmd.out; notes and progress on `err`.
// Returns the exit status: 0, or 1 when some scans of a folder failed (each named on `err`).
// Problems with the run itself (missing files, bad checkpoint) throw mc::Error.
int run_predict(const PredictCommand& cmd, std::ostream& out, std::ostream& err);

}  // namespace mc::pipeline
