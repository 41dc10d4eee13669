// Learning-rate schedules, evaluated per epoch like PyTorch's schedulers stepped once an epoch
// (the MedConv reference steps CosineAnnealingLR per epoch). The schedule is the shape only;
// the peak (base) learning rate and the run's length are given to lr_at, so one set of options
// serves any optimiser and any number of epochs.
#pragma once

namespace mc {

struct LrSchedule {
  enum class Kind { Cosine, Step, Constant };
  Kind kind = Kind::Cosine;
  int warmup_epochs = 0;  // linear ramp base/warmup, 2 base/warmup, ..., then the schedule
  int step_size = 30;     // step: multiply by gamma every step_size epochs
  double gamma = 0.1;
  double min_lr = 0;      // cosine floor (eta_min)
  // The learning rate of `epoch` (from 0) of a run of total_epochs that peaks at base_lr.
  double lr_at(int epoch, double base_lr, int total_epochs) const;
};

}  // namespace mc
