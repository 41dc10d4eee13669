// Learning-rate schedules, evaluated per optimiser step. The one rule (what PyTorch users
// expect from CosineAnnealingLR(T_max = total steps) stepped after every optimiser step):
//   T = total_epochs * steps_per_epoch steps, W = warmup_epochs * steps_per_epoch;
//   step t (from 0, the step about to be taken) runs at
//     t <  W   base * (t + 1) / W                                     (linear warm-up)
//     cosine   min_lr + (base - min_lr) (1 + cos(pi min(t - W, T - W) / (T - W))) / 2
//     step     base * gamma ^ floor((t - W) / (step_size * steps_per_epoch))   (StepLR in epochs)
//     constant base
// With steps_per_epoch = 1 it is the per-epoch schedule (one step per epoch). The schedule is
// the shape only: the peak (base) learning rate and the run's length are arguments, so one set
// of options serves any optimiser, epoch length and number of epochs.
#pragma once
#include <cstdint>

namespace mc {

struct LrSchedule {
  enum class Kind { Cosine, Step, Constant };
  Kind kind = Kind::Cosine;
  int warmup_epochs = 0;  // linear ramp over this many epochs' steps, then the schedule
  int step_size = 30;     // step: multiply by gamma every step_size epochs
  double gamma = 0.1;
  double min_lr = 0;      // cosine floor (eta_min)
  // The learning rate of global step `step` (from 0) of a run of total_epochs epochs of
  // steps_per_epoch steps that peaks at base_lr (the rule above).
  double lr_at(int64_t step, double base_lr, int total_epochs, int64_t steps_per_epoch = 1) const;
};

}  // namespace mc
