// CPU vs CUDA, op by op (DESIGN: "One test compares backends"). Inputs are random (never
// zeros), copied to the GPU with Tensor::to; the CPU result is the reference. One rule:
//   |gpu - ref| <= atol * max|ref| + rtol * |ref|  elementwise, and  max|gpu - ref| / max|ref| <=
//   whole.
// Tolerances by precision (kTol). In bf16 the reference runs in f32 on the bf16-rounded inputs,
// so what is measured is the GPU's accumulation and output rounding, not the input rounding.
// Ops with one rounding per element (relu, add, pooling, casts, optimizer steps) must agree
// exactly. Large convolutions guard against cuDNN's known wrong bf16 3-D results on big inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/ops.h"
#include "engine/optim.h"
#include "engine/precision.h"
#include "engine/prims.h"
#include "test_util.h"
#ifdef MC_HAVE_CUDA
#include "engine/cuda_prims.h"
#include "engine/cuda_runtime.h"
#include "kernels/optim.h"
#endif

namespace mc {
namespace {
#ifdef MC_HAVE_CUDA

struct Tol {
  double rtol, atol, whole;
};
Tol tol_for(Precision p) {
  switch (p) {
    case Precision::FP32: return {1e-4, 1e-5, 1e-5};
    case Precision::TF32: return {1e-2, 3e-3, 5e-3};
    case Precision::BF16: return {2e-2, 1e-2, 2e-2};
  }
  return {};
}
const Tol kExact{0, 0, 0};

const Device kGpu = Device::cuda();
Tensor gpu(const Tensor& t) { return t.to(kGpu); }

// A GPU result on the host as f32 NCDHW, whatever dtype and layout it came in.
Tensor host(const Tensor& t) {
  Tensor u = t;
  if (u.is_cuda() && u.dim() == 5 && u.layout() == Layout::NDHWC)
    u = cuda_prims::to_layout(u, Layout::NCDHW);
  u = u.to(Device::cpu());
  return u.dtype() == DType::F32 ? u : u.to(DType::F32);
}
Tensor round_bf16(const Tensor& t) { return t.to(DType::BF16).to(DType::F32); }
Tensor rounded_for(Precision p, const Tensor& t) {
  return p == Precision::BF16 ? round_bf16(t) : t;
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.to_vector<double>()) m = std::max(m, std::abs(v));
  return m;
}

void expect_close(const Tensor& got, const Tensor& ref, Tol t, const std::string& what) {
  const Tensor g = host(got);
  ASSERT_EQ(g.shape(), ref.shape()) << what;
  const double m = max_abs(ref);
  EXPECT_TRUE(test::all_close(g, ref, t.rtol, t.atol * m)) << what;
  EXPECT_LE(test::rel_error(g, ref), t.whole) << what;
}

const char* layout_name(bool cl) { return cl ? "NDHWC" : "NCDHW"; }

// ---------------- elementwise, casts, layouts ----------------

TEST(CudaElementwise, F32MatchesCpuExactly) {
  MC_SKIP_WITHOUT_GPU();
  // 3003 elements: the vector body and the scalar tail; a flat slice at offset 1 is misaligned.
  Tensor a = test::randn({3, 1001}, 1), b = test::randn({3, 1001}, 2);
  Tensor ga = gpu(a), gb = gpu(b);
  expect_close(cuda_prims::relu_forward(ga), prims::relu_forward(a), kExact, "relu");
  expect_close(cuda_prims::relu_backward(ga, gb), prims::relu_backward(a, b), kExact, "relu bwd");
  expect_close(cuda_prims::add(ga, gb), prims::add(a, b), kExact, "add");
  expect_close(cuda_prims::mul(ga, gb), prims::mul(a, b), kExact, "mul");
  expect_close(cuda_prims::scale(ga, 0.37), prims::scale(a, 0.37), kExact, "scale");
  Tensor y = a.clone(), gy = gpu(a);
  prims::add_(y, b);
  cuda_prims::add_(gy, gb);
  expect_close(gy, y, kExact, "add_");
  Tensor sa = gpu(test::randn({2000}, 3)).flat_slice(1, {1999});
  expect_close(cuda_prims::relu_forward(sa), prims::relu_forward(host(sa)), kExact,
               "misaligned relu");
  expect_close(cuda_prims::sum_all(ga), prims::sum_all(a), {1e-6, 1e-7, 1e-7}, "sum");
  const Tensor one = gpu(Tensor::from<float>({1.5f}, {}));
  expect_close(cuda_prims::broadcast_scalar(one, {4, 5}, 0.25), Tensor::full({4, 5}, 0.375), kExact,
               "broadcast of a device scalar");
}

TEST(CudaElementwise, Bf16RoundsOnceLikeTheCpu) {
  MC_SKIP_WITHOUT_GPU();
  Tensor a = round_bf16(test::randn({2, 777}, 4)), b = round_bf16(test::randn({2, 777}, 5));
  Tensor ga = gpu(a).to(DType::BF16), gb = gpu(b).to(DType::BF16);
  expect_close(cuda_prims::add(ga, gb), round_bf16(prims::add(a, b)), kExact, "bf16 add");
  expect_close(cuda_prims::mul(ga, gb), round_bf16(prims::mul(a, b)), kExact, "bf16 mul");
  expect_close(cuda_prims::relu_forward(ga), prims::relu_forward(a), kExact, "bf16 relu");
  expect_close(cuda_prims::relu_backward(ga, gb), prims::relu_backward(a, b), kExact,
               "bf16 relu bwd");
  expect_close(cuda_prims::sum_all(ga), prims::sum_all(a), {1e-2, 1e-3, 1e-2}, "bf16 sum");
}

TEST(CudaCast, FillAndCastMatchTheCpuBitForBit) {
  MC_SKIP_WITHOUT_GPU();
  std::vector<float> v = {0.f,   -0.f,   1.f,      -2.5f,     3.14159f, 1e-40f,   6.5e4f,     7e4f,
                          1e30f, -1e-8f, INFINITY, -INFINITY, 65504.f,  2.98e-8f, 0.33333334f};
  for (int i = 0; i < 1000; ++i) v.push_back(float(std::ldexp(std::sin(i * 1.7), i % 60 - 30)));
  Tensor x = Tensor::from(v, {int64_t(v.size())});
  for (DType dt : {DType::BF16, DType::F16, DType::F64, DType::I32, DType::I64}) {
    if (dt == DType::I32 || dt == DType::I64) x = test::uniform({999}, 6, -1000, 1000);
    Tensor c = x.to(dt), g = gpu(x).to(dt).to(Device::cpu());
    ASSERT_EQ(c.nbytes(), g.nbytes());
    EXPECT_EQ(std::memcmp(c.raw(), g.raw(), c.nbytes()), 0) << "f32 -> " << dtype_name(dt);
    Tensor back = gpu(c).to(DType::F32).to(Device::cpu());
    EXPECT_EQ(back.to_vector<float>(), c.to(DType::F32).to_vector<float>())
        << dtype_name(dt) << " -> f32";
  }
  for (DType dt :
       {DType::F32, DType::BF16, DType::F16, DType::F64, DType::I32, DType::I64, DType::U8}) {
    Tensor c = Tensor::full({37}, 2.75, dt),
           g = Tensor::full({37}, 2.75, dt, kGpu).to(Device::cpu());
    EXPECT_EQ(std::memcmp(c.raw(), g.raw(), c.nbytes()), 0) << "fill " << dtype_name(dt);
  }
}

TEST(CudaLayout, ChannelsLastIsAPermutationAndRoundTrips) {
  MC_SKIP_WITHOUT_GPU();
  Tensor x = test::randn({2, 5, 3, 4, 6}, 7);
  Tensor cl = cuda_prims::to_layout(gpu(x), Layout::NDHWC);
  EXPECT_EQ(cl.layout(), Layout::NDHWC);
  std::vector<float> raw = cl.to(Device::cpu()).to_vector<float>(), ref = x.to_vector<float>();
  const int64_t C = 5, S = 3 * 4 * 6;
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t s = 0; s < S; ++s)
        ASSERT_EQ(raw[size_t((n * S + s) * C + c)], ref[size_t((n * C + c) * S + s)]);
  expect_close(cl, x, kExact, "round trip");
  expect_close(cuda_prims::to_layout(gpu(x), Layout::NDHWC, DType::BF16), round_bf16(x), kExact,
               "to NDHWC + bf16");
}

// ---------------- softmax, loss, linear ----------------

TEST(CudaSoftmax, ForwardAndBackward) {
  MC_SKIP_WITHOUT_GPU();
  Tensor x = test::randn({6, 10}, 8, DType::F32, 3.0), dy = test::randn({6, 10}, 9);
  for (bool log : {false, true}) {
    Tensor y = prims::softmax_forward(x, log), gy = cuda_prims::softmax_forward(gpu(x), log);
    expect_close(gy, y, {1e-6, 1e-7, 1e-6}, log ? "log_softmax" : "softmax");
    expect_close(cuda_prims::softmax_backward(gy, gpu(dy), log),
                 prims::softmax_backward(y, dy, log), {1e-5, 1e-6, 1e-6}, "softmax backward");
  }
}

TEST(CudaCrossEntropy, LossAndGradientWithOffsetAndWeights) {
  MC_SKIP_WITHOUT_GPU();
  Tensor logits = test::randn({37, 3}, 10, DType::F32, 2.0);
  std::vector<int64_t> lab;
  for (int i = 0; i < 37; ++i) lab.push_back((i * 7) % 3);
  Tensor labels = Tensor::from(lab, {37});
  Tensor offset = Tensor::from<float>({-0.3f, 0.1f, 0.5f}, {3});
  Tensor weight = Tensor::from<float>({2.f, 1.f, 0.5f}, {3});
  for (bool mean : {true, false})
    for (bool adjust : {false, true}) {
      const Tensor off = adjust ? offset : Tensor(), wt = adjust ? weight : Tensor();
      Tensor d, gd;
      Tensor l = prims::cross_entropy(logits, labels, off, wt, mean, &d, 0.7);
      Tensor gl = cuda_prims::cross_entropy(gpu(logits), gpu(labels), adjust ? gpu(off) : Tensor(),
                                            adjust ? gpu(wt) : Tensor(), mean, &gd, 0.7);
      expect_close(gl, l, {1e-6, 1e-7, 1e-6}, "loss");
      expect_close(gd, d, {1e-5, 1e-6, 1e-6}, "dlogits");
    }
  cuda::check_device_flags(0);
}

TEST(CudaLinear, ForwardAndBackwardPerPrecision) {
  MC_SKIP_WITHOUT_GPU();
  Tensor x = test::randn({5, 70}, 11), w = test::randn({3, 70}, 12, DType::F32, 0.1);
  Tensor b = test::randn({3}, 13), dy = test::randn({5, 3}, 14);
  for (Precision p : {Precision::FP32, Precision::TF32}) {
    PrecisionScope s(p);
    const Tol t = p == Precision::FP32 ? Tol{1e-5, 1e-6, 1e-6} : tol_for(p);
    expect_close(cuda_prims::linear_forward(gpu(x), gpu(w), gpu(b)), prims::linear_forward(x, w, b),
                 t, "linear");
    Tensor dx, dw, db, gdx, gdw, gdb;
    prims::linear_backward(x, w, dy, &dx, &dw, &db);
    cuda_prims::linear_backward(gpu(x), gpu(w), gpu(dy), &gdx, &gdw, &gdb);
    expect_close(gdx, dx, t, "linear dx");
    expect_close(gdw, dw, t, "linear dw");
    expect_close(gdb, db, t, "linear db");
  }
  // A bf16 input (what global pooling gives in bf16 mode): computed in f32, dx back in bf16.
  Tensor xb = round_bf16(x), gdx;
  cuda_prims::linear_backward(gpu(xb).to(DType::BF16), gpu(w), gpu(dy), &gdx, nullptr, nullptr);
  EXPECT_EQ(gdx.dtype(), DType::BF16);
  Tensor dx;
  prims::linear_backward(xb, w, dy, &dx, nullptr, nullptr);
  expect_close(gdx, dx, tol_for(Precision::BF16), "linear dx (bf16)");
}

// ---------------- pooling ----------------

TEST(CudaPool, MaxPoolMatchesExactlyInBothLayouts) {
  MC_SKIP_WITHOUT_GPU();
  // Small integers make ties: the first maximum must win on both sides.
  Tensor x = test::uniform({2, 3, 9, 10, 11}, 15, -4, 4);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = std::round(x.data<float>()[i]);
  kernels::PoolGeom g;
  g.N = 2;
  g.C = 3;
  g.D = 9;
  g.H = 10;
  g.W = 11;
  g.k = {3, 3, 3};
  g.stride = {2, 2, 2};
  g.pad = {1, 1, 1};
  Tensor am, gam;
  Tensor y = prims::maxpool3d_forward(x, g, am);
  Tensor dy = test::randn(y.shape(), 16);
  Tensor dx = prims::maxpool3d_backward(dy, am, g);
  for (bool cl : {false, true}) {
    Tensor gx = cl ? cuda_prims::to_layout(gpu(x), Layout::NDHWC) : gpu(x);
    Tensor gy = cuda_prims::maxpool3d_forward(gx, g, gam);
    expect_close(gy, y, kExact, std::string("max pool ") + layout_name(cl));
    if (!cl) EXPECT_EQ(gam.to_vector<int64_t>(), am.to_vector<int64_t>());
    Tensor gdy = cl ? cuda_prims::to_layout(gpu(dy), Layout::NDHWC) : gpu(dy);
    expect_close(cuda_prims::maxpool3d_backward(gdy, gam, g), dx, kExact,
                 std::string("max pool backward ") + layout_name(cl));
  }
  // bf16: the maxima are inputs (exact); gradients are summed in float and rounded once.
  Tensor xb = round_bf16(test::randn(x.shape(), 17));
  Tensor yb = prims::maxpool3d_forward(xb, g, am);
  Tensor gyb = cuda_prims::maxpool3d_forward(gpu(xb).to(DType::BF16), g, gam);
  expect_close(gyb, yb, kExact, "max pool bf16");
  Tensor dyb = round_bf16(dy);
  expect_close(cuda_prims::maxpool3d_backward(gpu(dyb).to(DType::BF16), gam, g),
               round_bf16(prims::maxpool3d_backward(dyb, am, g)), kExact, "max pool bwd bf16");
}

TEST(CudaPool, NanPropagatesThroughMaxPool) {
  MC_SKIP_WITHOUT_GPU();
  Tensor x = test::randn({1, 1, 4, 4, 4}, 18);
  x.data<float>()[5] = NAN;
  kernels::PoolGeom g;
  g.D = g.H = g.W = 4;
  g.k = {2, 2, 2};
  g.stride = {2, 2, 2};
  Tensor am, gam;
  std::vector<float> ref = prims::maxpool3d_forward(x, g, am).to_vector<float>();
  std::vector<float> got = cuda_prims::maxpool3d_forward(gpu(x), g, gam).to_vector<float>();
  ASSERT_EQ(ref.size(), got.size());
  for (size_t i = 0; i < ref.size(); ++i)
    EXPECT_TRUE(std::isnan(ref[i]) ? std::isnan(got[i]) : ref[i] == got[i]) << i;
}

TEST(CudaPool, GlobalAveragePoolBothLayoutsDeterministic) {
  MC_SKIP_WITHOUT_GPU();
  Tensor x = test::randn({2, 5, 4, 5, 6}, 19), dy = test::randn({2, 5}, 20);
  Tensor y = prims::avgpool_global_forward(x), dx = prims::avgpool_global_backward(dy, x.shape());
  for (bool cl : {false, true}) {
    PrecisionScope s(Precision::FP32, cl);
    Tensor gx = cl ? cuda_prims::to_layout(gpu(x), Layout::NDHWC) : gpu(x);
    Tensor gy = cuda_prims::avgpool_global_forward(gx);
    expect_close(gy, y, {1e-6, 1e-7, 1e-6}, std::string("gap ") + layout_name(cl));
    EXPECT_EQ(gy.to_vector<float>(), cuda_prims::avgpool_global_forward(gx).to_vector<float>());
    Tensor gdx = cuda_prims::avgpool_global_backward(gpu(dy), x.shape());
    EXPECT_EQ(gdx.layout(), cl ? Layout::NDHWC : Layout::NCDHW);
    expect_close(gdx, dx, {1e-6, 0, 1e-6}, std::string("gap backward ") + layout_name(cl));
  }
}

// ---------------- batch norm ----------------

TEST(CudaBatchNorm, TrainingForwardBackwardAndRunningStats) {
  MC_SKIP_WITHOUT_GPU();
  for (const Shape& shape : {Shape{4, 6, 5, 6, 7}, Shape{16, 6}})
    for (Precision p : {Precision::FP32, Precision::BF16})
      for (bool cl : {false, true}) {
        if (cl && shape.size() != 5) continue;
        const std::string what = shape_str(shape) + " " + precision_name(p) + " " + layout_name(cl);
        const Tensor x = rounded_for(p, test::randn(shape, 21, DType::F32, 2.0));
        const Tensor dy = rounded_for(p, test::randn(shape, 22));
        const int64_t C = shape[1];
        Tensor w = test::uniform({C}, 23, 0.5, 1.5), b = test::randn({C}, 24);
        Tensor rm = test::randn({C}, 25), rv = test::uniform({C}, 26, 0.5, 2);
        Tensor grm = gpu(rm), grv = gpu(rv);
        prims::BNSaved s, gs;
        Tensor y = prims::batchnorm_forward_train(x, w, b, rm, rv, 0.1, 1e-5, s);
        Tensor gx = gpu(x).to(p == Precision::BF16 ? DType::BF16 : DType::F32);
        if (cl) gx = cuda_prims::to_layout(gx, Layout::NDHWC);
        Tensor gy =
            cuda_prims::batchnorm_forward_train(gx, gpu(w), gpu(b), grm, grv, 0.1, 1e-5, gs);
        const Tol t = p == Precision::FP32 ? Tol{1e-4, 1e-5, 1e-5} : tol_for(p);
        const Tol stats{1e-4, 1e-6, 1e-5};  // f32 statistics in every mode
        expect_close(gy, y, t, "bn y " + what);
        expect_close(gs.mean, s.mean, stats, "bn saved mean " + what);
        expect_close(gs.invstd, s.invstd, stats, "bn saved invstd " + what);
        expect_close(grm, rm, stats, "bn running mean " + what);
        expect_close(grv, rv, stats, "bn running var (unbiased) " + what);
        Tensor dw, db, gdw, gdb;
        Tensor dx = prims::batchnorm_backward_train(x, dy, w, s, dw, db);
        Tensor gdy = gpu(dy).to(gx.dtype());
        if (cl) gdy = cuda_prims::to_layout(gdy, Layout::NDHWC);
        Tensor gdx = cuda_prims::batchnorm_backward_train(gx, gdy, gpu(w), gs, gdw, gdb);
        expect_close(gdx, dx, t, "bn dx " + what);
        expect_close(gdw, dw, stats, "bn dw " + what);
        expect_close(gdb, db, stats, "bn db " + what);
      }
}

TEST(CudaBatchNorm, EvalForwardBackwardAndNoAffine) {
  MC_SKIP_WITHOUT_GPU();
  const Shape shape{3, 4, 5, 4, 3};
  Tensor x = test::randn(shape, 27), dy = test::randn(shape, 28);
  Tensor w = test::uniform({4}, 29, 0.5, 1.5), b = test::randn({4}, 30);
  Tensor rm = test::randn({4}, 31), rv = test::uniform({4}, 32, 0.5, 2);
  const Tol t{1e-5, 1e-6, 1e-5};
  for (bool cl : {false, true}) {
    Tensor gx = cl ? cuda_prims::to_layout(gpu(x), Layout::NDHWC) : gpu(x);
    Tensor gdy = cl ? cuda_prims::to_layout(gpu(dy), Layout::NDHWC) : gpu(dy);
    expect_close(cuda_prims::batchnorm_forward_eval(gx, gpu(w), gpu(b), gpu(rm), gpu(rv), 1e-5),
                 prims::batchnorm_forward_eval(x, w, b, rm, rv, 1e-5), t, "bn eval y");
    Tensor dw, db, gdw, gdb;
    Tensor dx = prims::batchnorm_backward_eval(x, dy, w, rm, rv, 1e-5, dw, db);
    Tensor gdx =
        cuda_prims::batchnorm_backward_eval(gx, gdy, gpu(w), gpu(rm), gpu(rv), 1e-5, gdw, gdb);
    expect_close(gdx, dx, t, std::string("bn eval dx ") + layout_name(cl));
    expect_close(gdw, dw, {1e-4, 1e-6, 1e-5}, "bn eval dw");
    expect_close(gdb, db, {1e-4, 1e-6, 1e-5}, "bn eval db");
  }
  Tensor none, grm, grv;  // affine=False, no running statistics
  prims::BNSaved s, gs;
  expect_close(cuda_prims::batchnorm_forward_train(gpu(x), none, none, grm, grv, 0.1, 1e-5, gs),
               prims::batchnorm_forward_train(x, none, none, none, none, 0.1, 1e-5, s), t,
               "bn without affine");
}

// ---------------- convolution ----------------

kernels::ConvGeom geom(const Shape& x, int64_t O, int64_t k, int64_t s, int64_t p, int64_t dil,
                       int64_t groups) {
  kernels::ConvGeom g;
  g.N = x[0];
  g.C = x[1];
  g.D = x[2];
  g.H = x[3];
  g.W = x[4];
  g.O = O;
  g.k = {k, k, k};
  g.stride = {s, s, s};
  g.pad = {p, p, p};
  g.dil = {dil, dil, dil};
  g.groups = groups;
  return g;
}
Shape out_shape(const kernels::ConvGeom& g) { return {g.N, g.O, g.oD(), g.oH(), g.oW()}; }

struct ConvCase {
  Shape x;
  int64_t O, k, s, p, dil, groups;
  bool bias;
};

TEST(CudaConv, ForwardAndBothGradientsPerPrecisionAndLayout) {
  MC_SKIP_WITHOUT_GPU();
  const ConvCase cases[] = {
      {{2, 3, 9, 10, 11}, 4, 3, 1, 1, 1, 1, false},   // odd extents
      {{2, 4, 8, 8, 8}, 6, 3, 2, 1, 1, 1, false},     // stride 2
      {{1, 1, 16, 16, 16}, 8, 7, 2, 3, 1, 1, false},  // the ResNet stem
      {{2, 8, 6, 6, 6}, 16, 1, 1, 0, 1, 1, false},    // bottleneck 1x1x1
      {{2, 8, 7, 7, 7}, 8, 1, 2, 0, 1, 1, false},     // downsample
      {{2, 4, 6, 6, 6}, 4, 3, 1, 2, 2, 1, false},     // dilation
      {{2, 8, 6, 6, 6}, 8, 3, 1, 1, 1, 2, true},      // groups + bias
  };
  int seed = 100;
  for (const ConvCase& c : cases) {
    const kernels::ConvGeom g = geom(c.x, c.O, c.k, c.s, c.p, c.dil, c.groups);
    const Tensor x0 = test::randn(c.x, ++seed);
    const Tensor w0 = test::randn({c.O, c.x[1] / c.groups, c.k, c.k, c.k}, ++seed, DType::F32, 0.2);
    const Tensor b0 = c.bias ? test::randn({c.O}, ++seed) : Tensor();
    const Tensor dy0 = test::randn(out_shape(g), ++seed);
    for (Precision p : {Precision::FP32, Precision::TF32, Precision::BF16})
      for (bool cl : {false, true}) {
        PrecisionScope scope(p, cl);
        const std::string what = "conv " + shape_str(c.x) + " k" + std::to_string(c.k) + " s" +
                                 std::to_string(c.s) + " " + precision_name(p) + " " +
                                 layout_name(cl);
        const Tensor x = rounded_for(p, x0), w = rounded_for(p, w0), dy = rounded_for(p, dy0);
        const Tol t = tol_for(p);
        Tensor y = prims::conv3d_forward(x, w, b0, g);
        Tensor gy = cuda_prims::conv3d_forward(gpu(x), gpu(w), c.bias ? gpu(b0) : Tensor(), g);
        EXPECT_EQ(gy.layout(), cl ? Layout::NDHWC : Layout::NCDHW) << what;
        expect_close(gy, y, t, what + " forward");
        Tensor gdy = cl ? cuda_prims::to_layout(gpu(dy), Layout::NDHWC) : gpu(dy);
        expect_close(cuda_prims::conv3d_backward_data(gdy, gpu(w), g),
                     prims::conv3d_backward_data(dy, w, g), t, what + " dgrad");
        Tensor db, gdb;
        Tensor dw = prims::conv3d_backward_weight(x, dy, g, c.bias ? &db : nullptr);
        Tensor gdw = cuda_prims::conv3d_backward_weight(gpu(x), gdy, g, c.bias ? &gdb : nullptr);
        EXPECT_EQ(gdw.dtype(), DType::F32) << what;
        expect_close(gdw, dw, t, what + " wgrad");
        if (c.bias) expect_close(gdb, db, t, what + " bias grad");
      }
  }
}

TEST(CudaConv, DeterministicModeRepeatsBitForBit) {
  MC_SKIP_WITHOUT_GPU();
  const kernels::ConvGeom g = geom({4, 16, 12, 12, 12}, 16, 3, 1, 1, 1, 1);
  const Tensor x = gpu(test::randn({4, 16, 12, 12, 12}, 300));
  const Tensor dy = gpu(test::randn(out_shape(g), 301));
  set_deterministic(true);
  std::vector<float> a = cuda_prims::conv3d_backward_weight(x, dy, g, nullptr).to_vector<float>();
  std::vector<float> b = cuda_prims::conv3d_backward_weight(x, dy, g, nullptr).to_vector<float>();
  set_deterministic(false);
  EXPECT_EQ(a, b);
}

// Big inputs, where cuDNN 9.10-9.15 returned wrong bf16 3-D convolutions (REFERENCE.md). The
// CPU checks forward and dgrad on the first and last sample (samples are independent); wgrad
// sums over the batch, so it is checked against the GPU's own strict-fp32 result.
void large_conv(const Shape& xs, int64_t O) {
  const kernels::ConvGeom g = geom(xs, O, 3, 1, 1, 1, 1);
  const Tensor x = round_bf16(test::randn(xs, 200));
  const Tensor w = round_bf16(test::randn({O, xs[1], 3, 3, 3}, 201, DType::F32, 0.05));
  const Tensor dy = round_bf16(test::randn(out_shape(g), 202));
  const Tensor gx = gpu(x), gw = gpu(w), gdy = gpu(dy);
  const int64_t per_x = numel_of(xs) / xs[0], per_y = numel_of(out_shape(g)) / xs[0];
  kernels::ConvGeom g1 = g;
  g1.N = 1;
  const int64_t samples[2] = {0, xs[0] - 1};
  Tensor y_ref[2], dx_ref[2];
  for (int i = 0; i < 2; ++i) {
    const Tensor xn = x.flat_slice(samples[i] * per_x, {1, xs[1], xs[2], xs[3], xs[4]});
    y_ref[i] = prims::conv3d_forward(xn, w, Tensor(), g1);
    dx_ref[i] =
        prims::conv3d_backward_data(dy.flat_slice(samples[i] * per_y, out_shape(g1)), w, g1);
  }
  Tensor dw_ref;
  {
    PrecisionScope s(Precision::FP32, false);
    dw_ref = host(cuda_prims::conv3d_backward_weight(gx, gdy, g, nullptr));
  }
  for (Precision p : {Precision::FP32, Precision::TF32, Precision::BF16}) {
    PrecisionScope scope(p, p != Precision::FP32);
    const std::string what = "large conv " + shape_str(xs) + " " + precision_name(p);
    const Tol t = tol_for(p);
    const Tensor y = host(cuda_prims::conv3d_forward(gx, gw, Tensor(), g));
    const Tensor gdy_l = channels_last() ? cuda_prims::to_layout(gdy, Layout::NDHWC) : gdy;
    const Tensor dx = host(cuda_prims::conv3d_backward_data(gdy_l, gw, g));
    for (int i = 0; i < 2; ++i) {
      const std::string at = ", sample " + std::to_string(samples[i]);
      expect_close(y.flat_slice(samples[i] * per_y, y_ref[i].shape()), y_ref[i], t,
                   what + " forward" + at);
      expect_close(dx.flat_slice(samples[i] * per_x, dx_ref[i].shape()), dx_ref[i], t,
                   what + " dgrad" + at);
    }
    if (p != Precision::FP32)
      expect_close(cuda_prims::conv3d_backward_weight(gx, gdy_l, g, nullptr), dw_ref, t,
                   what + " wgrad");
  }
}

TEST(CudaConvLarge, Batch8Channels64At64Cubed) {
  MC_SKIP_WITHOUT_GPU();
  large_conv({8, 64, 64, 64, 64}, 64);
}

TEST(CudaConvLarge, Batch2Channels256At32Cubed) {
  MC_SKIP_WITHOUT_GPU();
  large_conv({2, 256, 32, 32, 32}, 256);
}

// ---------------- optimizers ----------------

TEST(CudaOptim, AdamWAndSgdMatchTheCpuBitForBit) {
  MC_SKIP_WITHOUT_GPU();
  const int64_t n = 100003;  // odd: the float4 body and a tail
  Tensor p = test::randn({n}, 40), g = test::randn({n}, 41),
         m = test::randn({n}, 42, DType::F32, 0.1);
  Tensor v = test::uniform({n}, 43, 0, 0.01);
  Tensor gp = gpu(p), gg = gpu(g), gm = gpu(m), gv = gpu(v);
  for (int64_t step = 1; step <= 3; ++step) {
    kernels::AdamWArgs a{1e-3, 0.9, 0.999, 1e-8, 1e-2, step};
    kernels::cpu::adamw_step(p.data<float>(), g.data<float>(), m.data<float>(), v.data<float>(), n,
                             a);
    kernels::cuda::adamw_step(gp.data<float>(), gg.data<float>(), gm.data<float>(),
                              gv.data<float>(), n, a, cuda::stream(0));
  }
  expect_close(gp, p, kExact, "adamw params");
  expect_close(gm, m, kExact, "adamw exp_avg");
  expect_close(gv, v, kExact, "adamw exp_avg_sq");
  for (bool nesterov : {false, true}) {
    Tensor q = p.clone(), buf = Tensor::zeros({n}), gq = gpu(q), gbuf = gpu(buf);
    for (int step = 0; step < 3; ++step) {
      kernels::SGDArgs a{1e-2, 0.9, nesterov ? 0.0 : 0.1, 1e-3, nesterov, step == 0};
      kernels::cpu::sgd_step(q.data<float>(), g.data<float>(), buf.data<float>(), n, a);
      kernels::cuda::sgd_step(gq.data<float>(), gg.data<float>(), gbuf.data<float>(), n, a,
                              cuda::stream(0));
    }
    expect_close(gq, q, kExact, nesterov ? "sgd nesterov" : "sgd");
    expect_close(gbuf, buf, kExact, "sgd momentum buffer");
  }
}

// ---------------- a whole step through autograd ----------------

// conv-bn-relu-pool -> residual block -> pool -> linear -> loss, backward, AdamW: every gradient
// and the updated parameters agree with the CPU.
// In tf32 and bf16 (channels-last) the same step exercises the dtype and layout plumbing across
// autograd (casts at the first convolution, NDHWC through pooling and the residual add, bf16
// gradients back into f32 weights) against the fp32 CPU result, with loose tolerances: every
// layer rounds its activations.
TEST(CudaStep, ForwardBackwardAdamWMatchTheCpu) {
  MC_SKIP_WITHOUT_GPU();
  struct Net {
    std::vector<Tensor> p;    // w1 g1 b1 w2 g2 b2 fw fb
    std::vector<Tensor> buf;  // rm1 rv1 rm2 rv2
    Tensor forward(const Tensor& x) {
      const Conv3dOpts s2{{2, 2, 2}, {1, 1, 1}}, s1{{1, 1, 1}, {1, 1, 1}};
      Tensor h = relu(batch_norm(conv3d(x, p[0], Tensor(), s2), p[1], p[2], buf[0], buf[1], true));
      h = max_pool3d(h, {3, 3, 3}, {2, 2, 2}, {1, 1, 1});
      Tensor r = batch_norm(conv3d(h, p[3], Tensor(), s1), p[4], p[5], buf[2], buf[3], true);
      h = relu(add(h, r));
      return linear(global_avg_pool3d(h), p[6], p[7]);
    }
    Tensor step(const Tensor& x, const Tensor& y) {  // two AdamW steps; returns the last loss
      std::vector<Tensor*> ptrs;
      for (auto& t : p) ptrs.push_back(&t.set_requires_grad(true));
      AdamW opt(ptrs);
      Tensor loss;
      for (int it = 0; it < 2; ++it) {
        for (auto* t : ptrs) t->zero_grad();
        loss = cross_entropy(forward(x), y);
        loss.backward();
        opt.step();
      }
      return loss;
    }
  };
  const Net init{
      {test::randn({8, 2, 3, 3, 3}, 50, DType::F32, 0.3), test::uniform({8}, 51, 0.5, 1.5),
       test::randn({8}, 52, DType::F32, 0.1), test::randn({8, 8, 3, 3, 3}, 53, DType::F32, 0.1),
       test::uniform({8}, 54, 0.5, 1.5), test::randn({8}, 55, DType::F32, 0.1),
       test::randn({3, 8}, 56, DType::F32, 0.3), test::randn({3}, 57, DType::F32, 0.1)},
      {Tensor::zeros({8}), Tensor::full({8}, 1.0), Tensor::zeros({8}), Tensor::full({8}, 1.0)}};
  auto copy = [](const Net& n, Device dev) {
    Net c;
    for (const auto& t : n.p) c.p.push_back(t.detach().clone().to(dev));
    for (const auto& t : n.buf) c.buf.push_back(t.clone().to(dev));
    return c;
  };
  const Tensor x = test::randn({3, 2, 10, 11, 12}, 58);
  const Tensor y = Tensor::from<int64_t>({2, 0, 1}, {3});
  Net cpu = copy(init, Device::cpu());
  const Tensor l = cpu.step(x, y);
  for (Precision p : {Precision::FP32, Precision::TF32, Precision::BF16}) {
    PrecisionScope scope(p, p == Precision::BF16);
    const Tol t = p == Precision::FP32   ? Tol{1e-4, 1e-5, 1e-4}
                  : p == Precision::TF32 ? Tol{3e-2, 1e-2, 1e-2}
                                         : Tol{1e-1, 5e-2, 5e-2};
    const std::string at = std::string(" (") + precision_name(p) + ")";
    Net dev = copy(init, kGpu);
    expect_close(dev.step(gpu(x), gpu(y)), l, t, "loss" + at);
    for (size_t i = 0; i < cpu.p.size(); ++i) {
      expect_close(dev.p[i].grad(), cpu.p[i].grad(), t, "grad " + std::to_string(i) + at);
      expect_close(dev.p[i], cpu.p[i], t, "param " + std::to_string(i) + at);
    }
    for (size_t i = 0; i < cpu.buf.size(); ++i)
      expect_close(dev.buf[i], cpu.buf[i], t, "running stat " + std::to_string(i) + at);
  }
}

#endif  // MC_HAVE_CUDA
}  // namespace
}  // namespace mc
