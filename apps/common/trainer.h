// The training run behind mc_train: config in, checkpoints, logs and plots out. Everything a
// test wants to call is here (apps/mc_train.cpp only parses the command line).
#pragma once
#include <atomic>
#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "engine/nn.h"
#include "engine/optim.h"
#include "io/config.h"
#include "pipeline/model.h"

namespace mc {

struct TrainSummary {
  std::string run_dir, best_weights, last_weights;
  int64_t epochs_done = 0;  // total completed, counting resumed ones
  int64_t best_epoch = -1;
  double best_value = 0;
  bool interrupted = false;
};

struct TrainHooks {
  // Set (e.g. by a SIGINT handler) to stop after the current epoch, which finishes, is
  // validated and checkpointed, so --resume continues exactly there.
  std::atomic<bool>* stop = nullptr;
  // Stop after this many epochs in this call (tests: interrupt-and-resume), -1 = all.
  int64_t max_epochs_this_call = -1;
  std::ostream* out = nullptr;  // epoch lines (default std::cout)
};

TrainSummary train(const Config& cfg, bool resume, const TrainHooks& hooks = {});

// resolve_device and build_model (shared with mc_eval / mc_predict / mc_bench): pipeline/model.h.
std::unique_ptr<Optimizer> build_optimizer(const Config& cfg, nn::Module& model);

}  // namespace mc
