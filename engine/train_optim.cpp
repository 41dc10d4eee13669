#include "engine/train_optim.h"

namespace mc {

const char* optimizer_name(OptimizerKind k) {
  switch (k) {
    case OptimizerKind::AdamW: return "adamw";
    case OptimizerKind::SGD: return "sgd";
    case OptimizerKind::SAM: return "sam";
    case OptimizerKind::ScheduleFreeAdamW: return "schedulefree_adamw";
  }
  return "?";
}

std::string optimizer_label(const OptimizerOptions& o) {
  std::string s = optimizer_name(o.kind);
  if (o.kind == OptimizerKind::SAM) s += std::string("+") + optimizer_name(o.sam_base);
  return s;
}

std::unique_ptr<Optimizer> make_optimizer(std::vector<Tensor*> params, const OptimizerOptions& o) {
  switch (o.kind) {
    case OptimizerKind::SGD:
      return std::make_unique<SGD>(std::move(params),
                                   SGDOptions{.lr = o.lr, .momentum = o.momentum, .dampening = 0,
                                              .weight_decay = o.weight_decay, .nesterov = o.nesterov});
    case OptimizerKind::AdamW:
      return std::make_unique<AdamW>(std::move(params),
                                     AdamWOptions{.lr = o.lr, .beta1 = o.betas[0], .beta2 = o.betas[1],
                                                  .eps = o.eps, .weight_decay = o.weight_decay});
    case OptimizerKind::SAM: {
      MC_CHECK(o.sam_base == OptimizerKind::AdamW || o.sam_base == OptimizerKind::SGD,
               "SAM wraps adamw or sgd, not ", optimizer_name(o.sam_base));
      OptimizerOptions b = o;
      b.kind = o.sam_base;
      return std::make_unique<SAM>(params, make_optimizer(params, b), SAMOptions{.rho = o.sam_rho});
    }
    case OptimizerKind::ScheduleFreeAdamW:
      return std::make_unique<ScheduleFreeAdamW>(
          std::move(params),
          ScheduleFreeOptions{.lr = o.lr, .beta1 = o.betas[0], .beta2 = o.betas[1], .eps = o.eps,
                              .weight_decay = o.weight_decay, .warmup_steps = o.warmup_steps});
  }
  MC_FAIL("make_optimizer: unknown optimizer kind ", int(o.kind));
}

}  // namespace mc
