#include "pipeline/train_setup.h"

#include <iostream>

#include "engine/memory.h"
#include "engine/precision.h"
#include "engine/train_optim.h"
#include "io/safetensors.h"
#include "io/state_dict_io.h"
#include "models/resnet3d.h"

namespace mc {

Device resolve_device(Config::Train::Device d) {
  switch (d) {
    case Config::Train::Device::CPU: return Device::cpu();
    case Config::Train::Device::CUDA:
      MC_CHECK(cuda_available(), "train.device is 'cuda' but no usable GPU was found (set train.device=auto or cpu)");
      return Device::cuda(0);
    case Config::Train::Device::Auto: break;
  }
  return cuda_available() ? Device::cuda(0) : Device::cpu();
}

void set_compute_mode(const Config& cfg, Device dev) {
  (void)dev;  // the layout decision (channels-last for bf16/tf32 on a GPU) will depend on it
  set_precision(cfg.train.precision);
  set_deterministic(cfg.train.deterministic);
}

std::unique_ptr<nn::Module> build_model(const Config& cfg) {
  auto m = models::create(std::string(model_arch(cfg.model.name)), cfg.model.in_chans,
                          cfg.model.num_classes, uint64_t(cfg.train.seed));
  if (!cfg.model.pretrained.empty()) {
    StateDict src = load_safetensors(cfg.model.pretrained);
    if (cfg.model.inflate_2d) src = inflate_2d_to_3d(src, cfg.model.in_chans);
    for (const auto& prefix : cfg.model.pretrained_skip) drop_keys(src, prefix);
    LoadOptions lo;
    lo.strict = false;  // the head (fc) of a pretrained backbone rarely fits our classes
    LoadReport r = load_state_dict(m->state_dict(), src, lo);
    std::cout << "pretrained " << cfg.model.pretrained << ": " << r.summary() << "\n";
  }
  return m;
}

std::unique_ptr<Optimizer> build_optimizer(const Config& cfg, nn::Module& model) {
  return make_optimizer(model.parameters(), cfg.optim);
}

LoaderOptions train_loader_options(const Config& cfg, Device dev, int rank, int world) {
  MC_CHECK(world >= 1 && cfg.train.batch_size % world == 0, "train.batch_size ", cfg.train.batch_size,
           " is the global batch and must divide evenly over ", world, " ranks");
  LoaderOptions lo = cfg.loader;
  lo.batch = cfg.train.batch_size / world;
  lo.rank = rank;
  lo.world = world;
  lo.seed = uint64_t(cfg.train.seed);
  lo.num_classes = cfg.model.num_classes;
  lo.drop_last = true;
  lo.device = dev;
  return lo;
}

}  // namespace mc
