// Post-hoc logit adjustment: one prior whatever its form, and bad priors are errors (the tau2
// sweep over it is tested in tests/eval/sweep_test.cpp).
#include <gtest/gtest.h>

#include <cmath>

#include "losses/posthoc.h"
#include "test_util.h"

namespace mc::losses {
namespace {

TEST(LossPosthoc, FrequenciesAndCountsAreTheSamePrior) {
  Tensor x = test::randn({50, 3}, 1, DType::F64);
  const auto a = posthoc_probabilities(x, {20, 110, 181}, 0.6).to_vector<double>();
  const auto b = posthoc_probabilities(x, normalize_prior({20, 110, 181}), 0.6).to_vector<double>();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-15);
  // tau2 = 0 is plain softmax, prior or not
  const auto c = posthoc_probabilities(x, {}, 0).to_vector<double>();
  const auto d = posthoc_probabilities(x, {1, 2, 3}, 0).to_vector<double>();
  EXPECT_EQ(c, d);
}

TEST(LossPosthoc, BadPriorsAreErrors) {
  Tensor x = test::randn({4, 3}, 2);
  EXPECT_THROW(posthoc_probabilities(x, {}, 0.5), Error);
  EXPECT_THROW(posthoc_probabilities(x, {1, 0, 2}, 0.5), Error);
  EXPECT_THROW(posthoc_probabilities(x, {1, 2}, 0.5), Error);
  EXPECT_THROW(normalize_prior({1}), Error);
}

}  // namespace
}  // namespace mc::losses
