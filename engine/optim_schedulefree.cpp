// Schedule-free AdamW (Defazio et al. 2024) in the arithmetic of facebookresearch/schedule_free's
// AdamWScheduleFree (foreach=False): the parameters hold y, the state z and the second moment.
#include <algorithm>
#include <cmath>

#include "engine/autograd.h"
#include "engine/optim.h"
#include "engine/optim_typed.h"

namespace mc {

ScheduleFreeAdamW::ScheduleFreeAdamW(std::vector<Tensor*> params, const ScheduleFreeOptions& o)
    : Optimizer(std::move(params)), o_(o) {
  MC_CHECK(o_.beta1 > 0 && o_.beta1 < 1, "schedule-free AdamW: beta1 must be in (0, 1), got ", o_.beta1);
  MC_CHECK(o_.beta2 >= 0 && o_.beta2 < 1, "schedule-free AdamW: beta2 must be in [0, 1), got ", o_.beta2);
  MC_CHECK(o_.warmup_steps >= 0, "schedule-free AdamW: warmup_steps must be >= 0, got ", o_.warmup_steps);
  lr_ = o_.lr;
  z_ = zeros_like_params();
  v_ = zeros_like_params();
}

void ScheduleFreeAdamW::step() {
  MC_CHECK(train_mode_, "schedule-free AdamW: step() while the parameters hold the evaluation "
           "weights x; call use_train_weights() first");
  NoGradGuard ng;
  const int64_t k = step_;
  if (k == 0)  // z starts at the initial weights (the reference clones p on its first step)
    for (size_t i = 0; i < params_.size(); ++i)
      z_.flat_slice(offsets_[i], {params_[i]->numel()}).copy_(params_[i]->view({params_[i]->numel()}));
  const double sched = k < o_.warmup_steps ? double(k + 1) / double(o_.warmup_steps) : 1.0;
  const double lr = lr_ * sched;
  lr_max_ = std::max(lr, lr_max_);
  const double weight = std::pow(double(k + 1), o_.r) * std::pow(lr_max_, o_.weight_lr_power);
  weight_sum_ += weight;
  const double ckp1 = weight_sum_ != 0 ? weight / weight_sum_ : 0.0;  // the reference's 0 / 0 -> 0
  kernels::ScheduleFreeArgs a;
  a.lr = lr;
  a.ckp1 = ckp1;
  a.y_lr = lr * (o_.beta1 * (1 - ckp1) - 1);
  a.beta2 = o_.beta2;
  a.bc2 = 1 - std::pow(o_.beta2, double(k + 1));
  a.eps = o_.eps;
  a.weight_decay = o_.weight_decay;
  MC_OPTIM_TYPED(dtype_, {
    T *z = z_.data<T>(), *v = v_.data<T>();
    for (const Run& r : runs())
      MC_OPTIM_CALL(schedulefree_step, MC_P(r.p), MC_CP(r.g), z + r.offset, v + r.offset, r.n, a);
  });
  step_ = k + 1;
}

// p = lerp(p, z, w) over every parameter, adjacent ones in one launch.
void ScheduleFreeAdamW::lerp_params(double w) {
  NoGradGuard ng;
  MC_OPTIM_TYPED(dtype_, {
    const T* z = z_.data<T>();
    size_t i = 0;
    while (i < params_.size()) {
      char* end = static_cast<char*>(params_[i]->raw()) + params_[i]->nbytes();
      int64_t n = params_[i]->numel();
      size_t j = i + 1;
      for (; j < params_.size() && params_[j]->raw() == end; ++j) {
        end += params_[j]->nbytes();
        n += params_[j]->numel();
      }
      MC_OPTIM_CALL(lerp_to, MC_P(params_[i]->raw()), z + offsets_[i], w, n);
      i = j;
    }
  });
}

// Before the first step x = y = z: nothing to move.
void ScheduleFreeAdamW::use_eval_weights() {
  if (!train_mode_) return;
  if (step_ > 0) lerp_params(1 - 1 / o_.beta1);  // x = (y - (1 - beta1) z) / beta1
  train_mode_ = false;
}

void ScheduleFreeAdamW::use_train_weights() {
  if (train_mode_) return;
  if (step_ > 0) lerp_params(1 - o_.beta1);  // y = (1 - beta1) z + beta1 x
  train_mode_ = true;
}

StateDict ScheduleFreeAdamW::state() {
  return {{"z", z_},
          {"exp_avg_sq", v_},
          {"step", Tensor::from<int64_t>({step_}, {})},
          {"weight_sum", Tensor::from<double>({weight_sum_}, {})},
          {"lr_max", Tensor::from<double>({lr_max_}, {})}};
}

void ScheduleFreeAdamW::load_state(const StateDict& s) {
  for (const auto& [k, t] : s) {
    if (k == "z") z_.copy_(t);
    else if (k == "exp_avg_sq") v_.copy_(t);
    else if (k == "step") step_ = int64_t(t.item());
    else if (k == "weight_sum") weight_sum_ = t.item();
    else if (k == "lr_max") lr_max_ = t.item();
    else MC_FAIL("schedule-free AdamW state: unexpected key '", k, "'");
  }
  train_mode_ = false;  // the parameters hold x, as a checkpoint stores them
}

}  // namespace mc
