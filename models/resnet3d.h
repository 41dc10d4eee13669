// The ResNet-3D family in timm_3d / torchvision layout and key names (conv1, bn1, layer1.0.conv1,
// layer1.0.downsample.0, fc, ...). MedConv = resnet50. resnet10/18/34 use basic blocks,
// resnet50/101/152 bottlenecks. Stem: conv 7^3 stride 2 -> BN -> ReLU -> max pool 3^3 stride 2.
// Table II adds timm's variants:
//  * resnet10t / resnet14t (basic / bottleneck, one block per stage): the "deep_tiered" stem
//    conv1 = Sequential(conv 3^3 s2 in->24, BN, ReLU, conv 24->32, BN, ReLU, conv 32->64)
//    (keys conv1.0, conv1.1, conv1.3, conv1.4, conv1.6), then bn1; and avg_down shortcuts
//    downsample = Sequential(AvgPool3d(2, s, ceil_mode, count_include_pad=False) or Identity,
//    conv 1^3, BN) (keys downsample.1, downsample.2);
//  * resnext50_32x4d: bottlenecks whose 3^3 conv has 32 groups, width floor(planes * 4 / 64) * 32.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "engine/nn.h"
#include "models/zoo.h"

namespace mc::models {

struct ResNetSpec {
  bool bottleneck;
  std::vector<int> layers;  // blocks per stage
  int64_t cardinality = 1, base_width = 64;  // ResNeXt: groups of the 3^3 conv, width per group
  bool deep_tiered_stem = false;             // timm's stem_type "deep_tiered", stem_width 32
  bool avg_down = false;                     // average-pool shortcut downsampling
};

// Names: resnet10, resnet18, resnet34, resnet50, resnet101, resnet152, medconv (= resnet50),
// resnet10t, resnet14t, resnext50_32x4d. Throws for other names.
ResNetSpec resnet_spec(const std::string& name);
bool is_resnet(const std::string& name);

class ResNet3d : public nn::Module {
 public:
  ResNet3d(const ResNetSpec& spec, int64_t in_chans, int64_t num_classes);
  Tensor forward(const Tensor& x) override;
  Tensor forward_features(const Tensor& x);  // before the pool: [N, C, d, h, w]
  Tensor forward_pooled(const Tensor& x);    // after the global pool: [N, num_features]
  Tensor forward_head(const Tensor& pooled);  // the classifier: forward = head(pooled(x))
  // The network split after stage `stage` (1..4 = layer1..layer4): stem + layers 1..stage, and
  // the rest (layers stage+1..4 + pool + head). forward = from_stage(to_stage(x, s), s) for every s.
  Tensor forward_to_stage(const Tensor& x, int stage);
  Tensor forward_from_stage(const Tensor& a, int stage);
  int64_t num_features() const { return num_features_; }
  // kaiming-normal (fan_out) convolutions, BN weight 1 / bias 0, PyTorch's default init for fc;
  // deterministic from the seed. zero_init_last also zeroes the last BN weight of each residual
  // branch, so every block starts as its shortcut: timm's default (zero_init_last=True);
  // torchvision's default (zero_init_residual=False) does not. With it, a network whose stride-2
  // 1x1x1 shortcuts reach a 1^3 map (volumes up to 32^3) sees only the input's corner at init:
  // constant features on background-padded volumes, a dead start (mc_train warns).
  void init_weights(uint64_t seed, bool zero_init_last = true);

 private:
  nn::Module *conv1_, *bn1_, *pool_, *fc_;  // conv1: one conv or the deep stem
  std::vector<nn::Module*> stages_;
  int64_t num_features_;
  bool bottleneck_;
};

}  // namespace mc::models
