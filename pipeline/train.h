// The training run behind mc_train: config in, checkpoints, logs and plots out. The loop itself
// is the engine's Trainer (engine/trainer.h); this is the MedConv wiring around it: model,
// loader, loss, optimiser and schedule from the Config, the run folder, the metrics log,
// validation with post-hoc adjustment, checkpoints, resume and data parallelism.
#pragma once
#include <atomic>
#include <cstdint>
#include <ostream>
#include <string>

#include "pipeline/config.h"
#include "pipeline/train_setup.h"

namespace mc::pipeline {

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
  // The export hooks for checking a run against PyTorch (pipeline/train_export.h); "" = off.
  std::string export_init;   // the weights training starts from (safetensors)
  std::string export_steps;  // per-step batches, augmentation, lr and loss (JSON lines)
  // Train in float64 on the CPU (weights, moments, activations, loss): the golden run against
  // PyTorch in float64 (tests/pipeline/train_parity_test.cpp), not a precision for real runs.
  bool float64 = false;
};

// One process per GPU (or CPU node) under mpirun / torchrun, a world of one otherwise
// (engine/dist.h). With `resume`, continues from <output.dir>/last.safetensors.
TrainSummary train(const Config& cfg, bool resume, const TrainHooks& hooks = {});

}  // namespace mc::pipeline
