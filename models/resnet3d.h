// The ResNet-3D family in timm_3d / torchvision layout and key names (conv1, bn1, layer1.0.conv1,
// layer1.0.downsample.0, fc, ...). MedConv = resnet50. resnet10/18/34 use basic blocks,
// resnet50/101/152 bottlenecks. Stem: conv 7^3 stride 2 -> BN -> ReLU -> max pool 3^3 stride 2.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "engine/nn.h"

namespace mc::models {

struct ResNetSpec {
  bool bottleneck;
  std::vector<int> layers;  // blocks per stage
};

// Names: resnet10, resnet18, resnet34, resnet50, resnet101, resnet152, medconv (= resnet50).
ResNetSpec resnet_spec(const std::string& name);
std::vector<std::string> model_names();

class ResNet3d : public nn::Module {
 public:
  ResNet3d(const ResNetSpec& spec, int64_t in_chans, int64_t num_classes);
  Tensor forward(const Tensor& x) override;
  Tensor forward_features(const Tensor& x);  // before the pool: [N, C, d, h, w]
  Tensor forward_head(const Tensor& features);  // global average pool + fc: [N, classes]
  // The network split after stage `stage` (1..4 = layer1..layer4): stem + layers 1..stage, and
  // the rest (layers stage+1..4 + head). forward = from_stage(to_stage(x, s), s) for every s.
  Tensor forward_to_stage(const Tensor& x, int stage);
  Tensor forward_from_stage(const Tensor& a, int stage);
  int64_t num_features() const { return num_features_; }
  // timm's init: kaiming-normal (fan_out) convolutions, BN weight 1 / bias 0, the last BN of each
  // block zeroed (zero_init_last), PyTorch's default init for fc. Deterministic from the seed.
  void init_weights(uint64_t seed, bool zero_init_last = true);

 private:
  nn::Module *conv1_, *bn1_, *pool_, *fc_;
  std::vector<nn::Module*> stages_;
  int64_t num_features_;
  bool bottleneck_;
};

std::unique_ptr<ResNet3d> create(const std::string& name, int64_t in_chans, int64_t num_classes,
                                 uint64_t seed);

}  // namespace mc::models
