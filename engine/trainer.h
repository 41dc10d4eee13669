// A generic training loop: nothing in it knows the data, the model family or the task.
//
//   Trainer t(model, *optimizer, loss_fn, TrainerOptions{}, &comm);
//   t.fit(plan, callbacks);          // or t.step(batch) ... t.read_losses() by hand
//
// One step (step()): zero the gradients, forward (a callable: the model's forward unless
// set_forward says otherwise), loss (a callable), backward, the gradient all-reduce over the
// ranks of `comm` (each rank's loss is the mean over its slice of the global batch, so the
// ranks' average gradient is the global batch's), optional clipping of the global gradient L2
// norm, the optimiser step. An optimiser that takes two gradients per step (SAM:
// Optimizer::passes()) gets the first four again after its next_pass(), on the same batch,
// with batch-norm running statistics frozen (they move once per step); the recorded loss is
// the first pass's. fit() puts the optimiser's evaluation weights in the model for validation
// and end_epoch (schedule-free AdamW: x) and its training weights back before each epoch.
//
// Host syncs. A step leaves its loss on the device, copied into a device buffer that holds the
// losses of the last sync_every steps. Every sync_every steps and at the end of each epoch
// read_losses() copies that buffer to the host in one transfer (the one wait for the device),
// adds the losses in step order (in double), stops the run at the first NaN/Inf naming its
// epoch and step, and checks the device's error flags (a label outside [0, C) is flagged by the
// GPU loss kernel, not thrown), so a fault surfaces within sync_every steps.
//
// Finite or refuse: before each optimiser step the loss and the gradient's squared L2 norm
// must be finite. On the CPU both are read at once and a bad step is never applied: the error
// names the epoch, the step and the batch's subjects (TrainBatch::ids). On a GPU reading them
// would be a sync per step; the norm is kept on the device beside the loss and both are read
// with the losses, so the error names the exact step and its subjects within sync_every steps
// (the steps in between were applied, and no checkpoint is written after them). Gradient clipping
// reads the norm on the host: one more sync per step while it is on.
//
// fit(): epochs state().epoch .. plan.epochs - 1: begin_epoch, steps until next_batch() is
// empty, each at the learning rate plan.schedule gives for its global step (peak plan.base_lr,
// per step over plan.steps_per_epoch steps an epoch: engine/schedule.h), the epoch's mean loss
// over all ranks, validation every validate_every epochs, at the last epoch and when stopping
// (its score is maximised: the best epoch is tracked), end_epoch (checkpoints, logs), then a
// barrier so that no rank runs ahead of a checkpoint being written. The stop flag (e.g. set by
// a SIGINT handler) ends the run after the current epoch, on every rank together.
#pragma once
#include <atomic>
#include <cmath>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "engine/nn.h"
#include "engine/optim.h"
#include "engine/schedule.h"

namespace mc {

class Communicator;  // engine/dist.h

struct TrainerOptions {
  double grad_clip = 0;    // clip the global gradient L2 norm to this; 0 = off
  int sync_every = 10;     // steps between host reads of the losses (progress, NaN/Inf, flags)
  int validate_every = 1;  // epochs between validations (the last one is always validated)
};

struct TrainBatch {
  Tensor input, target;
  std::vector<std::string> ids;  // the batch's subjects, named when its loss or gradient is not finite
};

// What a checkpoint keeps of the loop to resume it.
struct TrainerState {
  int64_t epoch = 0;        // epochs completed
  int64_t global_step = 0;  // optimiser steps taken
  int64_t best_epoch = -1;  // 1-based epoch of the best validation score; -1: none yet
  double best_value = 0;
};

struct EpochResult {
  int64_t epoch = 0;        // from 0
  double lr = 0;            // of the epoch's first step
  int64_t steps = 0;        // this rank's
  double train_loss = NAN;  // mean step loss over every rank's steps; NaN when none ran
  bool validated = false;
  double score = NAN;       // validate()'s score, when validated
  bool best = false;        // the best score so far: this epoch's weights are the best
  bool stop = false;        // the run stops after this epoch (the stop flag was set)
};

// After each step: the steps of this epoch so far, and when the losses were just read
// (every sync_every steps) the mean of this epoch's losses read so far.
struct StepProgress {
  int64_t step = 0;
  bool synced = false;
  double mean_loss = NAN;
  double lr = 0;  // the step's learning rate
};

struct FitPlan {
  int64_t epochs = 1;  // the run's length (and the schedule's)
  double base_lr = 1e-3;
  LrSchedule schedule;
  // The epoch length the schedule is spread over (the loader's steps per epoch); 0 = unknown:
  // the learning rate then changes once an epoch (the schedule at step = epoch, 1 step/epoch).
  int64_t steps_per_epoch = 0;
  int64_t max_epochs_this_call = -1;  // stop after this many epochs of this call; -1: all
  const std::atomic<bool>* stop = nullptr;
};

struct FitCallbacks {
  std::function<std::optional<TrainBatch>()> next_batch;  // required; nullopt: the epoch's end
  std::function<void(int64_t epoch)> begin_epoch;         // before its first batch
  std::function<void(const StepProgress&)> on_step;
  std::function<double(const EpochResult&)> validate;     // the score to maximise
  std::function<void(const EpochResult&)> end_epoch;      // checkpoints, logs
};

class Trainer {
 public:
  using Forward = std::function<Tensor(const Tensor& input)>;
  using LossFn = std::function<Tensor(const Tensor& output, const Tensor& target)>;

  // model, opt and comm (null: one process) must outlive the trainer.
  Trainer(nn::Module& model, Optimizer& opt, LossFn loss, const TrainerOptions& o = {},
          Communicator* comm = nullptr);
  void set_forward(Forward f) { forward_ = std::move(f); }

  void step(const TrainBatch& b);
  // Reads the losses of the steps since the last read (see the top of this file).
  void read_losses();
  // Runs the plan from state().epoch; returns the number of epochs run.
  int64_t fit(const FitPlan& plan, const FitCallbacks& cb);

  // The losses the last read_losses() read, in step order (with sync_every = 1: the step's).
  const std::vector<double>& last_read() const { return last_read_; }
  TrainerState& state() { return state_; }
  const TrainerState& state() const { return state_; }
  // This epoch's steps and the sum of its losses read so far (fit() starts both at 0).
  int64_t epoch_steps() const { return epoch_steps_; }
  double epoch_loss_sum() const { return loss_sum_; }
  // Starts counting a new epoch by hand (fit() does it for each epoch).
  void start_epoch(int64_t epoch);

 private:
  void record(const Tensor& loss);
  EpochResult train_epoch(int64_t epoch, const FitPlan& plan, const FitCallbacks& cb);
  void finish_epoch(EpochResult& r, const FitPlan& plan, const FitCallbacks& cb);
  int world() const;

  nn::Module& model_;
  Optimizer& opt_;
  LossFn loss_;
  Forward forward_;
  TrainerOptions o_;
  Communicator* comm_;
  TrainerState state_;
  int64_t epoch_ = 0, epoch_steps_ = 0;
  double loss_sum_ = 0;
  Tensor losses_;        // [sync_every] step losses on the loss's device
  Tensor grad_sq_;       // [sync_every] squared gradient norms, beside them (GPU only)
  std::vector<std::vector<std::string>> ids_;  // [sync_every] each pending step's subjects
  void check_finite_step(const Tensor& loss, const TrainBatch& b);
  int64_t pending_ = 0;  // of them not read yet
  bool just_read_ = false;
  std::vector<double> last_read_;
};

// torch.nn.utils.clip_grad_norm_ over the model's flat gradient block: when the global L2 norm
// exceeds max_norm, scales the gradients by max_norm / (norm + 1e-6). Returns the norm (read on
// the host). Needs Module::flatten_parameters.
double clip_grad_norm(nn::Module& model, double max_norm);

}  // namespace mc
