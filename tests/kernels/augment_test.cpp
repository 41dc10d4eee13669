#include "kernels/augment.h"

#include <cmath>
#include <set>
#include <stdexcept>

#include "test_util.h"
#ifdef MC_HAVE_CUDA
#include <cuda_runtime.h>
#endif

namespace mc {
namespace {

using kernels::AugmentDraw;
using kernels::AugmentParams;
using kernels::Border;

// x: [B, C, D, H, W]; one params struct per sample.
Tensor augment_cpu(const Tensor& x, const std::vector<AugmentParams>& p) {
  Tensor y = Tensor::empty(x.shape());
  kernels::cpu::augment(x.data<float>(), y.data<float>(), p.data(), x.size(0), x.size(1), x.size(2),
                        x.size(3), x.size(4), nullptr);
  return y;
}

Tensor augment_cpu(const Tensor& x, const AugmentDraw& d) {
  return augment_cpu(x, std::vector<AugmentParams>(size_t(x.size(0)),
                                                   kernels::augment_params(d, x.size(2), x.size(3), x.size(4))));
}

struct Idx { int64_t v[5]; };
float at(const Tensor& t, const Idx& i) {
  const Shape& s = t.shape();
  int64_t flat = 0;
  for (int k = 0; k < 5; ++k) flat = flat * s[size_t(k)] + i.v[k];
  return t.data<float>()[flat];
}

template <class F>
void for_each_voxel(const Shape& s, F&& f) {
  Idx i;
  for (i.v[0] = 0; i.v[0] < s[0]; ++i.v[0])
    for (i.v[1] = 0; i.v[1] < s[1]; ++i.v[1])
      for (i.v[2] = 0; i.v[2] < s[2]; ++i.v[2])
        for (i.v[3] = 0; i.v[3] < s[3]; ++i.v[3])
          for (i.v[4] = 0; i.v[4] < s[4]; ++i.v[4]) f(i);
}

// np.rot90(x, 1, axes=(a, b)) over spatial axes a < b: out[i_a, i_b] = in[i_b, n-1-i_a].
Tensor rot90_once(const Tensor& x, int a, int b) {
  Tensor y = Tensor::empty(x.shape());
  const int64_t n = x.size(2 + a);
  for_each_voxel(x.shape(), [&](const Idx& o) {
    Idx src = o;
    src.v[2 + a] = o.v[2 + b];
    src.v[2 + b] = n - 1 - o.v[2 + a];
    int64_t flat = 0;
    for (int k = 0; k < 5; ++k) flat = flat * x.shape()[size_t(k)] + o.v[k];
    y.data<float>()[flat] = at(x, src);
  });
  return y;
}

TEST(Augment, IdentityIsExact) {
  const Tensor x = test::uniform({2, 2, 5, 6, 7}, 1, 0, 1);
  EXPECT_EQ(augment_cpu(x, AugmentDraw{}).to_vector<float>(), x.to_vector<float>());
  // The trilinear path at grid-aligned coordinates reads exactly one voxel.
  std::vector<AugmentParams> p(2);
  p[0].interpolate = p[1].interpolate = 1;
  EXPECT_EQ(augment_cpu(x, p).to_vector<float>(), x.to_vector<float>());
}

TEST(Augment, FlipReversesIndices) {
  const Tensor x = test::uniform({2, 2, 4, 5, 6}, 2, 0, 1);
  for (int mask = 1; mask < 8; ++mask) {
    AugmentDraw d;
    for (int a = 0; a < 3; ++a) d.flip[a] = mask >> a & 1;
    const Tensor y = augment_cpu(x, d);
    for_each_voxel(x.shape(), [&](const Idx& o) {
      Idx src = o;
      for (int a = 0; a < 3; ++a)
        if (d.flip[a]) src.v[2 + a] = x.size(2 + a) - 1 - o.v[2 + a];
      ASSERT_EQ(at(y, o), at(x, src)) << "flip mask " << mask;
    });
  }
}

TEST(Augment, Rot90IsTransposeThenFlip) {
  const Tensor x = test::uniform({2, 2, 5, 5, 5}, 3, 0, 1);
  for (int plane = 0; plane < 3; ++plane)
    for (int k = 1; k <= 3; ++k) {
      const int a = plane == 2 ? 1 : 0, b = plane == 0 ? 1 : 2;
      Tensor want = x;
      for (int t = 0; t < k; ++t) want = rot90_once(want, a, b);
      AugmentDraw d;
      d.rot90_plane = plane;
      d.rot90_k = k;
      EXPECT_EQ(augment_cpu(x, d).to_vector<float>(), want.to_vector<float>())
          << "plane " << plane << " k " << k;
    }
  // A plane with unequal sides cannot turn in place.
  const Tensor flat = test::uniform({1, 1, 4, 4, 6}, 4, 0, 1);
  AugmentDraw d;
  d.rot90_plane = 0;
  d.rot90_k = 1;
  EXPECT_EQ(augment_cpu(flat, d).to_vector<float>(), rot90_once(flat, 0, 1).to_vector<float>());
  d.rot90_plane = 1;
  EXPECT_THROW(augment_cpu(flat, d), std::invalid_argument);
}

TEST(Augment, RotationByZeroIsIdentity) {
  const Tensor x = test::uniform({1, 2, 6, 6, 6}, 5, 0, 1);
  for (int axis = 0; axis < 3; ++axis) {
    AugmentDraw d;
    d.rotate_axis = axis;
    d.rotate_deg = 0;
    EXPECT_EQ(augment_cpu(x, d).to_vector<float>(), x.to_vector<float>());
  }
}

// Trilinear interpolation reproduces a linear function exactly wherever it reads inside.
TEST(Augment, TrilinearOfLinearRampIsExact) {
  const Shape s{1, 1, 9, 10, 11};
  Tensor x = Tensor::empty(s);
  auto ramp = [](double d, double h, double w) { return 0.3 * d - 0.2 * h + 0.5 * w + 1.0; };
  for_each_voxel(s, [&](const Idx& i) {
    x.data<float>()[(i.v[2] * 10 + i.v[3]) * 11 + i.v[4]] = float(ramp(double(i.v[2]), double(i.v[3]), double(i.v[4])));
  });
  for (Border border : {Border::Zero, Border::Edge})
    for (int axis = 0; axis < 3; ++axis) {
      AugmentDraw d;
      d.rotate_axis = axis;
      d.rotate_deg = 13;
      d.flip[2] = true;
      d.border = border;
      const AugmentParams p = kernels::augment_params(d, 9, 10, 11);
      ASSERT_EQ(p.interpolate, 1);
      const Tensor y = augment_cpu(x, std::vector<AugmentParams>{p});
      const double c[3] = {4, 4.5, 5}, hi[3] = {8, 9, 10};
      int inside = 0;
      for_each_voxel(s, [&](const Idx& o) {
        double src[3];
        bool in = true;
        for (int r = 0; r < 3; ++r) {
          src[r] = c[r];
          for (int k = 0; k < 3; ++k) src[r] += double(p.A[r * 3 + k]) * (double(o.v[2 + k]) - c[k]);
          if (border == Border::Edge) src[r] = std::clamp(src[r], 0.0, hi[r]);
          in = in && src[r] >= 0 && src[r] <= hi[r];
        }
        if (!in) return;
        ++inside;
        ASSERT_NEAR(at(y, o), ramp(src[0], src[1], src[2]), 1e-4) << "axis " << axis;
      });
      if (border == Border::Edge) EXPECT_EQ(inside, 990);
      else EXPECT_GT(inside, 500);
    }
}

TEST(Augment, ZeroBorderReadsZeroOutside) {
  const Tensor ones = Tensor::full({1, 1, 3, 9, 9}, 1.0);
  AugmentDraw d;
  d.rotate_axis = 0;  // turns the (h, w) plane
  d.rotate_deg = 45;
  const Tensor zero = augment_cpu(ones, d);
  EXPECT_EQ(at(zero, {{0, 0, 1, 0, 0}}), 0.f) << "a corner reads from beyond the edge";
  EXPECT_EQ(at(zero, {{0, 0, 1, 4, 4}}), 1.f) << "the centre stays";
  d.border = Border::Edge;
  for (float v : augment_cpu(ones, d).to_vector<float>()) ASSERT_NEAR(v, 1.f, 1e-6);
}

TEST(Augment, IntensityScaleAndShift) {
  const Tensor x = test::uniform({2, 1, 4, 4, 4}, 6, 0, 1);
  AugmentDraw d;
  d.scale = 1.5f;
  d.shift = -0.2f;
  const auto y = augment_cpu(x, d).to_vector<float>(), xs = x.to_vector<float>();
  for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], 1.5f * xs[i] - 0.2f, 1e-6);
}

TEST(Augment, NoiseStatistics) {
  const Tensor x = Tensor::zeros({1, 2, 32, 32, 32});
  AugmentDraw d;
  d.noise_std = 0.1f;
  d.noise_key = 12345;
  const auto y = augment_cpu(x, d).to_vector<float>();
  const double n = double(y.size());
  double sum = 0, sq = 0, lag = 0, tails = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    sum += y[i];
    sq += double(y[i]) * y[i];
    if (i > 0) lag += double(y[i]) * y[i - 1];
    tails += std::abs(y[i]) > 0.2;
  }
  const double mean = sum / n, var = sq / n - mean * mean;
  EXPECT_LT(std::abs(mean), 4 * 0.1 / std::sqrt(n));
  EXPECT_NEAR(std::sqrt(var), 0.1, 0.002);
  EXPECT_LT(std::abs(lag / n / var), 0.02) << "neighbours are independent";
  EXPECT_NEAR(tails / n, 0.0455, 0.004) << "P(|z| > 2) of a normal";

  EXPECT_EQ(augment_cpu(x, d).to_vector<float>(), y) << "same key, same noise";
  d.noise_key = 12346;
  EXPECT_NE(augment_cpu(x, d).to_vector<float>(), y);
}

TEST(Augment, DrawsAreDeterministicAndFollowTheConfig) {
  kernels::AugmentConfig cfg;
  cfg.flip_p[0] = 0.2f;
  cfg.rotate_p = 0.2f;
  std::set<uint64_t> keys;
  for (int64_t e = 0; e < 10; ++e)
    for (int64_t pos = 0; pos < 100; ++pos) keys.insert(kernels::augment_sample_key(1, e, pos));
  for (uint64_t seed = 2; seed < 12; ++seed) keys.insert(kernels::augment_sample_key(seed, 0, 0));
  EXPECT_EQ(keys.size(), 1010u) << "keys differ across seed, epoch and position";

  for (float strength : {1.0f, 2.0f}) {
    const int n = 20000;
    double flip0 = 0, flip1 = 0, rot90 = 0, rotate = 0, noise = 0, max_deg = 0, max_scale = 0;
    for (int i = 0; i < n; ++i) {
      const uint64_t key = kernels::augment_sample_key(7, 0, i);
      const AugmentDraw d = kernels::draw_augment(cfg, strength, key, 8, 8, 8);
      const AugmentDraw again = kernels::draw_augment(cfg, strength, key, 8, 8, 8);
      ASSERT_EQ(d.rotate_deg, again.rotate_deg);
      ASSERT_EQ(d.noise_key, again.noise_key);
      flip0 += d.flip[0];
      flip1 += d.flip[1];
      rot90 += d.rot90_plane >= 0;
      rotate += d.rotate_axis >= 0;
      noise += d.noise_std > 0;
      max_deg = std::max(max_deg, double(std::abs(d.rotate_deg)));
      max_scale = std::max(max_scale, double(std::abs(d.scale - 1)));
      if (d.rot90_plane >= 0) ASSERT_TRUE(d.rot90_k >= 1 && d.rot90_k <= 3);
    }
    const double tol = 0.015;
    EXPECT_NEAR(flip0 / n, std::min(0.5, 0.2 * strength), tol) << "symmetries rise to at most 0.5";
    EXPECT_NEAR(flip1 / n, 0.5, tol);
    EXPECT_NEAR(rot90 / n, 0.5, tol);
    EXPECT_NEAR(rotate / n, 0.2 * strength, tol);
    EXPECT_NEAR(noise / n, std::min(1.0, 0.5 * strength), tol);
    EXPECT_LE(max_deg, 10.0 * strength);
    EXPECT_GT(max_deg, 9.0 * strength);
    EXPECT_LE(max_scale, 0.1 * strength + 1e-6);
  }
  // No eligible plane, no turn: a 90-degree turn needs two equal sides.
  for (int i = 0; i < 200; ++i)
    EXPECT_EQ(kernels::draw_augment(cfg, 1, kernels::augment_sample_key(7, 1, i), 4, 5, 6).rot90_plane, -1);
}

#ifdef MC_HAVE_CUDA
void expect_cuda_matches_cpu(const Shape& s, const kernels::AugmentConfig& cfg, uint64_t seed) {
  const Tensor x = test::uniform(s, seed, -0.5, 1.5);
  std::vector<AugmentParams> p;
  for (int64_t b = 0; b < s[0]; ++b)
    p.push_back(kernels::augment_params(
        kernels::draw_augment(cfg, 1.5f, kernels::augment_sample_key(seed, 0, b), s[2], s[3], s[4]),
        s[2], s[3], s[4]));
  const Tensor want = augment_cpu(x, p);
  const Tensor xd = x.to(Device::cuda(0));
  Tensor yd = Tensor::empty(s, DType::F32, Device::cuda(0));
  kernels::cuda::augment(xd.data<float>(), yd.data<float>(), p.data(), s[0], s[1], s[2], s[3], s[4], nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  EXPECT_TRUE(test::all_close(yd.to(Device::cpu()), want, 1e-5, 1e-5)) << shape_str(s);
}
#endif

TEST(Augment, CudaMatchesCpu) {
  MC_SKIP_WITHOUT_GPU();
#ifdef MC_HAVE_CUDA
  kernels::AugmentConfig every;  // every transform on, so each path is compared
  every.flip_p[0] = every.flip_p[1] = every.flip_p[2] = 0.5f;
  every.rot90_p = every.rotate_p = every.intensity_p = every.noise_p = 1;
  expect_cuda_matches_cpu({3, 2, 12, 12, 12}, every, 1);
  expect_cuda_matches_cpu({40, 1, 6, 7, 6}, every, 2);  // more samples than one launch's chunk
  every.border = Border::Edge;
  expect_cuda_matches_cpu({3, 2, 10, 9, 10}, every, 3);
  expect_cuda_matches_cpu({8, 1, 128, 128, 128}, kernels::AugmentConfig{}, 4);
#else
  GTEST_SKIP() << "built without CUDA";
#endif
}

}  // namespace
}  // namespace mc
