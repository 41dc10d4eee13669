// The optimiser as data: one options struct for every algorithm, so a program (or a config)
// chooses AdamW, SGD, SAM (around AdamW or SGD) or schedule-free AdamW and their settings
// without code of its own. make_optimizer builds engine/optim.h's optimisers from it.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/optim.h"

namespace mc {

enum class OptimizerKind { AdamW, SGD, SAM, ScheduleFreeAdamW };
// "adamw", "sgd", "sam", "schedulefree_adamw": the config's spellings
const char* optimizer_name(OptimizerKind k);

struct OptimizerOptions {
  OptimizerKind kind = OptimizerKind::AdamW;
  double lr = 1e-3;                         // peak learning rate (a schedule scales it per epoch)
  double weight_decay = 0.01;               // decoupled (AdamW, PyTorch's default) or L2 (SGD)
  std::array<double, 2> betas{0.9, 0.999};  // AdamW moment decay rates (schedule-free: beta1 = the y/x interpolation)
  double eps = 1e-8;                        // AdamW denominator epsilon
  // SGD. The usual 0.9 (PyTorch's SGD defaults to 0, i.e. no momentum, and so does SGDOptions).
  double momentum = 0.9;
  bool nesterov = false;
  // SAM: the base optimiser (AdamW or SGD, with the settings above) and the ascent radius.
  OptimizerKind sam_base = OptimizerKind::AdamW;
  double sam_rho = 0.05;
  // Schedule-free AdamW: steps of linear learning-rate warm-up.
  int64_t warmup_steps = 0;
};

// What checkpoints record, so --resume refuses another optimiser: optimizer_name(kind), and for
// SAM its base too ("sam+adamw").
std::string optimizer_label(const OptimizerOptions& o);

// The optimiser o describes over `params`, at learning rate o.lr (SGD with dampening 0).
std::unique_ptr<Optimizer> make_optimizer(std::vector<Tensor*> params, const OptimizerOptions& o);

}  // namespace mc
