#include "engine/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace mc {

double LrSchedule::lr_at(int epoch, double base_lr, int total_epochs) const {
  if (epoch < warmup_epochs) return base_lr * double(epoch + 1) / double(warmup_epochs);
  const int e = epoch - warmup_epochs, span = std::max(1, total_epochs - warmup_epochs);
  switch (kind) {
    case Kind::Constant: return base_lr;
    case Kind::Step: return base_lr * std::pow(gamma, double(e / std::max(1, step_size)));
    case Kind::Cosine:
      // CosineAnnealingLR's closed form: eta_min + (base - eta_min) (1 + cos(pi e / T)) / 2.
      return min_lr + (base_lr - min_lr) * (1 + std::cos(std::numbers::pi * std::min(e, span) / span)) / 2;
  }
  return base_lr;
}

}  // namespace mc
