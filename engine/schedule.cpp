#include "engine/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace mc {

double LrSchedule::lr_at(int64_t step, double base_lr, int total_epochs, int64_t steps_per_epoch) const {
  const int64_t spe = std::max<int64_t>(1, steps_per_epoch);
  const int64_t warm = int64_t(warmup_epochs) * spe, total = int64_t(total_epochs) * spe;
  if (step < warm) return base_lr * double(step + 1) / double(warm);
  const int64_t t = step - warm, span = std::max<int64_t>(1, total - warm);
  switch (kind) {
    case Kind::Constant: return base_lr;
    case Kind::Step:
      return base_lr * std::pow(gamma, double(t / (std::max(1, step_size) * spe)));
    case Kind::Cosine:
      // CosineAnnealingLR's closed form: eta_min + (base - eta_min) (1 + cos(pi t / T)) / 2.
      return min_lr + (base_lr - min_lr) *
                          (1 + std::cos(std::numbers::pi * double(std::min(t, span)) / double(span))) / 2;
  }
  return base_lr;
}

}  // namespace mc
