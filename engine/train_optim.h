// The optimiser as data: one options struct for either algorithm, so a program (or a config)
// chooses AdamW or SGD and their settings without code of its own. make_optimizer builds
// engine/optim.h's torch.optim.AdamW or torch.optim.SGD from it.
#pragma once
#include <array>
#include <memory>
#include <vector>

#include "engine/optim.h"

namespace mc {

enum class OptimizerKind { AdamW, SGD };
const char* optimizer_name(OptimizerKind k);  // "adamw", "sgd": what checkpoints record

struct OptimizerOptions {
  OptimizerKind kind = OptimizerKind::AdamW;
  double lr = 1e-3;                         // peak learning rate (a schedule scales it per epoch)
  double weight_decay = 0.01;               // decoupled (AdamW, PyTorch's default) or L2 (SGD)
  std::array<double, 2> betas{0.9, 0.999};  // AdamW moment decay rates
  double eps = 1e-8;                        // AdamW denominator epsilon
  // SGD. The usual 0.9 (PyTorch's SGD defaults to 0, i.e. no momentum, and so does SGDOptions).
  double momentum = 0.9;
  bool nesterov = false;
};

// AdamW or SGD (dampening 0) over `params`, at learning rate o.lr.
std::unique_ptr<Optimizer> make_optimizer(std::vector<Tensor*> params, const OptimizerOptions& o);

}  // namespace mc
