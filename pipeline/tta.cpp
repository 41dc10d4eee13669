#include "pipeline/tta.h"

#include "engine/autograd.h"
#include "engine/check.h"
#include "pipeline/model.h"

namespace mc::pipeline {

std::vector<Flip> tta_flips(const Config& cfg) {
  const io::LoaderOptions& lo = cfg.loader;
  std::vector<int> axes;
  if (lo.augment)
    for (int a = 0; a < 3; ++a)
      if (lo.aug.flip_p[a] > 0) axes.push_back(a);
  MC_CHECK(!axes.empty(), "--tta: the model was trained without flips (augment.enabled = ", lo.augment ? "true" : "false",
           ", augment.flip_prob = 0 on every axis), so flipped views are inputs it never saw");
  std::vector<Flip> v;
  for (int mask = 0; mask < (1 << axes.size()); ++mask) {
    Flip f{false, false, false};
    for (size_t i = 0; i < axes.size(); ++i) f[size_t(axes[i])] = (mask >> i) & 1;
    v.push_back(f);
  }
  return v;
}

std::string flips_text(const std::vector<Flip>& flips) {
  std::string axes;
  const char* names[3] = {"D (inferior-superior)", "H (posterior-anterior)", "W (left-right)"};
  for (int a = 0; a < 3; ++a) {
    bool used = false;
    for (const Flip& f : flips) used = used || f[size_t(a)];
    if (used) axes += (axes.empty() ? "" : ", ") + std::string(names[a]);
  }
  return std::to_string(flips.size()) + " views: every combination of flips along " + axes;
}

Tensor flip_volume(const Tensor& x, const Flip& f) {
  MC_CHECK(x.dim() == 5, "flip: [N, C, D, H, W] expected, got ", x.str());
  const Tensor c = x.to(Device::cpu()).to(DType::F32);
  const int64_t NC = c.size(0) * c.size(1), D = c.size(2), H = c.size(3), W = c.size(4);
  Tensor out = Tensor::empty(c.shape());
  const float* s = c.data<float>();
  float* d = out.data<float>();
  for (int64_t n = 0; n < NC; ++n)
    for (int64_t z = 0; z < D; ++z)
      for (int64_t y = 0; y < H; ++y)
        for (int64_t w = 0; w < W; ++w) {
          const int64_t sz = f[0] ? D - 1 - z : z, sy = f[1] ? H - 1 - y : y, sw = f[2] ? W - 1 - w : w;
          d[((n * D + z) * H + y) * W + w] = s[((n * D + sz) * H + sy) * W + sw];
        }
  return out.to(x.device());
}

Tensor tta_logits(nn::Module& model, const Tensor& x, Device dev, const std::vector<Flip>& flips) {
  MC_CHECK(!flips.empty(), "tta: no views");
  model.eval();
  NoGradGuard ng;
  const auto params = model.parameters();
  const DType dt = params.empty() ? DType::F32 : params[0]->dtype();  // f64 in golden runs
  Tensor sum;
  for (const Flip& f : flips) {
    const bool id = !f[0] && !f[1] && !f[2];
    Tensor y = model.forward(model_input(id ? x : flip_volume(x, f), dev).to(dt)).to(Device::cpu()).to(DType::F64);
    if (!sum.defined()) {
      sum = y.clone();
    } else {
      double* a = sum.data<double>();
      const double* b = y.data<double>();
      for (int64_t i = 0; i < sum.numel(); ++i) a[i] += b[i];
    }
  }
  double* a = sum.data<double>();
  for (int64_t i = 0; i < sum.numel(); ++i) a[i] /= double(flips.size());
  return sum.to(DType::F32);
}

}  // namespace mc::pipeline
