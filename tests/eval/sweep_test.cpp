// The tau2 sweep against numpy + sklearn (fixture "posthoc").
#include <gtest/gtest.h>

#include <cmath>

#include "eval/sweep.h"
#include "losses/fixtures.h"
#include "test_util.h"

namespace mc::eval {
namespace {

std::vector<double> as_double(const std::vector<int64_t>& v) { return {v.begin(), v.end()}; }

void expect_row(const ClassificationMetrics& m, const test::Fixture& f, const std::string& p) {
  EXPECT_EQ(m.confusion, f.ints(p + "confusion"));
  for (const auto& [name, v] : m.named()) {
    const auto br = name.find('[');
    const std::string key = p + name.substr(0, br);
    if (!f.has(key)) continue;
    const double ref = br == std::string::npos ? f.scalar(key)
                                               : f[key][size_t(std::stoi(name.substr(br + 1)))];
    EXPECT_NEAR(v.value, ref, 1e-9) << p << name;
  }
}

TEST(EvalSweep, SweepMatchesSklearn) {
  const auto f = test::load_fixture("posthoc");
  const int64_t N = f.integer("N"), K = f.integer("K");
  Tensor y = Tensor::from(f.ints("labels"), {N});
  Tensor logits = Tensor::from(f["logits"], {N, K});
  const auto rows = tau2_sweep(y, logits, as_double(f.ints("counts")), f["taus"], {0, 0, 0.95});
  ASSERT_EQ(rows.size(), f["taus"].size());
  for (size_t j = 0; j < rows.size(); ++j) {
    EXPECT_EQ(rows[j].tau2, f["taus"][j]);
    EXPECT_FALSE(rows[j].ci.has_value());
    expect_row(rows[j].metrics, f, "t" + std::to_string(j) + "_");
  }
  // The adjustment moves predictions toward the rare class 0: its sensitivity rises with tau2.
  EXPECT_GT(rows[0].metrics.sensitivity[0].value, rows[2].metrics.sensitivity[0].value);
}

// A binary task (fixture "posthoc_binary"): the same sweep with two classes.
TEST(EvalSweep, BinarySweepMatchesSklearn) {
  const auto f = test::load_fixture("posthoc_binary");
  const int64_t N = f.integer("N"), K = f.integer("K");
  ASSERT_EQ(K, 2);
  Tensor y = Tensor::from(f.ints("labels"), {N});
  Tensor logits = Tensor::from(f["logits"], {N, K});
  const auto rows = tau2_sweep(y, logits, as_double(f.ints("counts")), f["taus"], {0, 0, 0.95});
  ASSERT_EQ(rows.size(), f["taus"].size());
  for (size_t j = 0; j < rows.size(); ++j) {
    SCOPED_TRACE(j);
    EXPECT_EQ(rows[j].tau2, f["taus"][j]);
    expect_row(rows[j].metrics, f, "t" + std::to_string(j) + "_");
  }
  // The rare class 0 gains sensitivity as tau2 grows.
  EXPECT_GT(rows[0].metrics.sensitivity[0].value, rows[2].metrics.sensitivity[0].value);
}

TEST(EvalSweep, PaperGridAndIntervals) {
  const auto g = paper_tau2_grid();
  ASSERT_EQ(g.size(), 10u);
  EXPECT_EQ(g.front(), 1.0);
  EXPECT_NEAR(g.back(), 0.1, 1e-15);
  const auto f = test::load_fixture("posthoc");
  const int64_t N = f.integer("N");
  Tensor y = Tensor::from(f.ints("labels"), {N}), x = Tensor::from(f["logits"], {N, 3});
  const auto rows = tau2_sweep(y, x, as_double(f.ints("counts")), {1.0, 0.5}, {100, 3, 0.9});
  for (const auto& r : rows) {
    ASSERT_TRUE(r.ci.has_value());
    EXPECT_EQ(r.ci->at("accuracy").defined_in, 100);
  }
}

}  // namespace
}  // namespace mc::eval
