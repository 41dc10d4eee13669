// The model registry: every network a config's model.name can pick, by timm's name, each in
// timm_3d's module tree and state-dict keys and initialised as timm initialises it.
//   ResNets (models/resnet3d.h): resnet10/18/34/50/101/152, medconv (= resnet50), resnet10t,
//     resnet14t, resnext50_32x4d.
//   EfficientNet family (models/efficientnet3d.h): mobilenetv2_100, efficientnet_b0.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/nn.h"

namespace mc::models {

std::vector<std::string> model_names();
// Throws, listing model_names(), for a name not among them. Deterministic from the seed.
// zero_init_last (ResNets: ResNet3d::init_weights) true is timm's init; programs take it from
// the run config (model.zero_init_last, whose default differs: pipeline/config_schema.cpp).
std::unique_ptr<nn::Module> create(const std::string& name, int64_t in_chans, int64_t num_classes,
                                   uint64_t seed, bool zero_init_last = true);
// The key of the first convolution (the one that sees the input channels): conv1.weight,
// conv1.0.weight (the deep stems of resnet10t / resnet14t) or conv_stem.weight. 2D weight
// import adapts this kernel to the input channels.
std::string stem_weight_name(const std::string& name);

}  // namespace mc::models
