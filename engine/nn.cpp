#include "engine/nn.h"

#include <cmath>

#include "engine/memory.h"
#include "engine/sync_bn.h"

namespace mc::nn {

// ---------------- Module ----------------

template <class F>
void Module::walk(const std::string& prefix, F&& f) {
  f(prefix, *this);
  for (auto& [name, child] : children_) child->walk(prefix + name + ".", f);
}

void Module::apply(const std::function<void(Module&)>& f) {
  walk("", [&](const std::string&, Module& m) { f(m); });
}

int set_sync_batchnorm(Module& m, Communicator* comm) {
  int n = 0;
  m.apply([&](Module& x) {
    if (auto* bn = dynamic_cast<BatchNorm3d*>(&x)) {
      bn->set_sync(comm);
      ++n;
    }
  });
  return n;
}

int freeze_batchnorm_stats(Module& m, bool frozen) {
  int n = 0;
  m.apply([&](Module& x) {
    if (auto* bn = dynamic_cast<BatchNorm3d*>(&x)) {
      bn->freeze_stats(frozen);
      ++n;
    }
  });
  return n;
}

void Module::train(bool on) {
  walk("", [&](const std::string&, Module& m) {
    m.training_ = on;
    m.on_train(on);
  });
}

std::vector<std::pair<std::string, Tensor*>> Module::named_parameters() {
  std::vector<std::pair<std::string, Tensor*>> out;
  walk("", [&](const std::string& p, Module& m) {
    for (auto& [n, t] : m.params_) out.emplace_back(p + n, &t);
  });
  return out;
}

std::vector<Tensor*> Module::parameters() {
  std::vector<Tensor*> out;
  for (auto& [n, t] : named_parameters()) out.push_back(t);
  return out;
}

std::vector<std::pair<std::string, Tensor*>> Module::named_buffers() {
  std::vector<std::pair<std::string, Tensor*>> out;
  walk("", [&](const std::string& p, Module& m) {
    for (auto& [n, t] : m.buffers_) out.emplace_back(p + n, &t);
  });
  return out;
}

StateDict Module::state_dict() {
  StateDict out;
  walk("", [&](const std::string& p, Module& m) {
    for (auto& [n, t] : m.params_) out.emplace_back(p + n, t.detach());
    for (auto& [n, t] : m.buffers_) out.emplace_back(p + n, t.detach());
  });
  return out;
}

int64_t Module::num_parameters() {
  int64_t n = 0;
  for (Tensor* t : parameters()) n += t->numel();
  return n;
}

Tensor Module::flatten_parameters(Device dev) {
  auto params = parameters();
  int64_t total = 0;
  // f32 master weights; f64 (after to(F64)) for golden runs in double.
  const DType dt = params.empty() ? DType::F32 : params[0]->dtype();
  for (Tensor* t : params) {
    MC_CHECK(t->dtype() == dt && (dt == DType::F32 || dt == DType::F64),
             "flatten_parameters: parameters must be all f32 (master weights) or all f64, got ", t->str());
    total += t->numel();
  }
  flat_params_ = Tensor::empty({total}, dt, dev);
  flat_grads_ = Tensor::zeros({total}, dt, dev);
  int64_t off = 0;
  for (Tensor* t : params) {
    Tensor view = flat_params_.flat_slice(off, t->shape());
    view.copy_(*t);
    view.set_requires_grad(t->requires_grad());
    // Gradients accumulate in place into the flat block (autograd adds into a defined grad).
    view.set_grad(flat_grads_.flat_slice(off, t->shape()));
    *t = view;
    off += t->numel();
  }
  move_buffers(dev);
  return flat_params_;
}

void Module::to(Device dev) {
  for (Tensor* t : parameters()) {
    bool rg = t->requires_grad();
    *t = t->detach().to(dev);
    t->set_requires_grad(rg);
  }
  move_buffers(dev);
}

void Module::to(DType dt) {
  MC_CHECK(!flat_params_.defined(), "Module::to(dtype) after flatten_parameters()");
  for (Tensor* t : parameters()) {
    bool rg = t->requires_grad();
    *t = t->detach().to(dt);
    t->set_requires_grad(rg);
  }
  for (auto& [n, b] : named_buffers())
    if (is_floating(b->dtype())) *b = b->to(dt);
}

// Floating buffers (running statistics) follow the parameters; integer ones
// (num_batches_tracked) are host-side counters: bumping them must not sync with a device.
void Module::move_buffers(Device dev) {
  for (auto& [n, b] : named_buffers())
    if (is_floating(b->dtype())) *b = b->to(dev);
}

void Module::zero_grad() {
  if (flat_grads_.defined()) {
    flat_grads_.zero_();
    return;
  }
  for (Tensor* t : parameters()) t->zero_grad();
}

Tensor& Module::register_parameter(const std::string& name, Tensor t) {
  t.set_requires_grad(true);
  params_.emplace_back(name, std::move(t));
  return params_.back().second;
}

Tensor& Module::register_buffer(const std::string& name, Tensor t) {
  buffers_.emplace_back(name, std::move(t));
  return buffers_.back().second;
}

void default_init_(Tensor& w, Tensor* b, Generator& g) {
  const double fan_in = double(w.numel() / w.size(0));
  const double bound = 1.0 / std::sqrt(fan_in);
  uniform_(w, g, -bound, bound);
  if (b) uniform_(*b, g, -bound, bound);
}

// ---------------- layers ----------------

Conv3d::Conv3d(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t padding, bool bias,
               int64_t groups, int64_t dilation) {
  MC_CHECK(groups >= 1 && in % groups == 0 && out % groups == 0, "Conv3d: groups ", groups,
           " must divide ", in, " and ", out);
  Generator g(0);
  Tensor w = Tensor::empty({out, in / groups, k, k, k});
  Tensor b = bias ? Tensor::empty({out}) : Tensor();
  default_init_(w, bias ? &b : nullptr, g);  // models re-initialise with their own rule and seed
  w_ = &register_parameter("weight", w);
  if (bias) b_ = &register_parameter("bias", b);
  opts_.stride = {stride, stride, stride};
  opts_.padding = {padding, padding, padding};
  opts_.dilation = {dilation, dilation, dilation};
  opts_.groups = groups;
}

Tensor Conv3d::forward(const Tensor& x) { return conv3d(x, *w_, b_ ? *b_ : Tensor(), opts_); }

BatchNorm3d::BatchNorm3d(int64_t c, double eps, double momentum) : eps_(eps), momentum_(momentum) {
  w_ = &register_parameter("weight", Tensor::full({c}, 1.0));
  b_ = &register_parameter("bias", Tensor::zeros({c}));
  rm_ = &register_buffer("running_mean", Tensor::zeros({c}));
  rv_ = &register_buffer("running_var", Tensor::full({c}, 1.0));
  nbt_ = &register_buffer("num_batches_tracked", Tensor::zeros({}, DType::I64));
}

Tensor BatchNorm3d::forward(const Tensor& x) {
  if (is_training()) nbt_->data<int64_t>()[0] += 1;  // integer buffers stay on the host
  const double momentum = frozen_ ? 0.0 : momentum_;
  if (sync_ && is_training())
    return sync_batch_norm(x, *w_, *b_, *rm_, *rv_, true, momentum, eps_, *sync_);
  return batch_norm(x, *w_, *b_, *rm_, *rv_, is_training(), momentum, eps_);
}

Linear::Linear(int64_t in, int64_t out, bool bias) {
  Generator g(0);
  Tensor w = Tensor::empty({out, in});
  Tensor b = bias ? Tensor::empty({out}) : Tensor();
  default_init_(w, bias ? &b : nullptr, g);
  w_ = &register_parameter("weight", w);
  if (bias) b_ = &register_parameter("bias", b);
}

Tensor Linear::forward(const Tensor& x) { return linear(x, *w_, b_ ? *b_ : Tensor()); }

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (Module* m : mods_) y = m->forward(y);
  return y;
}

}  // namespace mc::nn
