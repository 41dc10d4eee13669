#include "models/zoo.h"

#include "models/efficientnet3d.h"
#include "models/resnet3d.h"

namespace mc::models {

std::vector<std::string> model_names() {
  return {"resnet10",  "resnet18",  "resnet34",        "resnet50",        "resnet101",
          "resnet152", "medconv",   "resnet10t",       "resnet14t",       "resnext50_32x4d",
          "mobilenetv2_100", "efficientnet_b0"};
}

std::unique_ptr<nn::Module> create(const std::string& name, int64_t in_chans, int64_t num_classes,
                                   uint64_t seed, bool zero_init_last) {
  if (is_efficientnet(name)) {
    auto m = std::make_unique<EfficientNet3d>(efficientnet_spec(name), in_chans, num_classes);
    m->init_weights(seed);
    return m;
  }
  auto m = std::make_unique<ResNet3d>(resnet_spec(name), in_chans, num_classes);  // or throws
  m->init_weights(seed, zero_init_last);
  return m;
}

std::string stem_weight_name(const std::string& name) {
  if (is_efficientnet(name)) return "conv_stem.weight";
  return resnet_spec(name).deep_tiered_stem ? "conv1.0.weight" : "conv1.weight";
}

}  // namespace mc::models
