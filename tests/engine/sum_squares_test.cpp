// The fused squared norm (prims::sum_squares, kernels/elementwise.h) that Trainer's finite
// check, clip_grad_norm and SAM use instead of sum_all(mul(g, g)): it equals that sum, is
// formed in double, and lets NaN and Inf through (the finite check depends on it). Its gradient
// check and CPU/CUDA parity rows are in the op table (sum_squares, sum_squares/small).
#include <cmath>
#include <limits>

#include "engine/ops.h"
#include "engine/prims.h"
#include "test_util.h"

namespace mc {
namespace {

// sum(x[i]^2) in long double, from the values as stored.
long double reference(const Tensor& x) {
  long double acc = 0;
  for (double v : x.to_vector<double>()) acc += (long double)v * v;
  return acc;
}

TEST(SumSquares, EqualsTheSumOfTheProducts) {
  for (int64_t n : {1, 7, 1000, 100003}) {
    const Tensor x64 = test::randn({n}, 40 + uint64_t(n)).to(DType::F64);
    // f64: the same squares summed in the same order as sum_all(mul(x, x)): bit-equal.
    const Tensor f64 = prims::sum_squares(x64);
    EXPECT_EQ(f64.dtype(), DType::F64);
    EXPECT_EQ(f64.item(), prims::sum_all(prims::mul(x64, x64)).item()) << n;
    // f32: each square exact in double (the unfused path rounds it to f32 first), so within a
    // rounding of the f32 result of the exact sum, and within 1e-6 of the unfused one.
    const Tensor x32 = x64.to(DType::F32);
    const double got = prims::sum_squares(x32).item(), ref = double(reference(x32));
    EXPECT_EQ(prims::sum_squares(x32).dtype(), DType::F32);
    EXPECT_EQ(float(got), float(ref)) << n;
    EXPECT_NEAR(got, prims::sum_all(prims::mul(x32, x32)).item(), 1e-6 * ref) << n;
    // bf16 input: the norm comes back in f32, not rounded to bf16's 3 digits.
    const Tensor xb = x64.to(DType::BF16);
    const Tensor b = prims::sum_squares(xb);
    EXPECT_EQ(b.dtype(), DType::F32);
    EXPECT_EQ(float(b.item()), float(reference(xb))) << n;
  }
  EXPECT_EQ(prims::sum_squares(Tensor::zeros({0})).item(), 0.0);
}

TEST(SumSquares, NanAndInfPropagate) {
  const double inf = std::numeric_limits<double>::infinity();
  for (DType dt : {DType::F32, DType::F64, DType::BF16}) {
    auto with = [&](std::vector<double> special) {
      std::vector<double> v = test::randn({1000}, 44).to_vector<double>();
      for (size_t i = 0; i < special.size(); ++i) v[100 + 300 * i] = special[i];
      return Tensor::from(v, {1000}).to(dt);
    };
    EXPECT_TRUE(std::isnan(prims::sum_squares(with({NAN})).item())) << dtype_name(dt);
    EXPECT_EQ(prims::sum_squares(with({inf})).item(), inf) << dtype_name(dt);
    EXPECT_EQ(prims::sum_squares(with({-inf})).item(), inf) << dtype_name(dt);
    EXPECT_TRUE(std::isnan(prims::sum_squares(with({inf, NAN})).item())) << dtype_name(dt);
    EXPECT_TRUE(std::isfinite(prims::sum_squares(with({})).item())) << dtype_name(dt);
  }
  // Finite values whose square sum overflows the result's dtype: Inf, as the f32 norm was.
  EXPECT_EQ(prims::sum_squares(Tensor::full({4}, 2e19)).item(), inf);
}

TEST(SumSquares, IsDifferentiable) {
  Tensor x = test::randn({3, 4}, 45).to(DType::F64).set_requires_grad(true);
  sum_squares(x).backward();
  const std::vector<double> g = x.grad().to_vector<double>(), v = x.to_vector<double>();
  for (size_t i = 0; i < v.size(); ++i) EXPECT_EQ(g[i], 2 * v[i]) << i;
}

TEST(CudaSumSquares, MatchesTheCpuAndPropagatesNanAndInf) {
  MC_SKIP_WITHOUT_GPU();
  const Device gpu = Device::cuda();
  for (DType dt : {DType::F32, DType::BF16}) {
    for (int64_t n : {1, 1000, 3000001}) {
      const Tensor x = test::randn({n}, 46 + uint64_t(n)).to(dt);
      const double cpu = prims::sum_squares(x).item(), cuda = prims::sum_squares(x.to(gpu)).item();
      // Both in double, in different orders: one f32 rounding apart at most.
      EXPECT_NEAR(cuda, cpu, 2e-7 * cpu) << dtype_name(dt) << " n=" << n;
    }
    std::vector<double> v = test::randn({100000}, 47).to_vector<double>();
    v[77777] = NAN;
    EXPECT_TRUE(std::isnan(prims::sum_squares(Tensor::from(v, {100000}).to(dt).to(gpu)).item()));
    v[77777] = -std::numeric_limits<double>::infinity();
    EXPECT_EQ(prims::sum_squares(Tensor::from(v, {100000}).to(dt).to(gpu)).item(),
              std::numeric_limits<double>::infinity());
  }
}

}  // namespace
}  // namespace mc
