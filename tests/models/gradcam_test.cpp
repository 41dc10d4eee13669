// Grad-CAM: a constructed model whose class score depends only on one region of the input has
// its map there (and nowhere else, whatever the rest of the input holds); the channel weights
// are the analytic gradient of a GAP + fc head; a ResNet's map comes from its own forward;
// CPU and CUDA agree; trilinear upsampling equals PyTorch's align_corners=False values.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "models/gradcam.h"
#include "test_util.h"

namespace mc::models {
namespace {

constexpr int64_t S = 8;  // 8^3 stage grid
bool in_region(int64_t d, int64_t h, int64_t w) { return d >= 1 && d < 4 && h >= 4 && h < 7 && w >= 2 && w < 5; }

// The "model": input x [1, 1, 8^3] -> two feature channels by a 1x1x1 convolution of (x inside the
// region, x everywhere) -> ReLU -> global average pool -> fc. Class 0 reads only the masked
// channel (weight +1), class 1 reads it with weight -1, class 2 only the unmasked one. So class 0's
// score depends on the input inside the region only.
struct Constructed {
  Tensor x2, w, fc_w, fc_b;
  explicit Constructed(uint64_t seed) {
    const Tensor x = test::uniform({1, 1, S, S, S}, seed, 0.5, 1.0);
    x2 = Tensor::zeros({1, 2, S, S, S});
    const float* px = x.data<float>();
    float* p2 = x2.data<float>();
    for (int64_t d = 0; d < S; ++d)
      for (int64_t h = 0; h < S; ++h)
        for (int64_t w = 0; w < S; ++w) {
          const int64_t v = (d * S + h) * S + w;
          const float outside = in_region(d, h, w) ? 0.0f : 3.0f;  // brighter outside: a decoy
          p2[v] = in_region(d, h, w) ? px[v] : 0.0f;
          p2[S * S * S + v] = px[v] + outside;
        }
    w = Tensor::from(std::vector<float>{1, 0, 0, 1}, {2, 2, 1, 1, 1});
    fc_w = Tensor::from(std::vector<float>{1, 0, -1, 0, 0, 1}, {3, 2});
    fc_b = Tensor::from(std::vector<float>{0.1f, 0.2f, 0.3f}, {3});
  }
  Tensor features() const {
    NoGradGuard ng;
    return relu(conv3d(x2, w, Tensor(), {}));
  }
  Tensor head(const Tensor& a) const { return linear(global_avg_pool3d(a), fc_w, fc_b); }
};

TEST(GradCam, PeaksInTheRegionTheClassScoreDependsOn) {
  const Constructed m(3);
  const GradCam g = grad_cam(m.features(), [&](const Tensor& a) { return m.head(a); }, 0);
  ASSERT_EQ(g.map.shape(), (Shape{S, S, S}));
  EXPECT_EQ(g.cls, 0);
  // alpha_c = mean of d score / d A_c = fc_w[0][c] / S^3 (the pool spreads the weight evenly).
  ASSERT_EQ(g.weights.size(), 2u);
  EXPECT_NEAR(g.weights[0], 1.0 / (S * S * S), 1e-9);
  EXPECT_NEAR(g.weights[1], 0.0, 1e-12);
  const float* p = g.map.data<float>();
  int64_t best = 0;
  for (int64_t v = 0; v < g.map.numel(); ++v) {
    if (p[v] > p[best]) best = v;
    const int64_t d = v / (S * S), h = (v / S) % S, w = v % S;
    if (!in_region(d, h, w)) EXPECT_EQ(p[v], 0.0f) << "outside the region at " << d << "," << h << "," << w;
    else EXPECT_GT(p[v], 0.0f);
  }
  EXPECT_TRUE(in_region(best / (S * S), (best / S) % S, best % S));
  // Class 1 argues against the region (negative weight): ReLU leaves nothing.
  const GradCam neg = grad_cam(m.features(), [&](const Tensor& a) { return m.head(a); }, 1);
  for (float v : neg.map.to_vector<float>()) EXPECT_EQ(v, 0.0f);
  // Class 2 reads the unmasked channel: its map is the decoy's, brightest outside the region.
  const GradCam dec = grad_cam(m.features(), [&](const Tensor& a) { return m.head(a); }, 2);
  const auto q = dec.map.to_vector<float>();
  const int64_t top = int64_t(std::max_element(q.begin(), q.end()) - q.begin());
  EXPECT_FALSE(in_region(top / (S * S), (top / S) % S, top % S));
  // Default class: the arg-max of the logits.
  const GradCam def = grad_cam(m.features(), [&](const Tensor& a) { return m.head(a); }, -1);
  EXPECT_EQ(def.cls, int64_t(std::max_element(def.logits.begin(), def.logits.end()) - def.logits.begin()));
  test::expect_error([&] { grad_cam(m.features(), [&](const Tensor& a) { return m.head(a); }, 3); },
                     {"class 3", "3 classes"});
}

TEST(GradCam, ResNetMapUsesTheModelsOwnForward) {
  auto owner = create("resnet10", 1, 3, 7);
  auto* net = dynamic_cast<ResNet3d*>(owner.get());
  ASSERT_NE(net, nullptr);
  net->eval();
  const Tensor x = test::uniform({1, 1, 64, 64, 64}, 9, 0, 1);
  const GradCam g = grad_cam(*net, x, -1);
  ASSERT_EQ(g.map.shape(), (Shape{2, 2, 2}));  // layer4 is stride 32
  EXPECT_EQ(g.weights.size(), size_t(net->num_features()));
  std::vector<float> want;
  {
    NoGradGuard ng;
    want = net->forward(x).to_vector<float>();
  }
  for (size_t k = 0; k < 3; ++k) EXPECT_FLOAT_EQ(float(g.logits[k]), want[k]);
  for (float v : g.map.to_vector<float>()) EXPECT_GE(v, 0.0f);
  // An earlier stage: the head is the rest of the network (differentiated through its convs).
  const GradCam g3 = grad_cam(*net, x, g.cls, 3);
  EXPECT_EQ(g3.map.shape(), (Shape{4, 4, 4}));
  EXPECT_EQ(g3.weights.size(), 256u);
  for (size_t k = 0; k < 3; ++k) EXPECT_NEAR(g3.logits[k], g.logits[k], 1e-5);
  NoGradGuard ng;
  for (int s = 1; s <= 4; ++s)
    EXPECT_TRUE(test::all_close(net->forward_from_stage(net->forward_to_stage(x, s), s), net->forward(x), 1e-6, 1e-6)) << s;
}

TEST(GradCam, CudaMatchesCpu) {
  if (!test::have_gpu()) GTEST_SKIP() << "no GPU";
  auto cpu_owner = create("resnet10", 1, 3, 7), gpu_owner = create("resnet10", 1, 3, 7);
  auto* cpu = dynamic_cast<ResNet3d*>(cpu_owner.get());
  auto* gpu = dynamic_cast<ResNet3d*>(gpu_owner.get());
  ASSERT_TRUE(cpu && gpu);
  cpu->eval();
  gpu->eval();
  gpu->to(Device::cuda(0));
  const Tensor x = test::uniform({1, 1, 64, 64, 64}, 9, 0, 1);
  const GradCam a = grad_cam(*cpu, x, 0), b = grad_cam(*gpu, x.to(Device::cuda(0)), 0);
  ASSERT_EQ(a.map.shape(), b.map.shape());
  for (size_t c = 0; c < a.weights.size(); ++c) EXPECT_NEAR(b.weights[c], a.weights[c], 1e-5 + 1e-3 * std::abs(a.weights[c]));
  EXPECT_LE(test::rel_error(b.map, a.map), 1e-3);
}

TEST(GradCam, TrilinearUpsamplingMatchesPyTorch) {
  // F.interpolate(torch.tensor([0., 1.]).view(1,1,1,1,2), size=(1,1,4), mode="trilinear") = 0, .25, .75, 1
  const Tensor m = Tensor::from(std::vector<float>{0, 1}, {1, 1, 2});
  const auto v = upsample_trilinear(m, {1, 1, 4}).to_vector<float>();
  const std::vector<float> want = {0, 0.25f, 0.75f, 1};
  for (size_t i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(v[i], want[i]);
  // A constant stays constant; the same size is the identity.
  const Tensor r = test::uniform({3, 2, 4}, 1, 0, 1);
  EXPECT_TRUE(test::all_close(upsample_trilinear(r, {3, 2, 4}), r, 0, 1e-7));
  for (float x : upsample_trilinear(Tensor::full({2, 2, 2}, 0.5), {5, 7, 3}).to_vector<float>()) EXPECT_FLOAT_EQ(x, 0.5f);
}

}  // namespace
}  // namespace mc::models
