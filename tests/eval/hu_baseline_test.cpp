// The HU baselines on mc_prep's per-vertebra manifest columns: each rule on the ROI it names,
// inclusive and exclusive cut-offs exactly at their thresholds, calibrated vBMD and the ACR QCT
// categories, and subjects without a measurement left out of that rule only.
#include <gtest/gtest.h>

#include <cmath>

#include "eval/hu_baseline.h"
#include "io/prep.h"
#include "test_util.h"

namespace mc::eval {
namespace {

struct Subject {
  std::string id, split;
  int64_t label;
  double body_median, roi_mean;  // NaN: L1 not found
};

io::ManifestRow row_of(const Subject& s, const io::RoiOptions& o) {
  io::ManifestRow m;
  m.id = s.id, m.split = s.split, m.label = s.label, m.status = "ok";
  const double whole = std::isnan(s.body_median) ? 150 : s.body_median + 30;  // higher than the body
  m.stats = {2000, 54.0, whole + 10, whole};
  io::SpineHU hu;
  io::VertebraHU v;
  v.name = "L1", v.label = 31;
  v.found = !std::isnan(s.roi_mean);
  v.source = io::BodySource::Estimate;
  if (v.found) {
    v.body = {1200, 32.4, s.body_median + 10, s.body_median, 60};
    v.roi = {700, 18.9, s.roi_mean, s.roi_mean - 2, 45};
    v.bmd = o.calibration->slope * s.roi_mean + o.calibration->intercept;
    v.qct = io::qct_category(*v.bmd);
  } else {
    v.note = "label 31 (L1) is absent";
  }
  hu.vertebrae.push_back(v);
  m.hu = hu;
  return m;
}

const HuRule& rule(const HuBaseline& h, const std::string& key) {
  for (const auto& r : h.rules)
    if (r.key == key) return r;
  throw Error("no rule " + key);
}

TEST(HuBaseline, RulesOnTheVertebralBodyAndItsTrabecularRoi) {
  const std::string dir = test::temp_dir();
  io::HuOptions ho;
  ho.vertebrae = "L1";
  ho.calibration = {1.0, 0.0};  // BMD = ROI mean: the QCT edges fall on the HU values below
  const io::RoiOptions o = io::roi_options(ho, 31);
  const double nan = std::nan("");
  const std::vector<Subject> subjects = {
      // train: classes apart in both features
      {"a0", "train", 0, 60, 70}, {"a1", "train", 0, 70, 90}, {"a2", "train", 1, 110, 130},
      {"a3", "train", 1, 120, 140}, {"a4", "train", 2, 170, 190}, {"a5", "train", 2, 180, 210},
      // test: cut-offs exactly on the values
      {"t0", "test", 0, 80, 100},   // TS flags (80 < 90.25); both Pickhardt rules flag
      {"t1", "test", 0, 95, 110},   // TS misses; 110 <= 110 flags
      {"t2", "test", 1, 120, 160},  // 160 <= 160 flags; QCT normal (> 120)
      {"t3", "test", 2, 150, 120},  // QCT 120 is osteopenia (80-120 inclusive)
      {"t4", "test", 2, 200, 80},   // QCT 80 is osteopenia (< 80 is osteoporosis)
      {"t5", "test", 2, nan, nan},  // no L1: left out of every vertebral rule
      {"t6", "test", 0, 60, 79}};   // QCT osteoporosis
  std::vector<io::ManifestRow> rows;
  for (const auto& s : subjects) rows.push_back(row_of(s, o));
  io::write_manifest(dir + "/manifest.csv", rows, io::Task::who(), o);

  const HuBaseline h = hu_baseline(dir + "/manifest.csv", "test", {50, 0, 0.95});
  ASSERT_TRUE(h.available) << h.note;
  EXPECT_EQ(h.n_train, 6);
  EXPECT_EQ(h.n_eval, 7);
  std::vector<std::string> keys;
  for (const auto& r : h.rules) keys.push_back(r.key);
  EXPECT_EQ(keys, (std::vector<std::string>{"totalsegmentator_body_median_hu", "pickhardt_160_roi_mean_hu",
                                            "pickhardt_110_roi_mean_hu", "acr_qct_bmd", "fitted_L1_roi_mean_hu",
                                            "fitted_L1_body_median_hu", "fitted_median_hu"}));

  const HuRule& ts = rule(h, "totalsegmentator_body_median_hu");
  EXPECT_EQ(ts.feature, "L1_body_median_hu");
  EXPECT_EQ(ts.roi, "L1 body (estimate)");
  EXPECT_EQ(ts.metrics.num_samples, 6);  // t5 has no body
  EXPECT_NEAR(ts.metrics.sensitivity[0].value, 2.0 / 3, 1e-12);  // t0, t6 of t0, t1, t6
  EXPECT_EQ(ts.metrics.specificity[0].value, 1.0);
  ASSERT_TRUE(ts.ci);

  const HuRule& p160 = rule(h, "pickhardt_160_roi_mean_hu");
  EXPECT_EQ(p160.roi, "L1 trabecular ROI (body from estimate, eroded 3.00 mm)");
  EXPECT_EQ(p160.metrics.sensitivity[0].value, 1.0);
  EXPECT_EQ(p160.metrics.specificity[0].value, 0.0);  // t2 at 160 is flagged: <= is inclusive
  const HuRule& p110 = rule(h, "pickhardt_110_roi_mean_hu");
  EXPECT_EQ(p110.metrics.sensitivity[0].value, 1.0);  // t1 at 110 is flagged
  EXPECT_NEAR(p110.metrics.specificity[0].value, 2.0 / 3, 1e-12);  // t4 (80) is flagged
  EXPECT_TRUE(p110.binary);

  const HuRule& qct = rule(h, "acr_qct_bmd");
  EXPECT_EQ(qct.feature, "L1_bmd");  // no L2 measured: L1 alone
  EXPECT_FALSE(qct.binary);
  // predicted: t0 100 -> 1, t1 110 -> 1, t2 160 -> 2, t3 120 -> 1, t4 80 -> 1, t6 79 -> 0
  EXPECT_EQ(qct.metrics.confusion, (std::vector<int64_t>{1, 2, 0, 0, 0, 1, 0, 2, 0}));
  EXPECT_EQ(threshold_class(120, qct.thresholds, qct.at_or_below), 1);
  EXPECT_EQ(threshold_class(120.001, qct.thresholds, qct.at_or_below), 2);
  EXPECT_EQ(threshold_class(80, qct.thresholds, qct.at_or_below), 1);
  EXPECT_EQ(threshold_class(79.999, qct.thresholds, qct.at_or_below), 0);
  EXPECT_EQ(int64_t(io::qct_category(120)), threshold_class(120, qct.thresholds, qct.at_or_below));

  // Fitted on train only: midway between the train classes (roi 90 | 130, 140 | 190).
  const HuRule& fit = rule(h, "fitted_L1_roi_mean_hu");
  EXPECT_EQ(fit.thresholds, (std::vector<double>{110, 165}));
  EXPECT_EQ(fit.n_train, 6);
  EXPECT_EQ(rule(h, "fitted_L1_body_median_hu").thresholds, (std::vector<double>{90, 145}));
  EXPECT_NE(rule(h, "fitted_median_hu").roi.find("whole L1 mask"), std::string::npos);
  EXPECT_EQ(rule(h, "fitted_median_hu").metrics.num_samples, 7);  // the whole mask of t5 was measured
}

// Binary tasks: one threshold (osteoporosis vs other from T <= -2.5) keeps the fixed screening
// cut-offs and fits one threshold per feature; a class-column task (normal, mass) has only the
// fitted rules. No QCT categories: they are the three WHO bands.
TEST(HuBaseline, BinaryTasksFitOneThreshold) {
  io::HuOptions ho;
  ho.vertebrae = "L1";
  ho.calibration = {1.0, 0.0};
  const io::RoiOptions o = io::roi_options(ho, 31);
  const std::vector<Subject> subjects = {
      {"a0", "train", 0, 60, 70},  {"a1", "train", 0, 70, 90},  {"a2", "train", 1, 110, 130},
      {"a3", "train", 1, 120, 140}, {"a4", "train", 1, 170, 190}, {"a5", "train", 1, 180, 210},
      {"t0", "test", 0, 80, 100},  {"t1", "test", 0, 95, 115},  {"t2", "test", 1, 120, 160},
      {"t3", "test", 1, 150, 120}, {"t4", "test", 1, 200, 105}};
  std::vector<io::ManifestRow> rows;
  for (const auto& s : subjects) rows.push_back(row_of(s, o));
  io::Task screening;
  screening.classes = {"osteoporosis", "other"};
  screening.thresholds = {-2.5};
  io::Task column;
  column.classes = {"normal", "mass"};
  column.thresholds = {};
  for (const io::Task& task : {screening, column}) {
    SCOPED_TRACE(task.names_csv());
    const std::string dir = test::temp_dir();
    io::write_manifest(dir + "/manifest.csv", rows, task, o);
    const HuBaseline h = hu_baseline(dir + "/manifest.csv", "test", {20, 0, 0.95}, task);
    ASSERT_TRUE(h.available) << h.note;
    std::vector<std::string> keys;
    for (const auto& r : h.rules) keys.push_back(r.key);
    const std::vector<std::string> fitted = {"fitted_L1_roi_mean_hu", "fitted_L1_body_median_hu", "fitted_median_hu"};
    std::vector<std::string> want = task.from_tscores() ? std::vector<std::string>{"totalsegmentator_body_median_hu",
                                                                                  "pickhardt_160_roi_mean_hu", "pickhardt_110_roi_mean_hu"}
                                                        : std::vector<std::string>{};
    want.insert(want.end(), fitted.begin(), fitted.end());
    EXPECT_EQ(keys, want);
    for (const auto& r : h.rules) {
      EXPECT_EQ(r.metrics.confusion.size(), 4u) << r.key;  // 2 x 2
      EXPECT_TRUE(r.ci) << r.key;
    }
    const HuRule& fit = rule(h, "fitted_L1_roi_mean_hu");
    EXPECT_EQ(fit.thresholds, (std::vector<double>{110}));  // midway 90 | 130
    EXPECT_EQ(fit.name, "L1 trabecular mean HU < 110 " + task.classes[0] + ", else " + task.classes[1] + " (fitted on train)");
    // test: t0 100 and t4 105 fall below 110, t1 115 does not: 1 of 2 positives, 2 of 3 negatives.
    EXPECT_NEAR(fit.metrics.sensitivity[0].value, 0.5, 1e-12);
    EXPECT_NEAR(fit.metrics.specificity[0].value, 2.0 / 3, 1e-12);
  }
}

TEST(HuBaseline, ThresholdClassIsStrictUnlessAskedOtherwise) {
  EXPECT_EQ(threshold_class(90.25, {90.25}), 1);
  EXPECT_EQ(threshold_class(90.2, {90.25}), 0);
  EXPECT_EQ(threshold_class(160, {160}, {true}), 0);
  EXPECT_EQ(threshold_class(160.01, {160}, {true}), 1);
  EXPECT_EQ(threshold_class(5, {1, 3}), 2);
}

}  // namespace
}  // namespace mc::eval
