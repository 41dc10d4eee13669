#include "models/efficientnet3d.h"

#include <cmath>

namespace mc::models {
namespace {

using nn::BatchNorm3d;
using nn::Conv3d;
using nn::Sequential;

Tensor activate(Act a, const Tensor& x) { return a == Act::ReLU6 ? relu6(x) : silu(x); }

// timm's make_divisible (divisor 8, round_limit 0.9): the widths of these two networks are
// multiples of 8 already, kept for the exact rule.
int64_t make_divisible(double v, int64_t divisor = 8) {
  int64_t n = std::max<int64_t>(divisor, int64_t(v + double(divisor) / 2) / divisor * divisor);
  if (double(n) < 0.9 * v) n += divisor;
  return n;
}

int64_t same_pad(int64_t k, int64_t s) { return ((s - 1) + (k - 1)) / 2; }  // timm get_padding

class SqueezeExcite : public nn::Module {
 public:
  SqueezeExcite(int64_t chs, int64_t rd, Act act) : act_(act) {
    reduce_ = &register_module("conv_reduce", std::make_unique<Conv3d>(chs, rd, 1, 1, 0, true));
    expand_ = &register_module("conv_expand", std::make_unique<Conv3d>(rd, chs, 1, 1, 0, true));
  }
  Tensor forward(const Tensor& x) override {
    // x.mean((2, 3, 4), keepdim=True) -> 1^3 convs -> sigmoid gate, as timm: the 1^3 convs run
    // on a one-voxel volume, so the keys and weights are timm's.
    const int64_t N = x.size(0), C = x.size(1);
    Tensor s = reshape(global_avg_pool3d(x), {N, C, 1, 1, 1});
    s = expand_->forward(activate(act_, reduce_->forward(s)));
    return channel_mul(x, sigmoid(reshape(s, {N, C})));
  }
 private:
  nn::Module *reduce_, *expand_;
  Act act_;
};

// What every block shares: the activation, its skip and drop-path rule.
struct BlockCfg {
  Act act;
  double drop_path = 0;
  Generator* gen = nullptr;
};

class DepthwiseSeparable : public nn::Module {
 public:
  DepthwiseSeparable(int64_t in, int64_t out, int64_t k, int64_t s, double se_ratio, BlockCfg c)
      : c_(c), skip_(s == 1 && in == out) {
    dw_ = &register_module("conv_dw", std::make_unique<Conv3d>(in, in, k, s, same_pad(k, s), false, in));
    bn1_ = &register_module("bn1", std::make_unique<BatchNorm3d>(in));
    if (se_ratio > 0)
      se_ = &register_module("se", std::make_unique<SqueezeExcite>(in, int64_t(std::round(double(in) * se_ratio)), c.act));
    pw_ = &register_module("conv_pw", std::make_unique<Conv3d>(in, out, 1));
    bn2_ = &register_module("bn2", std::make_unique<BatchNorm3d>(out));
  }
  Tensor forward(const Tensor& x) override {
    Tensor y = activate(c_.act, bn1_->forward(dw_->forward(x)));
    if (se_) y = se_->forward(y);
    y = bn2_->forward(pw_->forward(y));  // no activation after the point-wise conv (timm)
    return skip_ ? add(drop_path(y, c_.drop_path, is_training(), *c_.gen), x) : y;
  }
 private:
  BlockCfg c_;
  bool skip_;
  nn::Module *dw_, *bn1_, *se_ = nullptr, *pw_, *bn2_;
};

class InvertedResidual : public nn::Module {
 public:
  InvertedResidual(int64_t in, int64_t out, int64_t k, int64_t s, int64_t exp, double se_ratio,
                   BlockCfg c)
      : c_(c), skip_(s == 1 && in == out) {
    const int64_t mid = make_divisible(double(in * exp));
    pw_ = &register_module("conv_pw", std::make_unique<Conv3d>(in, mid, 1));
    bn1_ = &register_module("bn1", std::make_unique<BatchNorm3d>(mid));
    dw_ = &register_module("conv_dw", std::make_unique<Conv3d>(mid, mid, k, s, same_pad(k, s), false, mid));
    bn2_ = &register_module("bn2", std::make_unique<BatchNorm3d>(mid));
    if (se_ratio > 0) {
      // timm divides se_ratio by the expansion and applies it to mid: round(mid * r / exp).
      const int64_t rd = int64_t(std::round(double(mid) * (se_ratio / double(exp))));
      se_ = &register_module("se", std::make_unique<SqueezeExcite>(mid, rd, c.act));
    }
    pwl_ = &register_module("conv_pwl", std::make_unique<Conv3d>(mid, out, 1));
    bn3_ = &register_module("bn3", std::make_unique<BatchNorm3d>(out));
  }
  Tensor forward(const Tensor& x) override {
    Tensor y = activate(c_.act, bn1_->forward(pw_->forward(x)));
    y = activate(c_.act, bn2_->forward(dw_->forward(y)));
    if (se_) y = se_->forward(y);
    y = bn3_->forward(pwl_->forward(y));
    return skip_ ? add(drop_path(y, c_.drop_path, is_training(), *c_.gen), x) : y;
  }
 private:
  BlockCfg c_;
  bool skip_;
  nn::Module *pw_, *bn1_, *dw_, *bn2_, *se_ = nullptr, *pwl_, *bn3_;
};

}  // namespace

EfficientNetSpec efficientnet_spec(const std::string& name) {
  if (name == "mobilenetv2_100")
    return {{{'d', 1, 3, 1, 1, 16},
             {'i', 2, 3, 2, 6, 24},
             {'i', 3, 3, 2, 6, 32},
             {'i', 4, 3, 2, 6, 64},
             {'i', 3, 3, 1, 6, 96},
             {'i', 3, 3, 2, 6, 160},
             {'i', 1, 3, 1, 6, 320}},
            Act::ReLU6, 0.0};
  if (name == "efficientnet_b0")
    return {{{'d', 1, 3, 1, 1, 16},
             {'i', 2, 3, 2, 6, 24},
             {'i', 2, 5, 2, 6, 40},
             {'i', 3, 3, 2, 6, 80},
             {'i', 3, 5, 1, 6, 112},
             {'i', 4, 5, 2, 6, 192},
             {'i', 1, 3, 1, 6, 320}},
            Act::SiLU, 0.25};
  MC_FAIL("unknown EfficientNet-family model '", name, "' (known: mobilenetv2_100, efficientnet_b0)");
}

bool is_efficientnet(const std::string& name) {
  return name == "mobilenetv2_100" || name == "efficientnet_b0";
}

EfficientNet3d::EfficientNet3d(const EfficientNetSpec& spec, int64_t in_chans, int64_t num_classes)
    : act_(spec.act), num_features_(spec.num_features) {
  MC_CHECK(in_chans >= 1 && num_classes >= 1, "EfficientNet3d: in_chans ", in_chans,
           " and num_classes ", num_classes, " must be >= 1");
  MC_CHECK(spec.drop_path_rate >= 0 && spec.drop_path_rate < 1, "EfficientNet3d: drop_path_rate ",
           spec.drop_path_rate, " must be in [0, 1)");
  conv_stem_ = &register_module("conv_stem", std::make_unique<Conv3d>(in_chans, spec.stem, 3, 2, 1));
  bn1_ = &register_module("bn1", std::make_unique<BatchNorm3d>(spec.stem));
  int total = 0;
  for (const MBStage& st : spec.stages) total += st.repeats;
  auto blocks = std::make_unique<Sequential>();
  int64_t in = spec.stem;
  int idx = 0;
  for (const MBStage& st : spec.stages) {
    auto stage = std::make_unique<Sequential>();
    for (int r = 0; r < st.repeats; ++r, ++idx) {
      const int64_t s = r == 0 ? st.stride : 1, out = make_divisible(double(st.out));
      const BlockCfg c{spec.act, spec.drop_path_rate * idx / total, &drop_gen_};
      if (st.type == 'd')
        stage->add(std::make_unique<DepthwiseSeparable>(in, out, st.kernel, s, spec.se_ratio, c));
      else
        stage->add(std::make_unique<InvertedResidual>(in, out, st.kernel, s, st.exp_ratio,
                                                      spec.se_ratio, c));
      in = out;
    }
    blocks->add(std::move(stage));
  }
  blocks_ = &register_module("blocks", std::move(blocks));
  conv_head_ = &register_module("conv_head", std::make_unique<Conv3d>(in, num_features_, 1));
  bn2_ = &register_module("bn2", std::make_unique<BatchNorm3d>(num_features_));
  classifier_ = &register_module("classifier", std::make_unique<nn::Linear>(num_features_, num_classes));
}

Tensor EfficientNet3d::forward_features(const Tensor& x) {
  MC_CHECK(x.dim() == 5, "EfficientNet3d: input must be [N, C, D, H, W], got ", x.str());
  Tensor y = activate(act_, bn1_->forward(conv_stem_->forward(x)));
  y = blocks_->forward(y);
  return activate(act_, bn2_->forward(conv_head_->forward(y)));
}

Tensor EfficientNet3d::forward(const Tensor& x) {
  return classifier_->forward(global_avg_pool3d(forward_features(x)));
}

void EfficientNet3d::init_weights(uint64_t seed) {
  Generator g(seed);
  drop_gen_ = Generator(seed ^ 0x5eedd00dULL);
  auto ends = [](const std::string& s, const char* suf) {
    const std::string t(suf);
    return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
  };
  for (auto& [name, t] : named_parameters()) {
    if (t->dim() == 5) {
      // Only the depthwise convs are grouped here: one group per output channel.
      const int64_t groups = ends(name, "conv_dw.weight") ? t->size(0) : 1;
      const double fan_out = double(t->size(0) * t->size(2) * t->size(3) * t->size(4) / groups);
      normal_(*t, g, 0.0, std::sqrt(2.0 / fan_out));
    } else if (name == "classifier.weight") {
      const double r = 1.0 / std::sqrt(double(t->size(0)));
      uniform_(*t, g, -r, r);
    } else {
      // BN weight 1; BN, conv and classifier biases 0.
      t->fill_(ends(name, ".weight") ? 1.0 : 0.0);
    }
  }
}

}  // namespace mc::models
