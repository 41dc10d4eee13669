// The long-tail loss family against PyTorch 1.13 (fixtures from make_loss_metric_fixtures.py),
// a float64 finite-difference gradient check, and the rules for bad class counts.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "engine/ops.h"
#include "engine/random.h"
#include "losses/fixtures.h"
#include "losses/losses.h"
#include "test_util.h"

namespace mc::losses {
namespace {

const char* kLossFixtures[] = {
    "loss_ce_c3", "loss_logit_adjusted_c3", "loss_weighted_c3", "loss_balanced_softmax_c3",
    "loss_class_balanced_c3", "loss_weighted_adjust_c3", "loss_class_balanced_adjust_c3",
    "loss_logit_adjusted_c7",
    // binary tasks: every loss with two classes
    "loss_ce_c2", "loss_logit_adjusted_c2", "loss_weighted_c2", "loss_balanced_softmax_c2",
    "loss_class_balanced_c2", "loss_weighted_adjust_c2", "loss_class_balanced_adjust_c2"};

LossSpec spec_of(const test::Fixture& f) {
  LossSpec s;
  s.type = parse_loss_type(f.text.at("type"));
  s.tau1 = f.scalar("tau1");
  s.beta = f.scalar("beta");
  s.adjust = f.integer("adjust") != 0;
  return s;
}

// Whole-tensor relative error (DESIGN.md's rule): max |a - ref| / max |ref|.
double max_rel(const std::vector<double>& a, const std::vector<double>& ref) {
  EXPECT_EQ(a.size(), ref.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size() && i < ref.size(); ++i) {
    num = std::max(num, std::abs(a[i] - ref[i]));
    den = std::max(den, std::abs(ref[i]));
  }
  return num / den;
}

TEST(LossTerms, MatchDefinitions) {
  for (const char* name : kLossFixtures) {
    SCOPED_TRACE(name);
    const auto f = test::load_fixture(std::string(name) + "_f64");
    const ClassTerms t = class_terms(spec_of(f), f.ints("counts"));
    const size_t C = size_t(f.integer("C"));
    std::vector<double> offset = t.offset.empty() ? std::vector<double>(C, 0.0) : t.offset;
    std::vector<double> weight = t.weight.empty() ? std::vector<double>(C, 1.0) : t.weight;
    for (size_t c = 0; c < C; ++c) {
      EXPECT_NEAR(offset[c], f["offset"][c], 1e-12 * std::max(1.0, std::abs(f["offset"][c])));
      EXPECT_NEAR(weight[c], f["weight"][c], 1e-12 * f["weight"][c]);
    }
  }
}

// loss and d(loss)/d(logits) against F.cross_entropy(logits + offset, y, weight=w).
void check_against_torch(const std::string& name, DType dt, double loss_tol, double grad_tol) {
  const auto f = test::load_fixture(name);
  const int64_t N = f.integer("N"), C = f.integer("C");
  Loss loss(spec_of(f), f.ints("counts"));
  Tensor labels = Tensor::from(f.ints("labels"), {N});
  Tensor logits = Tensor::from(f["logits"], {N, C}).to(dt);
  logits.set_requires_grad(true);
  Tensor l = loss(logits, labels);
  const double ref = f.scalar("loss");
  EXPECT_LE(std::abs(l.item() - ref), loss_tol * std::abs(ref)) << l.item() << " vs " << ref;
  l.backward();
  EXPECT_LE(max_rel(logits.grad().to_vector<double>(), f["grad"]), grad_tol);
  NoGradGuard no_grad;
  const double sum = loss(logits.detach(), labels, /*mean=*/false).item();
  EXPECT_LE(std::abs(sum - f.scalar("loss_sum")), loss_tol * std::abs(f.scalar("loss_sum")));
}

TEST(LossTorch, Float64) {
  for (const char* name : kLossFixtures) {
    SCOPED_TRACE(name);
    check_against_torch(std::string(name) + "_f64", DType::F64, 1e-12, 1e-12);
  }
}

// f32: PyTorch rounds logits + offset to float before the softmax, our kernel adds in double;
// both then differ by a few float ulps per element.
TEST(LossTorch, Float32) {
  for (const char* name : kLossFixtures) {
    SCOPED_TRACE(name);
    check_against_torch(std::string(name) + "_f32", DType::F32, 1e-6, 1e-6);
  }
}

// Central differences (eps 1e-6) of the fused loss in float64 with offsets and weights, for
// both reductions. The quotient is exact up to truncation (eps^2 * third derivative / 6, ~1e-12)
// and the rounding of the two loss values (2^-52 |loss| / eps): the bound below, with margin 4.
TEST(LossGradCheck, Float64WithOffsetAndWeight) {
  const int64_t N = 6, C = 4;
  Tensor x = test::randn({N, C}, 3, DType::F64, 2.0);
  Tensor offset = test::uniform({C}, 4, -2.0, 1.0, DType::F64);
  Tensor weight = test::uniform({C}, 5, 0.2, 3.0, DType::F64);
  Tensor labels = Tensor::from(std::vector<int64_t>{0, 3, 1, 1, 2, 3}, {N});
  for (bool mean : {true, false}) {
    SCOPED_TRACE(mean ? "mean" : "sum");
    Tensor xg = x.clone().set_requires_grad(true);
    cross_entropy(xg, labels, weight, offset, mean).backward();
    const auto analytic = xg.grad().to_vector<double>();
    NoGradGuard no_grad;
    const double eps = 1e-6;
    const double l0 = cross_entropy(x, labels, weight, offset, mean).item();
    const double tol = 4 * (1e-11 + 0x1p-52 * std::abs(l0) / eps);
    for (int64_t e = 0; e < N * C; ++e) {
      Tensor xp = x.clone(), xm = x.clone();
      xp.data<double>()[e] += eps;
      xm.data<double>()[e] -= eps;
      const double num = (cross_entropy(xp, labels, weight, offset, mean).item() -
                          cross_entropy(xm, labels, weight, offset, mean).item()) / (2 * eps);
      EXPECT_NEAR(analytic[size_t(e)], num, tol) << "element " << e;
    }
  }
}

TEST(LossSpecs, ZeroCountNamesTheClass) {
  for (auto type : {LossType::LogitAdjusted, LossType::Weighted, LossType::BalancedSoftmax,
                    LossType::ClassBalanced}) {
    SCOPED_TRACE(loss_type_name(type));
    try {
      Loss({type}, {20, 0, 181});
      FAIL() << "accepted a class with no training samples";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("class 1 has no training samples"), std::string::npos)
          << e.what();
    }
  }
  EXPECT_NO_THROW(Loss({LossType::CE}, {20, 0, 181}));  // plain CE ignores the counts
}

TEST(LossSpecs, RejectsBadSettings) {
  EXPECT_THROW(parse_loss_type("focal"), Error);
  EXPECT_EQ(parse_loss_type("balanced_softmax"), LossType::BalancedSoftmax);
  LossSpec cb{LossType::ClassBalanced};
  cb.beta = 1.0;
  EXPECT_THROW(Loss(cb, {1, 2}), Error);
  LossSpec la{LossType::LogitAdjusted};
  la.adjust = true;
  EXPECT_THROW(Loss(la, {1, 2}), Error);
  EXPECT_THROW(Loss({LossType::Weighted}, {5}), Error);
  Loss three({LossType::Weighted}, {1, 2, 3});
  EXPECT_THROW(three(Tensor::zeros({2, 4}), Tensor::from(std::vector<int64_t>{0, 1}, {2})), Error);
}

// Softmax is shift invariant, so Balanced Softmax (log n_c) is logit adjustment with tau1 = 1
// (log n_c / N), and the weighted mean cancels any common factor of the weights.
TEST(LossSpecs, EquivalentForms) {
  const std::vector<int64_t> counts{20, 110, 181};
  Tensor x = test::randn({32, 3}, 9, DType::F64);
  std::vector<int64_t> y(32);
  for (size_t i = 0; i < y.size(); ++i) y[i] = int64_t(i % 3);
  Tensor labels = Tensor::from(y, {32});
  LossSpec la{LossType::LogitAdjusted};
  la.tau1 = 1.0;
  EXPECT_NEAR(Loss({LossType::BalancedSoftmax}, counts)(x, labels).item(),
              Loss(la, counts)(x, labels).item(), 1e-13);
  Tensor inv = Tensor::from(std::vector<double>{1.0 / 20, 1.0 / 110, 1.0 / 181}, {3});
  EXPECT_NEAR(Loss({LossType::Weighted}, counts)(x, labels).item(),
              cross_entropy(x, labels, inv).item(), 1e-13);
}

TEST(LossSpecs, ClassCounts) {
  EXPECT_EQ(class_counts({2, 0, 2, 2, 1}, 4), (std::vector<int64_t>{1, 1, 3, 0}));
  EXPECT_THROW(class_counts({0, 3}, 3), Error);
}

TEST(LossSpecs, TensorsAreMadeOncePerDevice) {
  Loss l({LossType::LogitAdjusted}, {20, 110, 181});
  auto a = l.offset_weight(DType::F32, Device::cpu());
  auto b = l.offset_weight(DType::F32, Device::cpu());
  EXPECT_TRUE(a.first.shares_storage(b.first));
  EXPECT_FALSE(a.second.defined());
  EXPECT_EQ(l.offset_weight(DType::F64, Device::cpu()).first.dtype(), DType::F64);
}

// PyTorch: F.huber_loss(pred, target, delta=1.0) = 1.375 and F.mse_loss = 13.25 / 3 here, and
// the gradient of the mean Huber is clamp(pred - target, -delta, delta) / N.
TEST(RegressionLoss, HuberAndMseValuesAndGradient) {
  Tensor pred = Tensor::from(std::vector<double>{0, 2, -3}, {3, 1});
  const Tensor target = Tensor::from(std::vector<double>{0.5, 0, 0}, {3});
  LossSpec s;
  s.huber_delta = 1.0;
  pred.set_requires_grad(true);
  Tensor l = regression_loss(s, pred, target);
  EXPECT_NEAR(l.item(), 1.375, 1e-15);
  l.backward();
  const std::vector<double> g = pred.grad().to_vector<double>();
  EXPECT_NEAR(g[0], -0.5 / 3, 1e-15);
  EXPECT_NEAR(g[1], 1.0 / 3, 1e-15);
  EXPECT_NEAR(g[2], -1.0 / 3, 1e-15);
  s.regression = RegressionLoss::MSE;
  EXPECT_NEAR(regression_loss(s, pred.detach(), target).item(), 13.25 / 3, 1e-14);
  EXPECT_THROW(regression_loss(s, pred.detach(), Tensor::from(std::vector<double>{1, 2}, {2})), Error);
}

}  // namespace
}  // namespace mc::losses
