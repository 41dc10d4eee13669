// Screening metrics of a binary task against sklearn 1.2 (roc_auc_score, average_precision_score,
// precision_recall_curve; values computed with Debian's python3-sklearn), the operating points
// and the regression report's metrics.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "eval/regression.h"
#include "eval/report.h"
#include "eval/screening.h"
#include "test_util.h"

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

// A binary table of logits (normal, mass) from rows {label, logit_normal, logit_mass}.
PredictionTable binary_table(const std::string& source, const std::vector<std::array<double, 3>>& rows) {
  PredictionTable t;
  t.source = source;
  t.class_names = {"normal", "mass"};
  t.kind = ScoreKind::Logits;
  for (size_t i = 0; i < rows.size(); ++i) {
    t.ids.push_back("s" + std::to_string(i));
    t.labels.push_back(int64_t(rows[i][0]));
    t.scores.insert(t.scores.end(), {rows[i][1], rows[i][2]});
  }
  return t;
}

// p(class k) after the post-hoc adjustment, written out here: softmax(z - tau2 log(prior / sum)).
std::vector<double> adjusted_p(const PredictionTable& t, double tau2, const std::vector<double>& prior, int k) {
  const double n = prior[0] + prior[1];
  std::vector<double> p;
  for (int64_t i = 0; i < t.size(); ++i) {
    const double z0 = t.scores[size_t(2 * i)] - tau2 * std::log(prior[0] / n), z1 = t.scores[size_t(2 * i + 1)] - tau2 * std::log(prior[1] / n);
    const double p1 = 1 / (1 + std::exp(z0 - z1));
    p.push_back(k == 1 ? p1 : 1 - p1);
  }
  return p;
}

// mc_eval --predictions with --val-predictions: the threshold is chosen on the validation
// table (with the same tau2 and prior) and applied unchanged to the evaluated one.
TEST(SavedScreening, ValidationThresholdIsChosenOnValAndAppliedToTheTable) {
  const PredictionTable val = binary_table("val.csv", {{1, 0.2, 1.5}, {1, 0.1, 0.4}, {1, 0.3, 0.2}, {1, 0.0, 1.1},
                                                       {1, 0.5, 0.6}, {0, 0.9, 0.1}, {0, 0.2, 0.5}, {0, 1.0, -0.4}});
  const PredictionTable test = binary_table("test.csv", {{1, 0.0, 1.2}, {1, 0.6, 0.5}, {1, 0.1, 0.2}, {0, 0.4, 0.5},
                                                         {0, 1.2, 0.0}, {0, 0.3, 0.1}, {0, 0.9, 0.9}});
  EvalOptions o;
  o.tau2 = {0.5};
  o.prior = {30, 10};
  o.bootstrap.resamples = 0;
  const double thr = *threshold_for_sensitivity(val.labels, adjusted_p(val, 0.5, o.prior, 1), 1, 0.8);
  ScreeningOptions so = saved_screening_options(test, o, &val, "", 0.8);
  EXPECT_EQ(so.positive, 1);
  EXPECT_EQ(so.positive_name, "mass");  // the second class
  ASSERT_TRUE(so.validation_threshold);
  EXPECT_NEAR(*so.validation_threshold, thr, 1e-12);
  EXPECT_EQ(so.validation_source, "val.csv (n = 8)");
  // Unadjusted, the same validation rows give another threshold: tau2 reached the choice.
  EXPECT_NE(*threshold_for_sensitivity(val.labels, adjusted_p(val, 0, o.prior, 1), 1, 0.8), thr);

  const Report r = write_predictions_report(test, o, test::temp_dir() + "/report", so);
  ASSERT_TRUE(r.screening);
  ASSERT_EQ(r.screening->points.size(), 3u);
  const OperatingPoint& v = r.screening->points[2];
  EXPECT_EQ(v.key, "validation");
  EXPECT_NEAR(v.threshold, thr, 1e-12);
  const OperatingPoint want = operating_point(test.labels, adjusted_p(test, 0.5, o.prior, 1), 1, thr);
  EXPECT_EQ(std::vector<int64_t>({v.tp, v.fp, v.tn, v.fn}), std::vector<int64_t>({want.tp, want.fp, want.tn, want.fn}));
  std::ifstream f(r.markdown);
  std::stringstream md;
  md << f.rdbuf();
  EXPECT_NE(md.str().find("The positive class is mass: the second class of test.csv"), std::string::npos) << md.str();
  EXPECT_NE(md.str().find("chosen on val.csv (n = 8) for sensitivity >= 80%"), std::string::npos) << md.str();
  EXPECT_NE(format_screening(*r.screening).find("screening (mass positive: the second class of test.csv"), std::string::npos);

  // --positive normal: the threshold is on p(normal), chosen for normal's sensitivity.
  so = saved_screening_options(test, o, &val, "normal", 0.8);
  EXPECT_EQ(so.positive, 0);
  EXPECT_NEAR(*so.validation_threshold, *threshold_for_sensitivity(val.labels, adjusted_p(val, 0.5, o.prior, 0), 0, 0.8), 1e-12);
  EXPECT_EQ(saved_screening_options(test, o, &val, "0", 0.8).positive, 0);
}

TEST(SavedScreening, WithoutValidationTheReportSaysSoAndBadInputIsNamed) {
  const PredictionTable test = binary_table("test.csv", {{1, 0.0, 1.2}, {0, 1.2, 0.0}, {1, 0.1, 0.2}, {0, 0.3, 0.1}});
  EvalOptions o;
  o.bootstrap.resamples = 0;
  const ScreeningOptions so = saved_screening_options(test, o, nullptr, "", 0.9);
  EXPECT_FALSE(so.validation_threshold);
  const Report r = write_predictions_report(test, o, test::temp_dir() + "/report", so);
  ASSERT_TRUE(r.screening);
  EXPECT_EQ(r.screening->points.size(), 2u);  // default and Youden only
  const std::string text = format_screening(*r.screening);
  EXPECT_NE(text.find("no validation threshold was available: no validation predictions were given"), std::string::npos) << text;
  // The report without options says the same (the default of write_predictions_report).
  const Report d = write_predictions_report(test, o, test::temp_dir() + "/default");
  EXPECT_NE(format_screening(*d.screening).find("no validation threshold was available"), std::string::npos);

  PredictionTable other = binary_table("val.csv", {{1, 0.0, 1.2}, {0, 1.2, 0.0}});
  other.class_names = {"normal", "tumour"};
  test::expect_error([&] { saved_screening_options(test, o, &other, "", 0.9); },
                     {"val.csv: validation predictions of classes normal,tumour", "test.csv has normal,mass", "same task"});
  test::expect_error([&] { saved_screening_options(test, o, nullptr, "tumour", 0.9); },
                     {"--positive 'tumour' is not a class of test.csv (normal, mass"});
  PredictionTable three = test;
  three.class_names.push_back("cyst");
  test::expect_error([&] { saved_screening_options(three, o, nullptr, "", 0.9); }, {"test.csv", "binary table", "3 classes"});
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
