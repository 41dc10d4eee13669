// Train-mode batch norm's float32 input gradient on a channel whose mean is large against its
// spread (issue #17). The forward normalises with the mean in double; the backward once used it
// rounded to f32 (save_mean), so sum(xhat) was not 0 and each channel's sum of dx, 0 in exact
// arithmetic, carried a bias of sum(dy * xhat) * (mean rounding) * invstd^2 * w. Downstream
// gradients that cancel to zero (a block's last BN bias in MobileNetV2) were that bias.
#include <cmath>

#include "engine/ops.h"
#include "test_util.h"

namespace mc {
namespace {

struct Grads {
  std::vector<double> dx;
  int64_t C, per_channel;
};

Grads bn_input_grad(const Tensor& x_in, const Tensor& dy_in, DType dt) {
  Tensor x = x_in.to(dt).clone().set_requires_grad(true);
  const int64_t C = x.size(1);
  Tensor w = test::uniform({C}, 62, 0.5, 1.5).to(dt), b = test::randn({C}, 63).to(dt);
  Tensor rm = Tensor::zeros({C}, dt), rv = Tensor::full({C}, 1.0, dt);
  batch_norm(x, w, b, rm, rv, true).backward(dy_in.to(dt));
  return {x.grad().to_vector<double>(), C, x.numel() / (x.size(0) * C)};
}

TEST(BatchNormF32, InputGradientSumsToZeroPerChannelAndMatchesF64) {
  // Means near 1000, unit spread: the mean rounded to f32 is up to 3e-5 off.
  const Shape shape{2, 4, 8, 8, 8};
  const Tensor x = test::uniform({2, 4, 8, 8, 8}, 60, 999, 1001);
  const Tensor dy = test::randn(shape, 61);
  const Grads g32 = bn_input_grad(x, dy, DType::F32), g64 = bn_input_grad(x, dy, DType::F64);
  const int64_t N = shape[0], S = g32.per_channel;
  double scale = 0, worst_sum = 0, worst_elem = 0;
  for (double v : g64.dx) scale = std::max(scale, std::abs(v));
  for (int64_t c = 0; c < g32.C; ++c) {
    double s32 = 0, s64 = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t s = 0; s < S; ++s) {
        const size_t i = size_t((n * g32.C + c) * S + s);
        s32 += g32.dx[i];
        s64 += g64.dx[i];
        worst_elem = std::max(worst_elem, std::abs(g32.dx[i] - g64.dx[i]));
      }
    EXPECT_LE(std::abs(s64), 1e-9 * scale) << "channel " << c;
    worst_sum = std::max(worst_sum, std::abs(s32));
  }
  // dx's own rounding: 1024 values of relative error 2^-24 sum to ~1e-7 of the scale, and each
  // element is one rounding off (the rounded mean gave 8e-5 and 2.7e-7).
  EXPECT_LE(worst_sum, 1e-6 * scale);
  EXPECT_LE(worst_elem, 1e-7 * scale);
  std::printf("[bn f32] worst channel sum of dx %.1e, worst element error %.1e (of max |dx| %.2f)\n",
              worst_sum / scale, worst_elem / scale, scale);
}

}  // namespace
}  // namespace mc
