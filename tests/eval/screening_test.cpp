// Screening metrics of a binary task against sklearn 1.2 (roc_auc_score, average_precision_score,
// precision_recall_curve; values computed with Debian's python3-sklearn), the operating points
// and the regression report's metrics.
#include <gtest/gtest.h>

#include <cmath>

#include "eval/regression.h"
#include "eval/screening.h"

namespace mc::eval {
namespace {

const std::vector<int64_t> kY = {0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 1, 0};
const std::vector<double> kP = {0.1, 0.8, 0.6, 0.6, 0.9, 0.3, 0.2, 0.4, 0.75, 0.5, 0.6, 0.05};

TEST(Screening, AucAndAveragePrecisionEqualSklearn) {
  ScreeningOptions o;
  o.positive = 1;
  o.bootstrap.resamples = 0;
  o.validation_threshold = 0.4;
  const ScreeningReport r = screening_report(kY, kP, o);
  EXPECT_NEAR(r.auc.value, 0.9166666666666667, 1e-12);
  EXPECT_NEAR(r.average_precision.value, 0.9027777777777778, 1e-12);
  // Class 0 positive, scored by 1 - p: sklearn roc_auc_score(1 - y, -p), average_precision_score.
  std::vector<double> q;
  for (double v : kP) q.push_back(1 - v);
  std::vector<int64_t> y0 = kY;
  EXPECT_NEAR(average_precision(y0, q, 0).value, 0.9166666666666666, 1e-12);
  // precision_recall_curve, reversed, down to full recall.
  const PrCurve c = pr_curve(kY, kP, 1);
  const std::vector<double> th = {0.9, 0.8, 0.75, 0.6, 0.5, 0.4};
  const std::vector<double> prec = {1, 1, 1, 0.8333333333333334, 0.7142857142857143, 0.75};
  const std::vector<double> rec = {1.0 / 6, 2.0 / 6, 0.5, 0.8333333333333334, 0.8333333333333334, 1};
  ASSERT_EQ(c.thresholds.size(), th.size());
  for (size_t i = 0; i < th.size(); ++i) {
    EXPECT_DOUBLE_EQ(c.thresholds[i], th[i]);
    EXPECT_NEAR(c.precision[i], prec[i], 1e-12);
    EXPECT_NEAR(c.recall[i], rec[i], 1e-12);
  }
}

TEST(Screening, OperatingPoints) {
  EXPECT_EQ(*threshold_for_sensitivity(kY, kP, 1, 0.9), 0.4);   // 6 of 6 positives needed
  EXPECT_EQ(*threshold_for_sensitivity(kY, kP, 1, 0.8), 0.6);   // 5 of 6 (0.833 >= 0.8)
  EXPECT_EQ(*youden_threshold(kY, kP, 1), 0.6);                 // J = 4/6, the highest of the ties
  const OperatingPoint p = operating_point(kY, kP, 1, 0.6);
  EXPECT_EQ(p.tp, 5);
  EXPECT_EQ(p.fp, 1);
  EXPECT_EQ(p.tn, 5);
  EXPECT_EQ(p.fn, 1);
  EXPECT_DOUBLE_EQ(p.sensitivity.value, 5.0 / 6);
  EXPECT_DOUBLE_EQ(p.specificity.value, 5.0 / 6);
  EXPECT_DOUBLE_EQ(p.ppv.value, 5.0 / 6);
  EXPECT_DOUBLE_EQ(p.npv.value, 5.0 / 6);
  const OperatingPoint none = operating_point(kY, kP, 1, 2.0);  // nobody called positive
  EXPECT_FALSE(none.ppv.defined);
  EXPECT_DOUBLE_EQ(none.npv.value, 0.5);
  EXPECT_FALSE(threshold_for_sensitivity({0, 0}, {0.1, 0.2}, 1, 0.9));

  ScreeningOptions o;
  o.positive_name = "mass";
  o.validation_threshold = 0.4;
  o.validation_source = "the val split";
  o.bootstrap.resamples = 200;
  const ScreeningReport r = screening_report(kY, kP, o);
  ASSERT_EQ(r.points.size(), 3u);
  EXPECT_EQ(r.points[0].key, "default");
  EXPECT_EQ(r.points[1].key, "youden");
  EXPECT_EQ(r.points[2].key, "validation");
  EXPECT_DOUBLE_EQ(r.points[2].sensitivity.value, 1.0);
  EXPECT_TRUE(r.auc_ci.defined);
  EXPECT_LE(r.auc_ci.lo, r.auc.value);
  EXPECT_GE(r.auc_ci.hi, r.auc.value);
  EXPECT_TRUE(r.points[2].specificity_ci.defined);
  // Without a validation threshold the report says why.
  o.validation_threshold.reset();
  o.validation_note = "no validation cache";
  const ScreeningReport n = screening_report(kY, kP, o);
  EXPECT_EQ(n.points.size(), 2u);
  ASSERT_FALSE(n.notes.empty());
  EXPECT_NE(n.notes.back().find("no validation cache"), std::string::npos);
}

// Against sklearn: mean_absolute_error, mean_squared_error ** 0.5, pearsonr, r2_score.
TEST(Regression, MetricsEqualSklearn) {
  const std::vector<double> t = {-3.0, -2.0, -1.5, 0.0, 1.0, -0.5};
  const std::vector<double> p = {-2.5, -2.2, -1.0, -0.4, 0.7, -0.5};
  const RegressionReport r = regression_report(t, p, {100, 0, 0.95});
  EXPECT_NEAR(r.mae.value, (0.5 + 0.2 + 0.5 + 0.4 + 0.3 + 0) / 6, 1e-12);
  EXPECT_NEAR(r.rmse.value, std::sqrt((0.25 + 0.04 + 0.25 + 0.16 + 0.09) / 6), 1e-12);
  double mt = 0, mp = 0;
  for (size_t i = 0; i < t.size(); ++i) mt += t[i] / 6, mp += p[i] / 6;
  double stt = 0, spp = 0, stp = 0;
  for (size_t i = 0; i < t.size(); ++i) stt += (t[i] - mt) * (t[i] - mt), spp += (p[i] - mp) * (p[i] - mp), stp += (t[i] - mt) * (p[i] - mp);
  EXPECT_NEAR(r.pearson.value, stp / std::sqrt(stt * spp), 1e-12);
  EXPECT_NEAR(r.r2.value, 0.9247619047619048, 1e-12);  // sklearn r2_score
  EXPECT_NEAR(r.bias, (0.5 - 0.2 + 0.5 - 0.4 - 0.3 + 0) / 6, 1e-12);
  EXPECT_TRUE(r.mae_ci.defined && r.mae_ci.lo <= r.mae.value && r.mae.value <= r.mae_ci.hi);
  EXPECT_FALSE(regression_report({1, 1}, {0, 2}, {0, 0, 0.95}).pearson.defined);  // no variance in truth
}

}  // namespace
}  // namespace mc::eval
