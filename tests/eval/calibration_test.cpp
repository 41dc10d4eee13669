// Calibration measures against hand-computed values, temperature scaling (T = 1 is the identity,
// the fit lowers NLL and is the optimum), the bootstrap interval on the engine's resamples, and
// the report's calibration section.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "eval/calibration.h"
#include "eval/report.h"
#include "losses/posthoc.h"
#include "test_util.h"

namespace mc::eval {
namespace {
namespace fs = std::filesystem;

// 4 rows, 2 classes, 5 bins (0,.2] (.2,.4] (.4,.6] (.6,.8] (.8,1]; no confidence on a bin edge.
//   row 0: (0.90, 0.10) label 0 -> conf .90 correct, bin 4
//   row 1: (0.75, 0.25) label 1 -> conf .75 wrong,   bin 3
//   row 2: (0.35, 0.65) label 1 -> conf .65 correct, bin 3
//   row 3: (0.55, 0.45) label 1 -> conf .55 wrong,   bin 2
// ECE = 1/4 |1 - .9| + 2/4 |.5 - .7| + 1/4 |0 - .55| = .025 + .1 + .1375 = .2625
// Brier = (.02 + 1.125 + .245 + .605) / 4 = .49875
const std::vector<double> kProbs = {0.90, 0.10, 0.75, 0.25, 0.35, 0.65, 0.55, 0.45};
const std::vector<int64_t> kLabels = {0, 1, 1, 1};

TEST(Calibration, EceAndBrierEqualHandComputedValues) {
  EXPECT_NEAR(expected_calibration_error(kProbs, kLabels, 2, 5), 0.2625, 1e-12);
  EXPECT_NEAR(brier_score(kProbs, kLabels, 2), 0.49875, 1e-12);
  EXPECT_NEAR(mean_nll(kProbs, kLabels, 2),
              -(std::log(0.9) + std::log(0.25) + std::log(0.65) + std::log(0.45)) / 4, 1e-12);
  const ReliabilityCurve c = top_label_reliability(kProbs, kLabels, 2, 5);
  ASSERT_EQ(c.bins.size(), 5u);
  EXPECT_EQ(c.bins[0].count + c.bins[1].count, 0);
  EXPECT_TRUE(std::isnan(c.bins[0].confidence));
  EXPECT_EQ(c.bins[3].count, 2);
  EXPECT_NEAR(c.bins[3].confidence, 0.7, 1e-12);
  EXPECT_NEAR(c.bins[3].frequency, 0.5, 1e-12);
  // Class 1 vs rest: p_1 = .10 .25 .65 .45 against 0 1 1 1:
  // bin 0 {.10: 0}, bin 1 {.25: 1}, bin 2 {.45: 1}, bin 3 {.65: 1} -> (.1 + .75 + .55 + .35) / 4
  EXPECT_NEAR(class_reliability(kProbs, kLabels, 2, 1, 5, "b").ece, (0.1 + 0.75 + 0.55 + 0.35) / 4, 1e-12);
}

TEST(Calibration, BinsAreHalfOpenOnTheLeft) {
  // 0.5 with 2 bins belongs to (0, .5]; 1.0 to the last bin.
  const ReliabilityCurve c = class_reliability({0.5, 0.5, 1.0, 0.0}, {0, 1}, 2, 0, 2, "a");
  EXPECT_EQ(c.bins[0].count, 1);
  EXPECT_EQ(c.bins[1].count, 1);
}

TEST(Calibration, BadInputIsAnError) {
  test::expect_error([] { expected_calibration_error({0.5, 0.5}, {2}, 2, 5); }, {"label 2", "0..1"});
  test::expect_error([] { brier_score({0.5, 0.5, 0.1}, {0}, 2); }, {"3 scores", "1 rows"});
  test::expect_error([] { softmax_rows({1, 2}, 2, 0.0); }, {"temperature"});
}

// Logits of a model that is right 70% of the time but says 99%: overconfident, wants T > 1.
void overconfident(int64_t N, int64_t K, double scale, std::vector<double>& logits, std::vector<int64_t>& labels) {
  std::mt19937_64 g(7);
  std::uniform_int_distribution<int64_t> cls(0, K - 1);
  std::uniform_real_distribution<double> u(0, 1);
  logits.assign(size_t(N * K), 0.0);
  labels.resize(size_t(N));
  for (int64_t i = 0; i < N; ++i) {
    labels[size_t(i)] = cls(g);
    const int64_t said = u(g) < 0.7 ? labels[size_t(i)] : cls(g);
    for (int64_t k = 0; k < K; ++k) logits[size_t(i * K + k)] = (k == said ? scale : 0.0) + 0.3 * u(g);
  }
}

TEST(Calibration, TemperatureOneLeavesProbabilitiesUnchanged) {
  std::vector<double> logits;
  std::vector<int64_t> labels;
  overconfident(50, 3, 4.0, logits, labels);
  const std::vector<double> prior = {20, 110, 181};
  for (double tau2 : {0.0, 0.5}) {
    const std::vector<double> p = calibrated_probabilities(logits, 3, prior, tau2, 1.0);
    const Tensor ref = losses::posthoc_probabilities(Tensor::from(logits, {50, 3}), prior, tau2);
    const auto r = ref.to_vector<double>();
    ASSERT_EQ(p.size(), r.size());
    for (size_t i = 0; i < p.size(); ++i) EXPECT_NEAR(p[i], r[i], 1e-15) << "tau2 " << tau2 << " at " << i;
  }
}

TEST(Calibration, FittedTemperatureLowersNllAndIsTheOptimum) {
  for (double scale : {6.0, 0.4}) {  // overconfident (T > 1), then underconfident (T < 1)
    std::vector<double> logits;
    std::vector<int64_t> labels;
    overconfident(400, 3, scale, logits, labels);
    const TemperatureFit f = fit_temperature(logits, labels, 3);
    EXPECT_FALSE(f.at_bound);
    EXPECT_LT(f.nll_after, f.nll_before - 1e-3) << "scale " << scale;
    EXPECT_NEAR(f.nll_before, mean_nll(softmax_rows(logits, 3), labels, 3), 1e-12);
    EXPECT_NEAR(f.nll_after, mean_nll(softmax_rows(logits, 3, f.temperature), labels, 3), 1e-12);
    if (scale > 1) EXPECT_GT(f.temperature, 1.5);
    else EXPECT_LT(f.temperature, 1.0);
    for (double m : {0.97, 1.03})  // a local minimum of a convex function is the global one
      EXPECT_GT(mean_nll(softmax_rows(logits, 3, f.temperature * m), labels, 3), f.nll_after);
    // It also lowers ECE on this data, which is what it is for.
    EXPECT_LT(expected_calibration_error(softmax_rows(logits, 3, f.temperature), labels, 3, 10),
              expected_calibration_error(softmax_rows(logits, 3), labels, 3, 10));
  }
}

TEST(Calibration, SeparableDataStopsAtTheBound) {
  const TemperatureFit f = fit_temperature({5, 0, 0, 5}, {0, 1}, 2);
  EXPECT_TRUE(f.at_bound);
  EXPECT_NEAR(f.temperature, kMinTemperature, 1e-9);
}

TEST(Calibration, IntervalsUseTheEngineBootstrapResamples) {
  // Every row has confidence .8 and one bin: each resample's ECE is |accuracy_b - .8|, with the
  // accuracy of the engine's own resample b.
  const int64_t N = 30;
  std::vector<double> probs;
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < N; ++i) {
    probs.insert(probs.end(), {0.8, 0.2});
    labels.push_back(i % 3 == 0 ? 1 : 0);
  }
  const BootstrapOptions o{200, 11, 0.9};
  const CalibrationResult c = calibration(probs, labels, {"a", "b"}, 1, o);
  const auto per = bootstrap_metrics(Tensor::from(labels, {N}), Tensor::from(probs, {N, 2}), o);
  std::vector<double> ref;
  for (const auto& m : per) ref.push_back(std::abs(m.accuracy.value - 0.8));
  ASSERT_TRUE(c.ece_ci && c.ece_ci->defined);
  EXPECT_NEAR(c.ece_ci->lo, quantile_linear(ref, 0.05), 1e-12);
  EXPECT_NEAR(c.ece_ci->hi, quantile_linear(ref, 0.95), 1e-12);
  EXPECT_NEAR(c.top.ece, std::abs(20.0 / 30 - 0.8), 1e-12);
}

TEST(Calibration, ReportHasTheSectionBeforeAndAfterTemperature) {
  std::vector<double> logits;
  std::vector<int64_t> labels;
  overconfident(60, 3, 6.0, logits, labels);
  PredictionTable t;
  t.source = "calib.csv";
  t.class_names = {"osteoporosis", "osteopenia", "normal"};
  t.labels = labels;
  t.scores = logits;
  t.kind = ScoreKind::Logits;
  for (size_t i = 0; i < labels.size(); ++i) t.ids.push_back("s" + std::to_string(i));
  const TemperatureFit f = fit_temperature(logits, labels, 3);
  ReportRun run;
  run.title = "calibration";
  run.source = "calib.csv";
  run.temperature = f.temperature;
  run.temperature_source = "fitted here";
  HuBaseline hu;
  hu.note = "none";
  const std::string dir = test::temp_dir() + "/calib_report";
  const Report r = write_report(t, run, {50, 1, 0.95}, hu, dir, false);
  ASSERT_TRUE(r.calibration.has_value() && r.calibration_scaled.has_value());
  EXPECT_NEAR(r.calibration->top.ece, expected_calibration_error(softmax_rows(logits, 3), labels, 3, 15), 1e-12);
  EXPECT_LT(r.calibration_scaled->nll, r.calibration->nll);
  EXPECT_TRUE(fs::is_regular_file(dir + "/reliability.svg"));
  std::stringstream md;
  md << std::ifstream(dir + "/report.md").rdbuf();
  EXPECT_NE(md.str().find("## Calibration"), std::string::npos);
  EXPECT_NE(md.str().find("temperature scaled (T = "), std::string::npos);
  std::stringstream js;
  js << std::ifstream(dir + "/report.json").rdbuf();
  EXPECT_NE(js.str().find("\"temperature_scaled\""), std::string::npos);
  EXPECT_NE(r.terminal.find("after temperature scaling"), std::string::npos);
}

}  // namespace
}  // namespace mc::eval
