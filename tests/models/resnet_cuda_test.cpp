// MedConv's model, resnet50, through one training forward and backward on the GPU against the
// CPU, per precision: every layer shape and every op of the real network at once (the op tests
// cover them one by one). Skips without a GPU.
//
// Weights are randomised as tests/fixtures/make_resnet_fixtures.py does (BN weights around 1,
// the last BN of each block small but not zero), input 2 x 1 x 64^3, labels {0, 2}.
// The reference is the CPU in float64. Train-mode backward through 16 bottleneck blocks of batch
// norm is ill-conditioned (torch_parity_test.cpp: PyTorch's own float32 gradients are up to 3e-2
// from its float64 ones), so
//  * fp32: logits, loss and running statistics within 1e-4, every gradient within
//    max(1e-3, 4 x the CPU float32 run's own error) (whole-tensor relative error);
//  * tf32 and bf16: logits, loss, running statistics and the fc gradients (well conditioned),
//    with the design's tolerances widened for 50 layers of rounding (tf32 2e-2 / 5e-2, bf16 1e-1);
//    the worst error over all gradients is printed, not asserted: there no float format below
//    fp32 can be held to a bound by this network.
#include <cstdio>
#include <map>
#include <regex>

#include "engine/ops.h"
#include "engine/precision.h"
#include "engine/random.h"
#include "models/resnet3d.h"
#include "test_util.h"

namespace mc {
namespace {

using TensorMap = std::map<std::string, Tensor>;

std::unique_ptr<nn::Module> make_model(DType dt) {
  auto m = models::create("resnet50", 1, 3, 0);
  Generator g(5678);
  const std::regex last_bn(R"(layer\d+\.\d+\.bn3\.weight)");
  for (auto& [k, t] : m->state_dict()) {
    const bool bn = k.rfind("bn", 0) == 0 || k.find(".bn") != std::string::npos ||
                    k.find("downsample.1") != std::string::npos;
    if (!bn || k.find("num_batches_tracked") != std::string::npos) continue;
    const Shape s = t.shape();
    if (k.ends_with("running_var")) t.copy_(rand_uniform(s, g, 0.5, 1.5));
    else if (std::regex_match(k, last_bn)) t.copy_(rand_uniform(s, g, 0.1, 0.3));
    else if (k.ends_with("weight")) t.copy_(rand_uniform(s, g, 0.75, 1.25));
    else t.copy_(randn(s, g, DType::F32, 0, 0.1));
  }
  if (dt != DType::F32) m->to(dt);
  return m;
}

struct Step {
  Tensor logits, loss;
  TensorMap grads, buffers;
};

// Forward in train mode, loss, backward; results on the host in f64.
Step run(nn::Module& m, const Tensor& x, const Tensor& y) {
  m.train();
  Step s;
  const Tensor logits = m.forward(x);
  const Tensor loss = cross_entropy(logits, y);
  loss.backward();
  auto host = [](const Tensor& t) { return t.to(Device::cpu()).to(DType::F64); };
  s.logits = host(logits);
  s.loss = host(loss);
  for (auto& [k, p] : m.named_parameters()) s.grads[k] = host(p->grad());
  for (auto& [k, b] : m.named_buffers())
    if (b->dtype() != DType::I64) s.buffers[k] = host(*b);
  return s;
}

double worst(const TensorMap& got, const TensorMap& ref, std::string* name = nullptr) {
  double w = 0;
  for (auto& [k, t] : got) {
    const double e = test::rel_error(t, ref.at(k));
    if (e >= w && name) *name = k;
    w = std::max(w, e);
  }
  return w;
}

TEST(ResNetCuda, Resnet50TrainStepMatchesTheCpuPerPrecision) {
  MC_SKIP_WITHOUT_GPU();
  const Tensor x = test::randn({2, 1, 64, 64, 64}, 91);
  const Tensor y = Tensor::from<int64_t>({0, 2}, {2});

  auto m64 = make_model(DType::F64);
  const Step ref = run(*m64, x.to(DType::F64), y);
  auto m32 = make_model(DType::F32);
  const Step cpu32 = run(*m32, x, y);
  std::map<std::string, double> cpu_err;  // the CPU's own float32 error: the step's conditioning
  for (auto& [k, g] : cpu32.grads) cpu_err[k] = test::rel_error(g, ref.grads.at(k));

  for (Precision p : {Precision::FP32, Precision::TF32, Precision::BF16}) {
    const std::string at = precision_name(p);
    SCOPED_TRACE(at);
    PrecisionScope scope(p);
    auto m = make_model(DType::F32);
    m->flatten_parameters(Device::cuda());
    // The input in the layout mc_train gives it in this precision (compute_mode_for).
    const Tensor xg = to_layout(x.to(Device::cuda()), compute_mode_for(p, Device::cuda()).layout);
    const Step got = run(*m, xg, y.to(Device::cuda()));

    const double le = test::rel_error(got.logits, ref.logits);
    const double lo = test::rel_error(got.loss, ref.loss);
    std::string sname, gname;
    const double se = worst(got.buffers, ref.buffers, &sname);
    const double ge = worst(got.grads, ref.grads, &gname);
    const double fc = std::max(test::rel_error(got.grads.at("fc.weight"), ref.grads.at("fc.weight")),
                               test::rel_error(got.grads.at("fc.bias"), ref.grads.at("fc.bias")));
    std::printf("[resnet50 %s GPU vs CPU f64] logits %.1e | loss %.1e | running stats %.1e (%s) | "
                "fc grads %.1e | worst grad %.1e (%s)\n", at.c_str(), le, lo, se, sname.c_str(), fc,
                ge, gname.c_str());
    if (p == Precision::FP32) {
      EXPECT_LE(le, 1e-4);
      EXPECT_LE(lo, 1e-4);
      EXPECT_LE(se, 1e-4) << sname;
      for (auto& [k, g] : got.grads) {
        const double e = test::rel_error(g, ref.grads.at(k));
        EXPECT_LE(e, std::max(1e-3, 4 * cpu_err.at(k))) << k << " (CPU f32 vs f64: " << cpu_err.at(k) << ")";
      }
    } else {
      const bool tf32 = p == Precision::TF32;
      EXPECT_LE(le, tf32 ? 2e-2 : 1e-1);
      EXPECT_LE(lo, tf32 ? 2e-2 : 1e-1);
      EXPECT_LE(se, tf32 ? 2e-2 : 1e-1) << sname;
      EXPECT_LE(fc, tf32 ? 5e-2 : 1e-1);
    }
  }
}

}  // namespace
}  // namespace mc
