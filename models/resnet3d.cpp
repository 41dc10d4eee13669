#include "models/resnet3d.h"

#include <regex>

namespace mc::models {
namespace {

using nn::BatchNorm3d;
using nn::Conv3d;
using nn::Sequential;

class BasicBlock : public nn::Module {
 public:
  static constexpr int64_t expansion = 1;
  BasicBlock(int64_t in, int64_t planes, int64_t stride, std::unique_ptr<Sequential> down) {
    conv1_ = &register_module("conv1", std::make_unique<Conv3d>(in, planes, 3, stride, 1));
    bn1_ = &register_module("bn1", std::make_unique<BatchNorm3d>(planes));
    conv2_ = &register_module("conv2", std::make_unique<Conv3d>(planes, planes, 3, 1, 1));
    bn2_ = &register_module("bn2", std::make_unique<BatchNorm3d>(planes));
    if (down) down_ = &register_module("downsample", std::move(down));
  }
  Tensor forward(const Tensor& x) override {
    Tensor y = relu(bn1_->forward(conv1_->forward(x)));
    y = bn2_->forward(conv2_->forward(y));
    return relu(add(y, down_ ? down_->forward(x) : x));
  }
  BatchNorm3d& last_bn() { return *bn2_; }

 private:
  Conv3d *conv1_, *conv2_;
  BatchNorm3d *bn1_, *bn2_;
  Sequential* down_ = nullptr;
};

class Bottleneck : public nn::Module {
 public:
  static constexpr int64_t expansion = 4;
  // width = floor(planes * base_width / 64) * cardinality (timm), planes for plain ResNets.
  Bottleneck(int64_t in, int64_t planes, int64_t stride, std::unique_ptr<Sequential> down,
             int64_t cardinality = 1, int64_t base_width = 64) {
    const int64_t width = planes * base_width / 64 * cardinality;
    conv1_ = &register_module("conv1", std::make_unique<Conv3d>(in, width, 1));
    bn1_ = &register_module("bn1", std::make_unique<BatchNorm3d>(width));
    conv2_ = &register_module("conv2", std::make_unique<Conv3d>(width, width, 3, stride, 1, false,
                                                                 cardinality));
    bn2_ = &register_module("bn2", std::make_unique<BatchNorm3d>(width));
    conv3_ = &register_module("conv3", std::make_unique<Conv3d>(width, planes * 4, 1));
    bn3_ = &register_module("bn3", std::make_unique<BatchNorm3d>(planes * 4));
    if (down) down_ = &register_module("downsample", std::move(down));
  }
  Tensor forward(const Tensor& x) override {
    Tensor y = relu(bn1_->forward(conv1_->forward(x)));
    y = relu(bn2_->forward(conv2_->forward(y)));
    y = bn3_->forward(conv3_->forward(y));
    return relu(add(y, down_ ? down_->forward(x) : x));
  }
  BatchNorm3d& last_bn() { return *bn3_; }

 private:
  Conv3d *conv1_, *conv2_, *conv3_;
  BatchNorm3d *bn1_, *bn2_, *bn3_;
  Sequential* down_ = nullptr;
};

// The avg_down shortcut's first module: nn.Identity at stride 1, else
// AvgPool3d(2, stride, ceil_mode=True, count_include_pad=False). No parameters either way, but
// it holds index 0 of the Sequential, so the conv and BN keep timm's keys (downsample.1, .2).
class AvgDown : public nn::Module {
 public:
  explicit AvgDown(int64_t stride) : s_(stride) {}
  Tensor forward(const Tensor& x) override {
    return s_ == 1 ? x : avg_pool3d(x, {2, 2, 2}, {s_, s_, s_}, true);
  }
 private:
  int64_t s_;
};

template <class Block>
std::unique_ptr<Sequential> make_stage(int64_t& in, int64_t planes, int blocks, int64_t stride,
                                       const ResNetSpec& spec) {
  auto stage = std::make_unique<Sequential>();
  for (int i = 0; i < blocks; ++i) {
    const int64_t s = i == 0 ? stride : 1, out = planes * Block::expansion;
    std::unique_ptr<Sequential> down;
    if (i == 0 && (s != 1 || in != out)) {
      down = std::make_unique<Sequential>();
      if (spec.avg_down) {
        down->add(std::make_unique<AvgDown>(s));
        down->add(std::make_unique<Conv3d>(in, out, 1));
      } else {
        down->add(std::make_unique<Conv3d>(in, out, 1, s));
      }
      down->add(std::make_unique<BatchNorm3d>(out));
    }
    if constexpr (Block::expansion == 4)
      stage->add(std::make_unique<Block>(in, planes, s, std::move(down), spec.cardinality,
                                         spec.base_width));
    else
      stage->add(std::make_unique<Block>(in, planes, s, std::move(down)));
    in = out;
  }
  return stage;
}

}  // namespace

ResNetSpec resnet_spec(const std::string& name) {
  if (name == "resnet10t") return {false, {1, 1, 1, 1}, 1, 64, true, true};
  if (name == "resnet14t") return {true, {1, 1, 1, 1}, 1, 64, true, true};
  if (name == "resnext50_32x4d") return {true, {3, 4, 6, 3}, 32, 4};
  if (name == "resnet10") return {false, {1, 1, 1, 1}};
  if (name == "resnet18") return {false, {2, 2, 2, 2}};
  if (name == "resnet34") return {false, {3, 4, 6, 3}};
  if (name == "resnet50" || name == "medconv") return {true, {3, 4, 6, 3}};
  if (name == "resnet101") return {true, {3, 4, 23, 3}};
  if (name == "resnet152") return {true, {3, 8, 36, 3}};
  std::string known;
  for (const auto& n : model_names()) known += (known.empty() ? "" : ", ") + n;
  MC_FAIL("unknown model '", name, "'; known models: ", known);
}

bool is_resnet(const std::string& name) {
  for (const char* n : {"resnet10", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
                        "medconv", "resnet10t", "resnet14t", "resnext50_32x4d"})
    if (name == n) return true;
  return false;
}

ResNet3d::ResNet3d(const ResNetSpec& spec, int64_t in_chans, int64_t num_classes)
    : bottleneck_(spec.bottleneck) {
  MC_CHECK(in_chans >= 1 && num_classes >= 1, "ResNet3d: in_chans ", in_chans, " and num_classes ",
           num_classes, " must be >= 1");
  MC_CHECK(spec.layers.size() == 4, "ResNet3d: four stages expected");
  MC_CHECK(spec.bottleneck || (spec.cardinality == 1 && spec.base_width == 64),
           "ResNet3d: basic blocks support only cardinality 1 and base width 64 (as timm)");
  if (spec.deep_tiered_stem) {
    // timm: stem_width 32, tiered widths (3 * (32 / 4), 32), then inplanes = 2 * 32 = 64.
    auto stem = std::make_unique<Sequential>();
    stem->add(std::make_unique<Conv3d>(in_chans, 24, 3, 2, 1));
    stem->add(std::make_unique<BatchNorm3d>(24));
    stem->add(std::make_unique<nn::ReLU>());
    stem->add(std::make_unique<Conv3d>(24, 32, 3, 1, 1));
    stem->add(std::make_unique<BatchNorm3d>(32));
    stem->add(std::make_unique<nn::ReLU>());
    stem->add(std::make_unique<Conv3d>(32, 64, 3, 1, 1));
    conv1_ = &register_module("conv1", std::move(stem));
  } else {
    conv1_ = &register_module("conv1", std::make_unique<Conv3d>(in_chans, 64, 7, 2, 3));
  }
  bn1_ = &register_module("bn1", std::make_unique<BatchNorm3d>(64));
  pool_ = &register_module("maxpool", std::make_unique<nn::MaxPool3d>(3, 2, 1));
  int64_t in = 64;
  const int64_t planes[4] = {64, 128, 256, 512}, strides[4] = {1, 2, 2, 2};
  for (int s = 0; s < 4; ++s) {
    auto stage = spec.bottleneck
                     ? make_stage<Bottleneck>(in, planes[s], spec.layers[s], strides[s], spec)
                     : make_stage<BasicBlock>(in, planes[s], spec.layers[s], strides[s], spec);
    stages_.push_back(&register_module("layer" + std::to_string(s + 1), std::move(stage)));
  }
  num_features_ = in;
  fc_ = &register_module("fc", std::make_unique<nn::Linear>(in, num_classes));
}

Tensor ResNet3d::forward_features(const Tensor& x) {
  MC_CHECK(x.dim() == 5, "ResNet3d: input must be [N, C, D, H, W], got ", x.str());
  Tensor y = pool_->forward(relu(bn1_->forward(conv1_->forward(x))));
  for (nn::Module* s : stages_) y = s->forward(y);
  return y;
}

Tensor ResNet3d::forward_to_stage(const Tensor& x, int stage) {
  MC_CHECK(stage >= 1 && stage <= int(stages_.size()), "ResNet3d: stage ", stage, " out of 1..", stages_.size());
  MC_CHECK(x.dim() == 5, "ResNet3d: input must be [N, C, D, H, W], got ", x.str());
  Tensor y = pool_->forward(relu(bn1_->forward(conv1_->forward(x))));
  for (int s = 0; s < stage; ++s) y = stages_[size_t(s)]->forward(y);
  return y;
}

Tensor ResNet3d::forward_pooled(const Tensor& x) { return global_avg_pool3d(forward_features(x)); }

Tensor ResNet3d::forward_head(const Tensor& pooled) { return fc_->forward(pooled); }

Tensor ResNet3d::forward(const Tensor& x) { return forward_head(forward_pooled(x)); }

Tensor ResNet3d::forward_from_stage(const Tensor& a, int stage) {
  MC_CHECK(stage >= 1 && stage <= int(stages_.size()), "ResNet3d: stage ", stage, " out of 1..", stages_.size());
  Tensor y = a;
  for (size_t s = size_t(stage); s < stages_.size(); ++s) y = stages_[s]->forward(y);
  return forward_head(global_avg_pool3d(y));
}

void ResNet3d::init_weights(uint64_t seed, bool zero_init_last) {
  Generator g(seed);
  for (auto& [name, t] : named_parameters()) {
    const bool is_fc = name.rfind("fc.", 0) == 0;
    if (t->dim() == 5) {
      kaiming_normal_fan_out_(*t, g);
    } else if (is_fc && t->dim() == 2) {
      Tensor* bias = nullptr;
      for (auto& [n2, t2] : named_parameters())
        if (n2 == "fc.bias") bias = t2;
      nn::default_init_(*t, bias, g);
    } else if (!is_fc) {  // batch norm affine
      const bool is_weight = name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0;
      t->fill_(is_weight ? 1.0 : 0.0);
    }
  }
  if (!zero_init_last) return;
  // The last BN of each residual branch starts at zero so every block starts as identity.
  const std::regex last_bn(bottleneck_ ? R"(layer\d\.\d+\.bn3\.weight)" : R"(layer\d\.\d+\.bn2\.weight)");
  for (auto& [name, t] : named_parameters())
    if (std::regex_match(name, last_bn)) t->fill_(0.0);
}

}  // namespace mc::models
