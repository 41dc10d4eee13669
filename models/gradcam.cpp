#include "models/gradcam.h"

#include <algorithm>
#include <cmath>

#include "engine/autograd.h"
#include "engine/check.h"
#include "engine/ops.h"

namespace mc::models {

GradCam grad_cam(const Tensor& features, const std::function<Tensor(const Tensor&)>& head, int64_t cls) {
  MC_CHECK(features.dim() == 5 && features.size(0) == 1, "Grad-CAM: features must be [1, C, d, h, w], got ",
           shape_str(features.shape()));
  Tensor a = features.detach();
  a.set_requires_grad(true);
  Tensor logits = head(a);
  MC_CHECK(logits.dim() == 2 && logits.size(0) == 1, "Grad-CAM: the head must give logits [1, K], got ",
           shape_str(logits.shape()));
  const int64_t K = logits.size(1);
  GradCam g;
  for (float v : logits.to(DType::F32).to_vector<float>()) g.logits.push_back(v);
  if (cls < 0) cls = int64_t(std::max_element(g.logits.begin(), g.logits.end()) - g.logits.begin());
  MC_CHECK(cls < K, "Grad-CAM: class ", cls, " out of range (the model has ", K, " classes: 0..", K - 1, ")");
  g.cls = cls;
  g.score = g.logits[size_t(cls)];
  // score = sum(logits * one_hot): the one-hot picks the class with ops the engine differentiates.
  std::vector<float> hot(size_t(K), 0.0f);
  hot[size_t(cls)] = 1;
  const Tensor onehot = Tensor::from(hot, {1, K}).to(logits.dtype()).to(logits.device());
  sum(mul(logits, onehot)).backward();
  Tensor grad = a.grad();
  MC_CHECK(grad.defined(), "Grad-CAM: the class score does not depend on the features");
  // Both on the CPU in NCDHW f32 (a CUDA stage may be NDHWC / bf16).
  const Tensor A = to_layout(a.detach(), Layout::NCDHW).to(Device::cpu()).to(DType::F32);
  const Tensor G = to_layout(grad, Layout::NCDHW).to(Device::cpu()).to(DType::F32);
  const int64_t C = A.size(1), S = A.size(2) * A.size(3) * A.size(4);
  const float* pa = A.data<float>();
  const float* pg = G.data<float>();
  g.weights.assign(size_t(C), 0.0);
  for (int64_t c = 0; c < C; ++c) {
    double s = 0;
    for (int64_t v = 0; v < S; ++v) s += pg[c * S + v];
    g.weights[size_t(c)] = s / double(S);
  }
  g.map = Tensor::zeros({A.size(2), A.size(3), A.size(4)});
  float* m = g.map.data<float>();
  for (int64_t v = 0; v < S; ++v) {
    double s = 0;
    for (int64_t c = 0; c < C; ++c) s += g.weights[size_t(c)] * pa[c * S + v];
    m[v] = float(std::max(0.0, s));
  }
  return g;
}

GradCam grad_cam(ResNet3d& model, const Tensor& x, int64_t cls, int stage) {
  model.eval();
  Tensor features;
  {
    NoGradGuard ng;  // no graph up to the stage: only what follows it is differentiated
    features = model.forward_to_stage(x, stage);
  }
  return grad_cam(features, [&](const Tensor& a) { return model.forward_from_stage(a, stage); }, cls);
}

Tensor upsample_trilinear(const Tensor& map, const std::array<int64_t, 3>& out) {
  MC_CHECK(map.dim() == 3 && map.dtype() == DType::F32 && map.device().is_cpu(),
           "upsample_trilinear: a [d, h, w] f32 CPU map expected, got ", map.str());
  const int64_t in[3] = {map.size(0), map.size(1), map.size(2)};
  for (int a = 0; a < 3; ++a) MC_CHECK(out[size_t(a)] >= 1, "upsample_trilinear: output size must be >= 1");
  // Per axis: the two source indices and the weight of the second, for every output index.
  std::vector<int64_t> i0[3], i1[3];
  std::vector<double> w1[3];
  for (int a = 0; a < 3; ++a) {
    const double scale = double(in[a]) / double(out[size_t(a)]);
    for (int64_t o = 0; o < out[size_t(a)]; ++o) {
      const double src = std::max(0.0, (double(o) + 0.5) * scale - 0.5);
      const int64_t lo = std::min<int64_t>(int64_t(src), in[a] - 1);
      i0[a].push_back(lo);
      i1[a].push_back(std::min<int64_t>(lo + 1, in[a] - 1));
      w1[a].push_back(src - double(lo));
    }
  }
  Tensor r = Tensor::zeros({out[0], out[1], out[2]});
  const float* s = map.data<float>();
  float* d = r.data<float>();
  auto at = [&](int64_t z, int64_t y, int64_t x) { return double(s[(z * in[1] + y) * in[2] + x]); };
  for (int64_t z = 0; z < out[0]; ++z)
    for (int64_t y = 0; y < out[1]; ++y)
      for (int64_t x = 0; x < out[2]; ++x) {
        const double wz = w1[0][size_t(z)], wy = w1[1][size_t(y)], wx = w1[2][size_t(x)];
        const int64_t z0 = i0[0][size_t(z)], z1 = i1[0][size_t(z)], y0 = i0[1][size_t(y)], y1 = i1[1][size_t(y)];
        const int64_t x0 = i0[2][size_t(x)], x1 = i1[2][size_t(x)];
        auto plane = [&](int64_t zz) {
          return (1 - wy) * ((1 - wx) * at(zz, y0, x0) + wx * at(zz, y0, x1)) +
                 wy * ((1 - wx) * at(zz, y1, x0) + wx * at(zz, y1, x1));
        };
        d[(z * out[1] + y) * out[2] + x] = float((1 - wz) * plane(z0) + wz * plane(z1));
      }
  return r;
}

}  // namespace mc::models
