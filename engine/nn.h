// Modules with named parameters and buffers in PyTorch's names and state-dict order (a module's
// own parameters, then its own buffers, then its children, recursively).
#pragma once
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/ops.h"
#include "engine/random.h"
#include "engine/state_dict.h"

namespace mc {
class Communicator;  // engine/dist.h
}

namespace mc::nn {

class Module {
 public:
  virtual ~Module() = default;
  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }

  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  std::vector<std::pair<std::string, Tensor*>> named_parameters();
  std::vector<Tensor*> parameters();
  std::vector<std::pair<std::string, Tensor*>> named_buffers();
  StateDict state_dict();  // views of the module's own tensors: copy_ into them to load
  int64_t num_parameters();

  // Moves every parameter and buffer into one allocation each (params, grads), so an optimizer
  // is one launch and gradients accumulate in place into one block (DESIGN: flat blocks).
  // Optionally on another device. Returns the flat parameter block.
  Tensor flatten_parameters(Device dev = Device::cpu());
  Tensor flat_params() const { return flat_params_; }
  Tensor flat_grads() const { return flat_grads_; }
  void to(Device dev);  // without flattening
  void to(DType dt);    // floating parameters and buffers (f64 for golden tests and grad checks)
  void zero_grad();     // zeroes the flat gradient block, or drops per-tensor gradients
  // Calls f on this module and every descendant, parents first.
  void apply(const std::function<void(Module&)>& f);

 protected:
  Tensor& register_parameter(const std::string& name, Tensor t);
  Tensor& register_buffer(const std::string& name, Tensor t);
  template <class M>
  M& register_module(const std::string& name, std::unique_ptr<M> m) {
    M& ref = *m;
    children_.emplace_back(name, std::move(m));
    return ref;
  }
  // Training-mode hook for modules whose forward differs (batch norm).
  virtual void on_train(bool) {}

 private:
  template <class F> void walk(const std::string& prefix, F&& f);
  void move_buffers(Device dev);
  std::deque<std::pair<std::string, Tensor>> params_, buffers_;  // deque: stable references
  std::vector<std::pair<std::string, std::unique_ptr<Module>>> children_;
  bool training_ = true;
  Tensor flat_params_, flat_grads_;
};

class Conv3d : public Module {
 public:
  Conv3d(int64_t in, int64_t out, int64_t k, int64_t stride = 1, int64_t padding = 0,
         bool bias = false, int64_t groups = 1, int64_t dilation = 1);
  Tensor forward(const Tensor& x) override;
  Tensor& weight() { return *w_; }
 private:
  Tensor *w_, *b_ = nullptr;
  Conv3dOpts opts_;
};

class BatchNorm3d : public Module {
 public:
  explicit BatchNorm3d(int64_t channels, double eps = 1e-5, double momentum = 0.1);
  Tensor forward(const Tensor& x) override;
  Tensor& weight() { return *w_; }
  Tensor& bias() { return *b_; }
  // Training statistics over the global batch of all ranks of `comm` (null: this process's
  // batch only), as torch.nn.SyncBatchNorm.
  void set_sync(Communicator* comm) { sync_ = comm; }
  // Frozen: training-mode forwards leave running_mean / running_var as they are (momentum 0,
  // as davda54/sam's disable_running_stats does for SAM's second pass; num_batches_tracked
  // still counts, as in PyTorch).
  void freeze_stats(bool frozen) { frozen_ = frozen; }
 private:
  Tensor *w_, *b_, *rm_, *rv_, *nbt_;
  double eps_, momentum_;
  bool frozen_ = false;
  Communicator* sync_ = nullptr;
};

class Linear : public Module {
 public:
  Linear(int64_t in, int64_t out, bool bias = true);
  Tensor forward(const Tensor& x) override;
  Tensor& weight() { return *w_; }
  Tensor& bias() { return *b_; }
 private:
  Tensor *w_, *b_ = nullptr;
};

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) override { return relu(x); }
};

class MaxPool3d : public Module {
 public:
  MaxPool3d(int64_t k, int64_t stride, int64_t padding) : k_(k), s_(stride), p_(padding) {}
  Tensor forward(const Tensor& x) override { return max_pool3d(x, {k_, k_, k_}, {s_, s_, s_}, {p_, p_, p_}); }
 private:
  int64_t k_, s_, p_;
};

// Children named "0", "1", ... as torch.nn.Sequential.
class Sequential : public Module {
 public:
  Sequential() = default;
  template <class M> M& add(std::unique_ptr<M> m) {
    mods_.push_back(m.get());
    return register_module(std::to_string(mods_.size() - 1), std::move(m));
  }
  Tensor forward(const Tensor& x) override;
  size_t size() const { return mods_.size(); }
 private:
  std::vector<Module*> mods_;
};

// Makes every BatchNorm3d in m synchronise over comm (null: undo); returns how many.
int set_sync_batchnorm(Module& m, Communicator* comm);
// BatchNorm3d::freeze_stats on every batch-norm layer of m; returns how many.
int freeze_batchnorm_stats(Module& m, bool frozen);

// PyTorch's default Linear/Conv init: kaiming_uniform(a = sqrt(5)) for the weight, and
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the bias. Both bounds are 1/sqrt(fan_in).
void default_init_(Tensor& w, Tensor* b, Generator& g);

}  // namespace mc::nn
