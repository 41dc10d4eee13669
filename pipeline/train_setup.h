// The parts of a run that its Config describes: the device, the engine's compute mode, the
// model (with pretrained weights), the optimiser and the training loader's options. Shared by
// training, evaluation, prediction and mc_bench.
#pragma once
#include <memory>

#include "engine/nn.h"
#include "engine/optim.h"
#include "io/loader.h"
#include "pipeline/config.h"
#include "pipeline/model.h"  // resolve_device, build_model

namespace mc::pipeline {


// optim.* over the model's parameters (flatten them first for one-launch steps).
std::unique_ptr<Optimizer> build_optimizer(const Config& cfg, nn::Module& model);

// cfg.loader for this rank of `world`: its slice of the global train.batch_size, train.seed,
// model.num_classes, `dev`, and drop_last (a batch of one breaks batch-norm statistics).
io::LoaderOptions train_loader_options(const Config& cfg, Device dev, int rank = 0, int world = 1);

}  // namespace mc::pipeline
