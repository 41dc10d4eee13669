#include "engine/train_optim.h"

namespace mc {

const char* optimizer_name(OptimizerKind k) { return k == OptimizerKind::SGD ? "sgd" : "adamw"; }

std::unique_ptr<Optimizer> make_optimizer(std::vector<Tensor*> params, const OptimizerOptions& o) {
  if (o.kind == OptimizerKind::SGD)
    return std::make_unique<SGD>(std::move(params),
                                 SGDOptions{.lr = o.lr, .momentum = o.momentum, .dampening = 0,
                                            .weight_decay = o.weight_decay, .nesterov = o.nesterov});
  return std::make_unique<AdamW>(std::move(params),
                                 AdamWOptions{.lr = o.lr, .beta1 = o.betas[0], .beta2 = o.betas[1],
                                              .eps = o.eps, .weight_decay = o.weight_decay});
}

}  // namespace mc
