// Optimizers with PyTorch's exact semantics (torch.optim.AdamW, torch.optim.SGD), SAM around
// either (Foret et al. 2021, as davda54/sam) and schedule-free AdamW (Defazio et al. 2024, as
// facebookresearch/schedule_free's AdamWScheduleFree). Moments live in one flat block; when the
// parameters are one flat block too (Module::flatten_parameters) a step is a single kernel
// launch. Parameters are f32 (CPU or CUDA) or f64 (CPU: the float64 checks against PyTorch).
//
// A step as a trainer runs it (engine/trainer.h):
//   for pass in 0 .. passes()-1:  [pass > 0: next_pass()]  zero grads, forward, backward
//   step()
// and around validation and checkpoints use_eval_weights() / use_train_weights(): SAM takes
// two passes (the second at the ascent point), schedule-free AdamW evaluates at x while it
// trains at y.
#pragma once
#include <memory>
#include <vector>

#include "engine/state_dict.h"
#include "kernels/optim.h"

namespace mc {

class Optimizer {
 public:
  explicit Optimizer(std::vector<Tensor*> params);
  virtual ~Optimizer() = default;
  virtual void step() = 0;
  // Gradient evaluations per step, and what comes between two of them (the gradient of the
  // pass before is in the parameters' .grad).
  virtual int passes() const { return 1; }
  virtual void next_pass() {}
  // Puts the weights to evaluate and checkpoint in the parameters, and back the ones to train
  // at (idempotent; the same weights for AdamW and SGD).
  virtual void use_eval_weights() {}
  virtual void use_train_weights() {}
  void set_lr(double lr) { lr_ = lr; }
  double lr() const { return lr_; }
  int64_t steps() const { return step_; }
  // Moments and step count, in a state dict for checkpoints ("exp_avg", "step", ...).
  virtual StateDict state() = 0;
  virtual void load_state(const StateDict& s) = 0;

 protected:
  // A contiguous run of parameters and of their gradients (one run when flat); offset and n
  // in elements into the optimiser's flat state. Parameters without a gradient are left out.
  struct Run { void* p; const void* g; int64_t offset, n; };
  std::vector<Run> runs() const;
  // A flat state block like the parameters: zeros of total_ elements.
  Tensor zeros_like_params() const;
  std::vector<Tensor*> params_;
  std::vector<int64_t> offsets_;
  int64_t total_ = 0;
  double lr_ = 1e-3;
  int64_t step_ = 0;
  Device device_;
  DType dtype_ = DType::F32;
};

struct AdamWOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 1e-2;
};

class AdamW : public Optimizer {
 public:
  AdamW(std::vector<Tensor*> params, const AdamWOptions& o = {});
  void step() override;
  StateDict state() override;
  void load_state(const StateDict& s) override;
 private:
  AdamWOptions o_;
  Tensor m_, v_;
};

struct SGDOptions {
  double lr = 1e-2, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false;
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor*> params, const SGDOptions& o = {});
  void step() override;
  StateDict state() override;
  void load_state(const StateDict& s) override;
 private:
  SGDOptions o_;
  Tensor buf_;
};

// ---------------- SAM ----------------

struct SAMOptions {
  double rho = 0.05;  // radius of the ascent step
};

// Sharpness-aware minimisation around a base optimiser: next_pass() saves w and moves to
// w + e, e = rho * g / ||g|| (g: the first pass's gradient, ||.|| over every parameter); step()
// restores w and runs the base step with the gradient taken at w + e. Learning rate and state
// are the base's (checkpoints hold the base's moments); e needs no state across steps.
class SAM : public Optimizer {
 public:
  SAM(std::vector<Tensor*> params, std::unique_ptr<Optimizer> base, const SAMOptions& o = {});
  int passes() const override { return 2; }
  void next_pass() override;
  void step() override;
  StateDict state() override { return base_->state(); }
  void load_state(const StateDict& s) override;
  Optimizer& base() { return *base_; }
 private:
  std::unique_ptr<Optimizer> base_;
  SAMOptions o_;
  Tensor old_;            // w, saved by next_pass()
  bool perturbed_ = false;
};

// ---------------- schedule-free AdamW ----------------

struct ScheduleFreeOptions {
  double lr = 2.5e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  int64_t warmup_steps = 0;     // linear warm-up of lr over the first steps
  double r = 0, weight_lr_power = 2;  // weight of step k in the average: k^r * lr_max^power
};

// The parameters hold y = (1 - beta1) z + beta1 x while training (the gradient is taken
// there), x while evaluating (use_eval_weights(): what validation, checkpoints, mc_eval and
// mc_predict see). z and the second moment are the state; x is derived from y and z, as in
// the reference code. A checkpoint holds x: load_state() takes the parameters to hold x, and
// the next use_train_weights() moves them to y. Batch-norm running statistics are those
// gathered at y (the reference code's behaviour too).
class ScheduleFreeAdamW : public Optimizer {
 public:
  ScheduleFreeAdamW(std::vector<Tensor*> params, const ScheduleFreeOptions& o = {});
  void step() override;
  void use_eval_weights() override;
  void use_train_weights() override;
  bool holds_train_weights() const { return train_mode_; }
  StateDict state() override;
  void load_state(const StateDict& s) override;
 private:
  void lerp_params(double w);
  ScheduleFreeOptions o_;
  Tensor z_, v_;
  double weight_sum_ = 0, lr_max_ = -1;
  bool train_mode_ = true;
};

}  // namespace mc
