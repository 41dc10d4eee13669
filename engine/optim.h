// Optimizers with PyTorch's exact semantics (torch.optim.AdamW, torch.optim.SGD). Moments live
// in one flat block; when the parameters are one flat block too (Module::flatten_parameters)
// a step is a single kernel launch.
#pragma once
#include <vector>

#include "engine/state_dict.h"
#include "kernels/optim.h"

namespace mc {

class Optimizer {
 public:
  explicit Optimizer(std::vector<Tensor*> params);
  virtual ~Optimizer() = default;
  virtual void step() = 0;
  void set_lr(double lr) { lr_ = lr; }
  double lr() const { return lr_; }
  int64_t steps() const { return step_; }
  // Moments and step count, in a state dict for checkpoints ("exp_avg", "step", ...).
  virtual StateDict state() = 0;
  virtual void load_state(const StateDict& s) = 0;

 protected:
  struct Span { Tensor* p; int64_t offset; };
  // Calls f(param, grad, offset) once per contiguous run of parameters (one run when flat).
  template <class F> void for_each_run(F&& f);
  std::vector<Tensor*> params_;
  std::vector<int64_t> offsets_;
  int64_t total_ = 0;
  double lr_ = 1e-3;
  int64_t step_ = 0;
  Device device_;
  DType dtype_ = DType::F32;  // of every parameter and moment: f32, or f64 on the CPU
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

}  // namespace mc
