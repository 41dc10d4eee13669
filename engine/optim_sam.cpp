// SAM (Foret et al. 2021) as its reference code, davda54/sam, runs it: first_step() = next_pass(),
// second_step() = step().
#include "engine/autograd.h"
#include "engine/optim.h"
#include "engine/optim_typed.h"
#include "engine/prims.h"

namespace mc {

SAM::SAM(std::vector<Tensor*> params, std::unique_ptr<Optimizer> base, const SAMOptions& o)
    : Optimizer(std::move(params)), base_(std::move(base)), o_(o) {
  MC_CHECK(base_, "SAM: no base optimizer");
  MC_CHECK(o_.rho > 0, "SAM: rho must be > 0, got ", o_.rho);
  lr_ = base_->lr();
  step_ = base_->steps();
  old_ = zeros_like_params();
}

void SAM::next_pass() {
  NoGradGuard ng;
  MC_CHECK(!perturbed_, "SAM: next_pass() twice without a step() between");
  // ||g||^2 over every parameter, left on the device: the perturbation kernel reads it there.
  Tensor sumsq;
  for (Tensor* p : params_) {
    const Tensor g = p->grad();
    if (!g.defined()) continue;
    const Tensor s = prims::sum_all(prims::mul(g, g));
    sumsq = sumsq.defined() ? prims::add(sumsq, s) : s;
  }
  MC_CHECK(sumsq.defined(), "SAM: no parameter has a gradient after the first pass");
  MC_OPTIM_TYPED(dtype_, {
    T* old = old_.data<T>();
    const T* ss = sumsq.data<T>();
    for (const Run& r : runs())
      MC_OPTIM_CALL(sam_perturb, MC_P(r.p), MC_CP(r.g), old + r.offset, ss, o_.rho, r.n);
  });
  perturbed_ = true;
}

void SAM::step() {
  NoGradGuard ng;
  MC_CHECK(perturbed_, "SAM: step() needs the ascent pass first (next_pass(), then a second "
           "forward and backward): a trainer must run passes() = 2 gradient evaluations");
  // Back to w (every parameter: those without a gradient were saved and left as they were).
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = *params_[i];
    p.view({p.numel()}).copy_(old_.flat_slice(offsets_[i], {p.numel()}));
  }
  perturbed_ = false;
  base_->set_lr(lr_);
  base_->step();
  step_ = base_->steps();
}

void SAM::load_state(const StateDict& s) {
  base_->load_state(s);
  step_ = base_->steps();
}

}  // namespace mc
