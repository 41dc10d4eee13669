// Learning-rate schedules, evaluated per epoch like PyTorch's schedulers stepped once an epoch
// (the MedConv reference steps CosineAnnealingLR per epoch).
#pragma once
#include <string>

namespace mc {

struct LrSchedule {
  enum class Kind { Constant, Cosine, Step };
  Kind kind = Kind::Cosine;
  double base_lr = 1e-3;
  int total_epochs = 1;
  int warmup_epochs = 0;  // linear ramp base/warmup, 2 base/warmup, ..., then the schedule
  double min_lr = 0;      // cosine floor (eta_min)
  int step_size = 30;     // step: multiply by gamma every step_size epochs
  double gamma = 0.1;
  double lr_at(int epoch) const;  // epoch counts from 0
};

}  // namespace mc
