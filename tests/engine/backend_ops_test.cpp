// The loops over the backend-ops table (tests/engine/op_table.h), one test case per row:
//   GradCheck.*   float64 central differences against autograd on the CPU
//   CpuLayout.*   the same row with its 5-D activations in NDHWC gives exactly the NCDHW results
//                 on the CPU, with every output and gradient tagged in its input's layout
//   Parity.*      the GPU against the CPU reference per precision and layout (skips without a
//                 GPU), with one rule: |gpu - ref| <= atol * max|ref| + rtol * |ref| elementwise,
//                 and max|gpu - ref| / max|ref| <= whole. In bf16 the reference runs in f32 on the
//                 bf16-rounded inputs, so what is measured is the GPU's accumulation and output
//                 rounding, not the input rounding.
// plus the few checks that are no row: casts bit for bit, the layout permutation itself, NaN
// through max pooling, and deterministic convolution.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <map>

#include "engine/device.h"
#include "engine/ops.h"
#include "engine/prims.h"
#include "engine/random.h"
#include "test_util.h"
#include "tests/engine/op_table.h"

namespace mc {
namespace {

using optable::Input;
using optable::Role;
using optable::Row;
using optable::Tol;
using optable::TolClass;

std::string test_name(const std::string& row) {
  std::string s;
  for (char c : row) s += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return s;
}
std::vector<std::string> names(bool (*want)(const Row&)) {
  std::vector<std::string> out;
  for (const Row& r : optable::rows())
    if (want(r)) out.push_back(r.name);
  return out;
}
std::string param_name(const testing::TestParamInfo<std::string>& info) {
  return test_name(info.param);
}

Tensor round_bf16(const Tensor& t) { return t.to(DType::BF16).to(DType::F32); }

// Any result on the host as f32 NCDHW, whatever device, dtype and layout it came in.
Tensor host(const Tensor& t) {
  Tensor u = t.to(Device::cpu());
  if (u.dim() == 5 && u.layout() == Layout::NDHWC) u = prims::to_layout(u, Layout::NCDHW);
  return u.dtype() == DType::F32 ? u : u.to(DType::F32);
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.to_vector<double>()) m = std::max(m, std::abs(v));
  return m;
}

void expect_close(const Tensor& got, const Tensor& ref, Tol t, const std::string& what) {
  ASSERT_TRUE(got.defined()) << what << ": no result";
  const Tensor g = host(got);
  ASSERT_EQ(g.shape(), ref.shape()) << what;
  EXPECT_TRUE(test::all_close(g, ref, t.rtol, t.atol * max_abs(ref))) << what;
  EXPECT_LE(test::rel_error(g, ref), t.whole) << what;
}

// One run of a row: its outputs and the gradient of every input with `grad` (undefined for the
// others), after seeding outputs[0] with `dy` (moved to its device, dtype and layout).
struct Outcome {
  std::vector<Tensor> in, out, grad;
};

Outcome execute(const Row& row, std::vector<Tensor> in, const std::vector<Input>& spec,
            const Tensor& dy) {
  Outcome r;
  for (size_t i = 0; i < in.size(); ++i)
    if (row.backward && spec[i].grad && is_floating(in[i].dtype())) in[i].set_requires_grad(true);
  r.out = row.run(in);
  if (row.backward) {
    const Tensor& y = r.out[0];
    Tensor seed = dy.to(y.device()).to(y.dtype());
    if (y.dim() == 5) seed = prims::to_layout(seed, y.layout());
    y.backward(seed);
  }
  for (size_t i = 0; i < in.size(); ++i)
    r.grad.push_back(in[i].requires_grad() ? in[i].grad() : Tensor());
  r.in = std::move(in);
  return r;
}

Tensor dy_for(const Row& row, const Shape& s, bool bf16) {
  Tensor dy = test::randn(s, row.dy_seed);
  return bf16 || row.sampled ? round_bf16(dy) : dy;
}

// The inputs of a run: on the CPU reference (f32, NCDHW; bf16-rounded activations and weights
// in bf16), or on `dev` in the precision's dtype and the run's layout.
std::vector<Tensor> prepare(const std::vector<Input>& spec, Device dev, Precision p, Layout l) {
  std::vector<Tensor> out;
  const bool bf16 = p == Precision::BF16;
  for (const Input& s : spec) {
    Tensor t = s.value.detach();  // a fresh autograd leaf per run
    if (dev.is_cpu() && l == Layout::NCDHW) {
      if (bf16 && (s.role == Role::Activation || s.role == Role::Weight)) t = round_bf16(t);
      out.push_back(t);
      continue;
    }
    t = t.to(dev);
    if (s.role == Role::Activation && is_floating(t.dtype())) {
      if (bf16 && dev.is_cuda()) t = t.to(DType::BF16);
      if (t.dim() == 5) t = prims::to_layout(t, l);
    }
    out.push_back(t);
  }
  return out;
}

// ---------------- float64 gradient checks (CPU) ----------------

class GradCheck : public testing::TestWithParam<std::string> {};

TEST_P(GradCheck, AutogradMatchesCentralDifferences) {
  const Row& row = optable::row(GetParam());
  std::vector<Input> spec = row.make(DType::F64);
  std::vector<Tensor> in;
  for (auto& s : spec) {
    in.push_back(s.value);
    if (s.grad && is_floating(s.value.dtype())) in.back().set_requires_grad(true);
  }
  const auto f = [&](const std::vector<Tensor>& x) { return row.run(x)[0]; };
  Tensor out = f(in);
  const Tensor R = test::randn(out.shape(), row.grad_seed + 99, DType::F64);
  sum(mul(out, R)).backward();
  const double h = 1e-6;
  for (size_t i = 0; i < in.size(); ++i) {
    if (!in[i].requires_grad()) continue;
    Tensor analytic = in[i].grad();
    ASSERT_TRUE(analytic.defined()) << "input " << i << " got no gradient";
    double* x = in[i].data<double>();
    std::vector<double> numeric(size_t(in[i].numel()));
    NoGradGuard ng;
    for (int64_t k = 0; k < in[i].numel(); ++k) {
      const double keep = x[k];
      x[k] = keep + h;
      const double up = sum(mul(f(in), R)).item();
      x[k] = keep - h;
      const double down = sum(mul(f(in), R)).item();
      x[k] = keep;
      numeric[size_t(k)] = (up - down) / (2 * h);
    }
    EXPECT_TRUE(test::all_close(analytic, Tensor::from(numeric, in[i].shape()), row.grad_tol,
                                row.grad_tol))
        << "input " << i;
  }
}
INSTANTIATE_TEST_SUITE_P(Rows, GradCheck,
                         testing::ValuesIn(names([](const Row& r) { return r.gradcheck; })),
                         param_name);

// ---------------- CPU: NDHWC computes what NCDHW does ----------------

class CpuLayout : public testing::TestWithParam<std::string> {};

TEST_P(CpuLayout, ChannelsLastEqualsChannelsFirstBitForBit) {
  const Row& row = optable::row(GetParam());
  const std::vector<Input> spec = row.make(DType::F32);
  const Device cpu = Device::cpu();
  Tensor dy;
  auto run = [&](Layout l) {
    std::vector<Tensor> in = prepare(spec, cpu, Precision::FP32, l);
    if (!dy.defined() && row.backward) dy = dy_for(row, row.run(in)[0].shape(), false);
    return execute(row, in, spec, dy);
  };
  const Outcome a = run(Layout::NCDHW), b = run(Layout::NDHWC);
  ASSERT_EQ(a.out.size(), b.out.size());
  for (size_t i = 0; i < a.out.size(); ++i) {
    if (b.out[i].dim() == 5 && i == 0) EXPECT_EQ(b.out[i].layout(), Layout::NDHWC) << "output " << i;
    EXPECT_EQ(host(b.out[i]).to_vector<float>(), host(a.out[i]).to_vector<float>())
        << "output " << i;
  }
  for (size_t i = 0; i < a.grad.size(); ++i) {
    if (!a.grad[i].defined()) continue;
    ASSERT_TRUE(b.grad[i].defined()) << "input " << i;
    EXPECT_EQ(b.grad[i].layout(), b.in[i].layout()) << "gradient " << i << " not in its input's layout";
    EXPECT_EQ(host(b.grad[i]).to_vector<float>(), host(a.grad[i]).to_vector<float>())
        << "gradient " << i;
  }
}
INSTANTIATE_TEST_SUITE_P(Rows, CpuLayout,
                         testing::ValuesIn(names([](const Row& r) {
                           return r.layouts && !r.sampled;
                         })),
                         param_name);

// ---------------- GPU against the CPU ----------------

const std::vector<Layout>& layouts_of(const Row& row) {
  static const std::vector<Layout> both{Layout::NCDHW, Layout::NDHWC}, one{Layout::NCDHW};
  return row.layouts ? both : one;
}

std::string at(const Row& row, Precision p, Layout l) {
  return row.name + " " + precision_name(p) + (l == Layout::NDHWC ? " NDHWC" : " NCDHW");
}

// What the device run must give besides the numbers: layouts and dtypes of the results.
void expect_tags(const Row& row, const std::vector<Input>& spec, const Outcome& d, Layout l,
                 const std::string& what) {
  if (row.layouts && d.out[0].dim() == 5) EXPECT_EQ(d.out[0].layout(), l) << what;
  for (size_t i = 0; i < d.grad.size(); ++i) {
    if (!d.grad[i].defined()) continue;
    if (d.in[i].dim() == 5) EXPECT_EQ(d.grad[i].layout(), d.in[i].layout()) << what << " grad " << i;
    const DType want = spec[i].role == Role::Activation ? d.in[i].dtype() : DType::F32;
    EXPECT_EQ(d.grad[i].dtype(), want) << what << " grad " << i;
  }
}

Tensor reference_for(const Tensor& ref, const Tensor& got, TolClass c) {
  // An exact op rounds once: a bf16 result equals the rounded f32 reference.
  return c == TolClass::Exact && got.dtype() == DType::BF16 ? round_bf16(ref) : ref;
}

class Parity : public testing::TestWithParam<std::string> {};

TEST_P(Parity, GpuMatchesCpu) {
  MC_SKIP_WITHOUT_GPU();
  const Row& row = optable::row(GetParam());
  const Device gpu = Device::cuda();
  const std::vector<Input> spec = row.make(DType::F32);
  for (Precision p : row.precisions) {
    PrecisionScope scope(p);
    const bool bf16 = p == Precision::BF16;
    std::vector<Tensor> rin = prepare(spec, Device::cpu(), p, Layout::NCDHW);
    const Tensor dy = row.backward ? dy_for(row, row.run(rin)[0].shape(), bf16) : Tensor();
    const Outcome ref = execute(row, rin, spec, dy);
    for (Layout l : layouts_of(row)) {
      const std::string what = at(row, p, l);
      const Outcome d = execute(row, prepare(spec, gpu, p, l), spec, dy);
      ASSERT_EQ(d.out.size(), ref.out.size()) << what;
      for (size_t i = 0; i < d.out.size(); ++i) {
        const TolClass c = i == 0 ? row.fwd : row.extra;
        expect_close(d.out[i], reference_for(host(ref.out[i]), d.out[i], c), optable::tol(c, p),
                     what + " output " + std::to_string(i));
      }
      for (size_t i = 0; i < d.grad.size(); ++i) {
        if (!ref.grad[i].defined()) continue;
        const TolClass c = spec[i].grad_tol;
        expect_close(d.grad[i], reference_for(host(ref.grad[i]), d.grad[i], c),
                     optable::tol(c, p), what + " grad " + std::to_string(i));
      }
      expect_tags(row, spec, d, l, what);
      if (row.deterministic) {
        NoGradGuard ng;
        const std::vector<Tensor> again = row.run(d.in);
        EXPECT_EQ(again[0].to_vector<float>(), d.out[0].to_vector<float>()) << what << " repeat";
      }
      EXPECT_NO_THROW(check_device_flags(gpu)) << what;
    }
  }
}
// Instantiated per kernel family (Row::family), named Cuda<Family>/Parity.GpuMatchesCpu/<row>:
// scripts that pick the GPU tests by name (Cuda*, and a family for the sanitizers) pick these.
std::string family(const Row& r) { return r.family; }
const std::vector<std::string> kParityFamilies = {"Elementwise", "Layout", "Softmax",
                                                  "CrossEntropy", "Linear", "Pool", "BatchNorm",
                                                  "Conv", "Optim", "Step"};  // as MC_PARITY below
std::vector<std::string> parity(const std::string& f) {
  std::vector<std::string> out;
  for (const Row& r : optable::rows())
    if (!r.precisions.empty() && !r.sampled && family(r) == f) out.push_back(r.name);
  return out;
}
#define MC_PARITY(f) \
  INSTANTIATE_TEST_SUITE_P(Cuda##f, Parity, testing::ValuesIn(parity(#f)), param_name)
MC_PARITY(Elementwise);
MC_PARITY(Layout);
MC_PARITY(Softmax);
MC_PARITY(CrossEntropy);
MC_PARITY(Linear);
MC_PARITY(Pool);
MC_PARITY(BatchNorm);
MC_PARITY(Conv);
MC_PARITY(Optim);
MC_PARITY(Step);
#undef MC_PARITY

// Inputs too big for a CPU reference of the whole batch (cuDNN 9.10-9.15 returned wrong bf16
// 3-D convolutions on them): the CPU checks outputs[0] and the activation's gradient on the first
// and last sample (samples are independent); the other gradients sum over the batch, so they
// are checked against the GPU's own strict-fp32 NCDHW result.
class ParitySampled : public testing::TestWithParam<std::string> {};

TEST_P(ParitySampled, GpuMatchesCpuOnSamples) {
  MC_SKIP_WITHOUT_GPU();
  const Row& row = optable::row(GetParam());
  const Device gpu = Device::cuda();
  const std::vector<Input> spec = row.make(DType::F32);
  const Tensor& x = spec[0].value;
  const int64_t N = x.size(0), per_x = x.numel() / N;
  Shape one = x.shape();
  one[0] = 1;
  std::vector<Input> sample_spec = spec;  // only the activation's gradient on the CPU
  for (size_t i = 1; i < sample_spec.size(); ++i) sample_spec[i].grad = false;
  const int64_t samples[2] = {0, N - 1};
  Tensor dy;
  {
    NoGradGuard ng;  // the output's shape, from a GPU forward
    PrecisionScope scope(Precision::FP32);
    dy = dy_for(row, row.run(prepare(spec, gpu, Precision::FP32, Layout::NCDHW))[0].shape(), true);
  }
  Shape ys = dy.shape();
  ys[0] = 1;
  const int64_t per_y = dy.numel() / N;
  Outcome ref[2];
  for (int s = 0; s < 2; ++s) {
    std::vector<Tensor> in = prepare(spec, Device::cpu(), Precision::FP32, Layout::NCDHW);
    in[0] = x.flat_slice(samples[s] * per_x, one).clone();
    ref[s] = execute(row, in, sample_spec, dy.flat_slice(samples[s] * per_y, ys).clone());
  }
  Outcome strict;
  {
    PrecisionScope scope(Precision::FP32);
    strict = execute(row, prepare(spec, gpu, Precision::FP32, Layout::NCDHW), spec, dy);
  }
  for (Precision p : row.precisions)
    for (Layout l : layouts_of(row)) {
      PrecisionScope scope(p);
      const std::string what = at(row, p, l);
      const Outcome d = execute(row, prepare(spec, gpu, p, l), spec, dy);
      const Tensor y = host(d.out[0]), dx = host(d.grad[0]);
      for (int s = 0; s < 2; ++s) {
        const std::string tag = what + ", sample " + std::to_string(samples[s]);
        expect_close(y.flat_slice(samples[s] * per_y, ref[s].out[0].shape()), ref[s].out[0],
                     optable::tol(row.fwd, p), tag + " forward");
        expect_close(dx.flat_slice(samples[s] * per_x, one), ref[s].grad[0],
                     optable::tol(spec[0].grad_tol, p), tag + " input gradient");
      }
      if (p != Precision::FP32)
        for (size_t i = 1; i < d.grad.size(); ++i)
          if (d.grad[i].defined())
            expect_close(d.grad[i], host(strict.grad[i]), optable::tol(spec[i].grad_tol, p),
                         what + " grad " + std::to_string(i));
      expect_tags(row, spec, d, l, what);
    }
}
INSTANTIATE_TEST_SUITE_P(CudaConvLarge, ParitySampled,
                         testing::ValuesIn(names([](const Row& r) { return r.sampled; })),
                         param_name);

// ---------------- the table itself ----------------

TEST(OpTable, RowsAreNamedOnceAndEachIsChecked) {
  std::map<std::string, int> seen, tests;
  for (const Row& r : optable::rows()) {
    EXPECT_EQ(++seen[r.name], 1) << r.name << " twice";
    EXPECT_EQ(++tests[test_name(r.name)], 1) << r.name << ": its test name is taken";
    EXPECT_TRUE(r.gradcheck || r.layouts || !r.precisions.empty()) << r.name << " is never run";
    if (!r.precisions.empty() && !r.sampled)
      EXPECT_NE(std::find(kParityFamilies.begin(), kParityFamilies.end(), r.family),
                kParityFamilies.end())
          << r.name << ": family " << r.family << " has no MC_PARITY line";
    if (r.sampled) continue;  // big: made only where a GPU checks them
    const std::vector<Input> in = r.make(DType::F32);
    EXPECT_FALSE(in.empty()) << r.name;
    if (r.backward)
      EXPECT_TRUE(std::any_of(in.begin(), in.end(), [](const Input& i) { return i.grad; }))
          << r.name << " has a backward but no input to check";
  }
  test::expect_error([] { optable::row("no such op"); }, {"no op row named", "conv3d/plain"});
}

// ---------------- checks that are no row ----------------

TEST(Layout, ChannelsLastIsAPermutationAndRoundTrips) {
  const Tensor x = test::randn({2, 5, 3, 4, 6}, 7);
  for (Device d : {Device::cpu(), Device::cuda()}) {
    if (d.is_cuda() && !test::have_gpu()) continue;
    const Tensor cl = prims::to_layout(x.to(d), Layout::NDHWC);
    EXPECT_EQ(cl.layout(), Layout::NDHWC);
    const std::vector<float> raw = cl.to(Device::cpu()).to_vector<float>(), ref = x.to_vector<float>();
    const int64_t C = 5, S = 3 * 4 * 6;
    for (int64_t n = 0; n < 2; ++n)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t s = 0; s < S; ++s)
          ASSERT_EQ(raw[size_t((n * S + s) * C + c)], ref[size_t((n * C + c) * S + s)]) << d.str();
    EXPECT_EQ(host(cl).to_vector<float>(), ref) << d.str() << " round trip";
    EXPECT_EQ(host(prims::to_layout(x.to(d), Layout::NDHWC, DType::BF16)).to_vector<float>(),
              round_bf16(x).to_vector<float>())
        << d.str() << " to NDHWC + bf16";
  }
  // Reshaping an NDHWC tensor would scramble it: an error, not a silent permutation.
  test::expect_error([&] { reshape(prims::to_layout(x, Layout::NDHWC), {2, -1}); },
                     {"NDHWC", "to_layout"});
}

TEST(CudaCast, FillAndCastMatchTheCpuBitForBit) {
  MC_SKIP_WITHOUT_GPU();
  const Device kGpu = Device::cuda();
  std::vector<float> v = {0.f,   -0.f,   1.f,      -2.5f,     3.14159f, 1e-40f,   6.5e4f,     7e4f,
                          1e30f, -1e-8f, INFINITY, -INFINITY, 65504.f,  2.98e-8f, 0.33333334f};
  for (int i = 0; i < 1000; ++i) v.push_back(float(std::ldexp(std::sin(i * 1.7), i % 60 - 30)));
  Tensor x = Tensor::from(v, {int64_t(v.size())});
  for (DType dt : {DType::BF16, DType::F16, DType::F64, DType::I32, DType::I64}) {
    if (dt == DType::I32 || dt == DType::I64) x = test::uniform({999}, 6, -1000, 1000);
    Tensor c = x.to(dt), g = x.to(kGpu).to(dt).to(Device::cpu());
    ASSERT_EQ(c.nbytes(), g.nbytes());
    EXPECT_EQ(std::memcmp(c.raw(), g.raw(), c.nbytes()), 0) << "f32 -> " << dtype_name(dt);
    Tensor back = c.to(kGpu).to(DType::F32).to(Device::cpu());
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
  std::vector<float> got =
      prims::maxpool3d_forward(x.to(Device::cuda()), g, gam).to_vector<float>();
  ASSERT_EQ(ref.size(), got.size());
  for (size_t i = 0; i < ref.size(); ++i)
    EXPECT_TRUE(std::isnan(ref[i]) ? std::isnan(got[i]) : ref[i] == got[i]) << i;
}

TEST(CudaConv, DeterministicModeRepeatsBitForBit) {
  MC_SKIP_WITHOUT_GPU();
  kernels::ConvGeom g;
  g.N = 4, g.C = 16, g.D = g.H = g.W = 12, g.O = 16;
  g.k = {3, 3, 3}, g.pad = {1, 1, 1};
  const Tensor x = test::randn({4, 16, 12, 12, 12}, 300).to(Device::cuda());
  const Tensor dy = test::randn({4, 16, 12, 12, 12}, 301).to(Device::cuda());
  set_deterministic(true);
  std::vector<float> a = prims::conv3d_backward_weight(x, dy, g, nullptr).to_vector<float>();
  std::vector<float> b = prims::conv3d_backward_weight(x, dy, g, nullptr).to_vector<float>();
  set_deterministic(false);
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace mc
