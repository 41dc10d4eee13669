// timm's EfficientNet family in 3D, in timm_3d's module tree and state-dict keys:
//   conv_stem (3^3 stride 2) -> bn1 (+act) -> blocks.{stage}.{block} -> conv_head (1^3) ->
//   bn2 (+act) -> global average pool -> classifier (Linear)
// blocks: DepthwiseSeparableConv "ds" (conv_dw, bn1, [se], conv_pw, bn2) and InvertedResidual
// "ir" (conv_pw, bn1, conv_dw, bn2, [se], conv_pwl, bn3); the depthwise conv has one group per
// channel, padding ((stride - 1) + (k - 1)) / 2; a block adds its input (after drop-path) when
// its stride is 1 and its input and output widths are equal. Squeeze-and-excitation
// (se.conv_reduce, se.conv_expand: 1^3 convs with bias) gates the expanded channels with
// sigmoid, reducing to round(block input width * se_ratio) channels (timm's se_from_exp=False).
//   mobilenetv2_100: ReLU6, no SE, stem 32, head 1280.
//   efficientnet_b0: SiLU, SE 0.25, stem 32, head 1280.
// Drop-path (stochastic depth) rate grows linearly over the blocks, block i of n gets
// rate * i / n, as timm; 0 by default, as timm's create_model.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "engine/nn.h"
#include "models/zoo.h"

namespace mc::models {

enum class Act { ReLU6, SiLU };

struct MBStage {
  char type;  // 'd' depthwise-separable, 'i' inverted residual
  int repeats, kernel, stride, exp_ratio, out;
};

struct EfficientNetSpec {
  std::vector<MBStage> stages;
  Act act = Act::ReLU6;
  double se_ratio = 0;  // 0: no squeeze-and-excitation
  int64_t stem = 32, num_features = 1280;
  double drop_path_rate = 0;
};

EfficientNetSpec efficientnet_spec(const std::string& name);  // throws for other names
bool is_efficientnet(const std::string& name);

class EfficientNet3d : public nn::Module {
 public:
  EfficientNet3d(const EfficientNetSpec& spec, int64_t in_chans, int64_t num_classes);
  Tensor forward(const Tensor& x) override;
  Tensor forward_features(const Tensor& x);  // after bn2: [N, num_features, d, h, w]
  int64_t num_features() const { return num_features_; }
  // timm's _init_weight_goog: convs N(0, sqrt(2 / fan_out)), fan_out = k^3 * out / groups, conv
  // biases 0; BN 1 / 0; the classifier U(+-1 / sqrt(classes)), bias 0. Also seeds drop-path.
  void init_weights(uint64_t seed);

 private:
  nn::Module *conv_stem_, *bn1_, *blocks_, *conv_head_, *bn2_, *classifier_;
  Act act_;
  int64_t num_features_;
  Generator drop_gen_;  // drop-path masks, shared by the blocks
};

}  // namespace mc::models
