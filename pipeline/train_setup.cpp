#include "pipeline/train_setup.h"

#include <iostream>

#include "engine/memory.h"
#include "engine/precision.h"
#include "engine/train_optim.h"
#include "io/safetensors.h"
#include "io/state_dict_io.h"
#include "models/resnet3d.h"

namespace mc::pipeline {

std::unique_ptr<Optimizer> build_optimizer(const Config& cfg, nn::Module& model) {
  return make_optimizer(model.parameters(), cfg.optim);
}

io::LoaderOptions train_loader_options(const Config& cfg, Device dev, int rank, int world) {
  MC_CHECK(world >= 1 && cfg.train.batch_size % world == 0, "train.batch_size ", cfg.train.batch_size,
           " is the global batch and must divide evenly over ", world, " ranks");
  io::LoaderOptions lo = cfg.loader;
  lo.batch = cfg.train.batch_size / world;
  lo.rank = rank;
  lo.world = world;
  lo.seed = uint64_t(cfg.train.seed);
  lo.num_classes = cfg.model.num_classes;
  lo.drop_last = true;
  lo.device = dev;
  return lo;
}

}  // namespace mc::pipeline
