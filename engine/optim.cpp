#include "engine/optim.h"

#include "engine/autograd.h"
#include "engine/dispatch.h"
#include "engine/optim_typed.h"

namespace mc {

Optimizer::Optimizer(std::vector<Tensor*> params) : params_(std::move(params)) {
  MC_CHECK(!params_.empty(), "optimizer: no parameters");
  device_ = params_[0]->device();
  dtype_ = params_[0]->dtype();
  MC_CHECK(dtype_ == DType::F32 || (dtype_ == DType::F64 && device_.is_cpu()),
           "optimizer: parameters must be f32 (or f64 on the CPU), got ", params_[0]->str());
  for (Tensor* p : params_) {
    MC_CHECK(p->dtype() == dtype_, "optimizer: parameters of two dtypes: ", p->str(), " and ",
             dtype_name(dtype_));
    MC_CHECK(p->device() == device_, "optimizer: parameters on ", p->device().str(), " and ",
             device_.str());
    offsets_.push_back(total_);
    total_ += p->numel();
  }
}

Tensor Optimizer::zeros_like_params() const { return Tensor::zeros({total_}, dtype_, device_); }

std::vector<Optimizer::Run> Optimizer::runs() const {
  // A run: consecutive parameters whose data (and gradients) are adjacent in memory.
  std::vector<Run> out;
  size_t i = 0;
  while (i < params_.size()) {
    Tensor p0 = *params_[i], g0 = p0.grad();
    size_t j = i + 1;
    int64_t n = p0.numel();
    if (g0.defined()) {
      auto* pend = static_cast<char*>(p0.raw()) + p0.nbytes();
      auto* gend = static_cast<char*>(g0.raw()) + g0.nbytes();
      while (j < params_.size()) {
        Tensor pj = *params_[j], gj = pj.grad();
        if (!gj.defined() || pj.raw() != pend || gj.raw() != gend) break;
        pend += pj.nbytes();
        gend += gj.nbytes();
        n += pj.numel();
        ++j;
      }
      out.push_back({p0.raw(), g0.raw(), offsets_[i], n});
    }
    i = j;  // parameters without a gradient are skipped, as PyTorch does
  }
  return out;
}

// ---------------- AdamW ----------------

AdamW::AdamW(std::vector<Tensor*> params, const AdamWOptions& o) : Optimizer(std::move(params)), o_(o) {
  lr_ = o.lr;
  m_ = zeros_like_params();
  v_ = zeros_like_params();
}

void AdamW::step() {
  NoGradGuard ng;
  ++step_;
  kernels::AdamWArgs a{lr_, o_.beta1, o_.beta2, o_.eps, o_.weight_decay, step_};
  MC_OPTIM_TYPED(dtype_, {
    T *m = m_.data<T>(), *v = v_.data<T>();
    for (const Run& r : runs())
      MC_OPTIM_CALL(adamw_step, MC_P(r.p), MC_CP(r.g), m + r.offset, v + r.offset, r.n, a);
  });
}

StateDict AdamW::state() {
  return {{"exp_avg", m_}, {"exp_avg_sq", v_}, {"step", Tensor::from<int64_t>({step_}, {})}};
}

void AdamW::load_state(const StateDict& s) {
  for (const auto& [k, t] : s) {
    if (k == "exp_avg") m_.copy_(t);
    else if (k == "exp_avg_sq") v_.copy_(t);
    else if (k == "step") step_ = int64_t(t.item());
    else MC_FAIL("AdamW state: unexpected key '", k, "'");
  }
}

// ---------------- SGD ----------------

SGD::SGD(std::vector<Tensor*> params, const SGDOptions& o) : Optimizer(std::move(params)), o_(o) {
  lr_ = o.lr;
  MC_CHECK(!o.nesterov || (o.momentum > 0 && o.dampening == 0),
           "SGD: Nesterov momentum requires a momentum and zero dampening");
  if (o.momentum != 0) buf_ = zeros_like_params();
}

void SGD::step() {
  NoGradGuard ng;
  kernels::SGDArgs a{lr_, o_.momentum, o_.dampening, o_.weight_decay, o_.nesterov, step_ == 0};
  ++step_;
  MC_OPTIM_TYPED(dtype_, {
    T* buf = buf_.defined() ? buf_.data<T>() : nullptr;
    for (const Run& r : runs())
      MC_OPTIM_CALL(sgd_step, MC_P(r.p), MC_CP(r.g), buf ? buf + r.offset : nullptr, r.n, a);
  });
}

StateDict SGD::state() {
  StateDict s{{"step", Tensor::from<int64_t>({step_}, {})}};
  if (buf_.defined()) s.emplace_back("momentum_buffer", buf_);
  return s;
}

void SGD::load_state(const StateDict& s) {
  for (const auto& [k, t] : s) {
    if (k == "momentum_buffer" && buf_.defined()) buf_.copy_(t);
    else if (k == "step") step_ = int64_t(t.item());
    else MC_FAIL("SGD state: unexpected key '", k, "'");
  }
}

}  // namespace mc
