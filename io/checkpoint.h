// Checkpoints: <dir>/<tag>.safetensors holds the weights in PyTorch's key names (loadable by
// torch / timm_3d / MONAI as is); <dir>/<tag>.state.safetensors holds what resuming needs
// (optimizer moments as "optim.<name>", and in its metadata the epoch, step, best score,
// optimizer name and the resolved config). Each file is written atomically; both carry the same
// checkpoint id, so a pair torn by a crash between the two writes is detected, not trusted.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "engine/state_dict.h"

namespace mc::io {

struct TrainingState {
  int64_t epoch = 0;        // epochs completed
  int64_t global_step = 0;  // optimizer steps taken
  double best_value = 0;    // model-selection score of the best epoch so far
  int64_t best_epoch = -1;
  std::string optimizer;    // optimizer_label(): "adamw", "sgd", "sam+adamw", "schedulefree_adamw"
  std::string config_yaml;  // the resolved config of the run
  StateDict optimizer_state;
  // Anything else worth keeping (metric names, ...); "task.*" entries (io/task.h) are also
  // written into the weights file's metadata.
  std::map<std::string, std::string> extra;
};

// Writes both files; returns the weights path.
std::string save_checkpoint(const std::string& dir, const std::string& tag, const StateDict& weights,
                            const TrainingState& state);
// Loads a state file (<tag>.state.safetensors) and checks it belongs to `weights_path`.
TrainingState load_training_state(const std::string& state_path, const std::string& weights_path);
// A checkpoint is weights + state or neither: removes each periodic checkpoint of dir
// ("epoch<N>", not last or best, which --resume checks itself) whose state has no weights or
// whose two files are from different saves (a kill between the two writes). Returns what was
// removed, for the caller to say so.
std::vector<std::string> remove_torn_checkpoints(const std::string& dir);

// "<dir>/<tag>.safetensors" -> "<dir>/<tag>.state.safetensors"
std::string state_path_for(const std::string& weights_path);

}  // namespace mc::io
