// kernels::cuda::cross_entropy_fused against its CPU twin on random inputs (never zeros), from
// tiny to N = 1M x C = 3 and N = 64K x C = 1000. Skips without a GPU.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/random.h"
#include "kernels/loss.h"
#include "test_util.h"

namespace mc::losses {
namespace {

struct CeResult {
  double loss;
  Tensor grad;
};

CeResult cpu_ce(const Tensor& x, const Tensor& y, const Tensor& off, const Tensor& w, bool mean,
                float dloss) {
  const int64_t N = x.size(0), C = x.size(1);
  float loss = 0;
  int bad = 0;
  Tensor d = Tensor::empty({N, C});
  kernels::cpu::cross_entropy_fused(x.data<float>(), y.data<int64_t>(), off.data<float>(),
                                    w.data<float>(), kernels::F32, N, C, mean, &loss,
                                    d.data<float>(), &dloss, &bad, nullptr, 0, nullptr);
  EXPECT_EQ(bad, 0);
  return {loss, d};
}

#ifdef MC_HAVE_CUDA
CeResult gpu_ce(const Tensor& x, const Tensor& y, const Tensor& off, const Tensor& w, bool mean,
                float dloss, int* bad_out = nullptr) {
  const Device g = Device::cuda(0);
  const int64_t N = x.size(0), C = x.size(1);
  Tensor gx = x.to(g), gy = y.to(g), goff = off.to(g), gw = w.to(g);
  Tensor loss = Tensor::empty({}, DType::F32, g), d = Tensor::empty({N, C}, DType::F32, g);
  Tensor dl = Tensor::full({}, dloss, DType::F32, g), bad = Tensor::zeros({}, DType::I32, g);
  const size_t ws = kernels::cuda::cross_entropy_workspace(N, C);
  Tensor work = Tensor::empty({int64_t(ws)}, DType::U8, g);
  kernels::cuda::cross_entropy_fused(gx.data<float>(), gy.data<int64_t>(), goff.data<float>(),
                                     gw.data<float>(), kernels::F32, N, C, mean,
                                     loss.data<float>(), d.data<float>(), dl.data<float>(),
                                     bad.data<int32_t>(), work.raw(), ws, nullptr);
  if (bad_out) *bad_out = int(bad.item());
  return {loss.item(), d.to(Device::cpu())};
}
#endif

struct Inputs {
  Tensor x, y, off, w;
};

Inputs random_inputs(int64_t N, int64_t C, uint64_t seed) {
  Generator g(seed);
  std::vector<int64_t> y(static_cast<size_t>(N));
  for (auto& v : y) v = g.randint(0, C);
  return {test::randn({N, C}, seed + 1, DType::F32, 3.0), Tensor::from(y, {N}),
          test::uniform({C}, seed + 2, -3.0, 0.5), test::uniform({C}, seed + 3, 0.1, 4.0)};
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.to_vector<double>()) m = std::max(m, std::abs(v));
  return m;
}

TEST(LossCuda, MatchesCpuTwin) {
  MC_SKIP_WITHOUT_GPU();
#ifdef MC_HAVE_CUDA
  const int64_t shapes[][2] = {{1, 2}, {37, 3}, {1000, 17}, {4099, 16}, {1 << 20, 3},
                               {65536, 1000}, {3, 5000}};
  for (const auto& s : shapes)
    for (bool mean : {true, false}) {
      SCOPED_TRACE(testing::Message() << s[0] << " x " << s[1] << (mean ? " mean" : " sum"));
      const Inputs in = random_inputs(s[0], s[1], uint64_t(s[0] * 7 + s[1]));
      const CeResult ref = cpu_ce(in.x, in.y, in.off, in.w, mean, 0.37f);
      const CeResult got = gpu_ce(in.x, in.y, in.off, in.w, mean, 0.37f);
      EXPECT_NEAR(got.loss, ref.loss, 1e-5 * std::abs(ref.loss));
      EXPECT_TRUE(test::all_close(got.grad, ref.grad, 1e-5, 1e-5 * max_abs(ref.grad)));
    }
#endif
}

// Same inputs, same bits: fixed grids, fixed-order reductions, no float atomics.
TEST(LossCuda, Deterministic) {
  MC_SKIP_WITHOUT_GPU();
#ifdef MC_HAVE_CUDA
  for (int64_t C : {3, 1000}) {
    const Inputs in = random_inputs(C == 3 ? (1 << 20) : 20000, C, 99);
    const CeResult a = gpu_ce(in.x, in.y, in.off, in.w, true, 1.0f);
    const CeResult b = gpu_ce(in.x, in.y, in.off, in.w, true, 1.0f);
    EXPECT_EQ(a.loss, b.loss);
    EXPECT_EQ(a.grad.to_vector<float>(), b.grad.to_vector<float>());
  }
#endif
}

// A label outside [0, C) raises the device flag, adds nothing and gets a zero gradient row.
TEST(LossCuda, BadLabelFlagged) {
  MC_SKIP_WITHOUT_GPU();
#ifdef MC_HAVE_CUDA
  for (int64_t C : {3, 100}) {
    Inputs in = random_inputs(64, C, 5);
    in.y.data<int64_t>()[10] = C;
    int bad = 0;
    const CeResult got = gpu_ce(in.x, in.y, in.off, in.w, true, 1.0f, &bad);
    EXPECT_EQ(bad, 1);
    // Reference: the same batch without row 10.
    std::vector<int64_t> keep;
    for (int64_t i = 0; i < 64; ++i)
      if (i != 10) keep.push_back(i);
    Tensor x = Tensor::empty({63, C}), y = Tensor::empty({63}, DType::I64);
    for (size_t r = 0; r < keep.size(); ++r) {
      for (int64_t c = 0; c < C; ++c)
        x.data<float>()[int64_t(r) * C + c] = in.x.data<float>()[keep[r] * C + c];
      y.data<int64_t>()[r] = in.y.data<int64_t>()[keep[r]];
    }
    const CeResult ref = cpu_ce(x, y, in.off, in.w, true, 1.0f);
    EXPECT_NEAR(got.loss, ref.loss, 1e-5 * std::abs(ref.loss));
    const auto g = got.grad.to_vector<float>();
    for (int64_t c = 0; c < C; ++c) EXPECT_EQ(g[size_t(10 * C + c)], 0.0f);
    int bad_clean = 1;
    const Inputs ok = random_inputs(64, C, 6);
    gpu_ce(ok.x, ok.y, ok.off, ok.w, true, 1.0f, &bad_clean);
    EXPECT_EQ(bad_clean, 0);
  }
#endif
}

// The CPU twin has the same contract: a bad label raises its flag, adds nothing and gets a zero
// gradient row (the prim checks host labels first, so this is the kernel's own guarantee).
TEST(LossCpu, BadLabelFlaggedLikeTheGpu) {
  for (int64_t C : {3, 100}) {
    Inputs in = random_inputs(64, C, 5);
    in.y.data<int64_t>()[10] = -1;
    float loss = 0, dloss = 1.f;
    int bad = 0;
    Tensor d = Tensor::empty({64, C});
    kernels::cpu::cross_entropy_fused(in.x.data<float>(), in.y.data<int64_t>(),
                                      in.off.data<float>(), in.w.data<float>(), kernels::F32, 64,
                                      C, true, &loss, d.data<float>(), &dloss, &bad, nullptr, 0,
                                      nullptr);
    EXPECT_EQ(bad, 1);
    std::vector<int64_t> keep;
    for (int64_t i = 0; i < 64; ++i)
      if (i != 10) keep.push_back(i);
    Tensor x = Tensor::empty({63, C}), y = Tensor::empty({63}, DType::I64);
    for (size_t r = 0; r < keep.size(); ++r) {
      for (int64_t c = 0; c < C; ++c)
        x.data<float>()[int64_t(r) * C + c] = in.x.data<float>()[keep[r] * C + c];
      y.data<int64_t>()[r] = in.y.data<int64_t>()[keep[r]];
    }
    const CeResult ref = cpu_ce(x, y, in.off, in.w, true, 1.0f);
    EXPECT_EQ(loss, ref.loss);
    const auto g = d.to_vector<float>();
    for (int64_t c = 0; c < C; ++c) EXPECT_EQ(g[size_t(10 * C + c)], 0.0f);
  }
}

}  // namespace
}  // namespace mc::losses
