// The temperature mc_train stores in a checkpoint's state is read back (or its absence, or a bad
// value, reported), and mc_predict's probabilities compose tau2 then T as eval/calibration.h says.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/nn.h"
#include "io/checkpoint.h"
#include "losses/posthoc.h"
#include "pipeline/model.h"
#include "pipeline/predict.h"
#include "test_util.h"

namespace mc::pipeline {
namespace {

std::string save(const std::string& dir, const std::map<std::string, std::string>& extra) {
  nn::Linear lin(2, 3);
  io::TrainingState st;
  st.optimizer = "adamw";
  st.extra = extra;
  return io::save_checkpoint(dir, "best", lin.state_dict(), st);
}

TEST(Temperature, ReadFromTheCheckpointState) {
  const std::string dir = test::temp_dir() + "/temperature";
  const CheckpointTemperature t = checkpoint_temperature(
      save(dir + "/a", {{"temperature", "1.75"}, {"temperature_tau2", "0.5"}, {"temperature_nll_before", "0.9"},
                        {"temperature_nll_after", "0.8"}}));
  ASSERT_TRUE(t.present());
  EXPECT_EQ(t.value, 1.75);
  EXPECT_EQ(t.tau2, 0.5);
  EXPECT_EQ(t.nll_before, 0.9);
  EXPECT_NE(t.source.find("best.state.safetensors"), std::string::npos);
  const CheckpointTemperature none = checkpoint_temperature(save(dir + "/b", {}));
  EXPECT_FALSE(none.present());
  EXPECT_EQ(none.value, 1.0);
  const std::string bad = save(dir + "/c", {{"temperature", "warm"}});
  test::expect_error([&] { checkpoint_temperature(bad); }, {"best.state.safetensors", "'temperature'", "warm"});
  const std::string neg = save(dir + "/d", {{"temperature", "-1"}});
  test::expect_error([&] { checkpoint_temperature(neg); }, {"must be > 0"});
}

TEST(Temperature, PredictionAdjustsThenScales) {
  const std::vector<double> logits = {1.5, -0.2, 0.7};
  const TrainingPrior prior{{20, 110, 181}, "test"};
  const double tau2 = 0.5, T = 2.0;
  const ScanPrediction p = prediction_from_logits(logits, "s", prior, tau2, T);
  const double total = 311;
  std::vector<double> z(3);
  double norm = 0;
  for (size_t k = 0; k < 3; ++k) norm += (z[k] = std::exp((logits[k] - tau2 * std::log(prior.counts[k] / total)) / T));
  for (size_t k = 0; k < 3; ++k) EXPECT_NEAR(p.probabilities[k], z[k] / norm, 1e-14);
  EXPECT_EQ(p.temperature, T);
  EXPECT_EQ(p.tau2, tau2);
  // T = 1 is the plain post-hoc adjustment.
  const ScanPrediction q = prediction_from_logits(logits, "s", prior, tau2, 1.0);
  const auto ref = losses::posthoc_probabilities(Tensor::from(logits, {1, 3}), {20, 110, 181}, tau2).to_vector<double>();
  for (size_t k = 0; k < 3; ++k) EXPECT_NEAR(q.probabilities[k], ref[k], 1e-15);
  // No usable prior: no adjustment (noted), the temperature still applies.
  const ScanPrediction r = prediction_from_logits(logits, "s", TrainingPrior{{}, "none"}, tau2, T);
  EXPECT_EQ(r.tau2, 0.0);
  EXPECT_NE(r.note.find("no post-hoc adjustment"), std::string::npos);
  EXPECT_EQ(r.cls, 0);
  EXPECT_NE(prediction_json(p, {"a", "b", "c"}, false).find("\"temperature\": 2"), std::string::npos);
}

}  // namespace
}  // namespace mc::pipeline

namespace mc::pipeline {
namespace {

TEST(Ensemble, IdenticalMembersEqualOneAndMembersAverage) {
  const TrainingPrior prior{{20, 110, 181}, "test"};
  const ScanPrediction one = prediction_from_logits({1.5, -0.2, 0.7}, "s", prior, 0.5, 1.3);
  for (size_t k : {1u, 3u, 5u}) {
    const ScanPrediction e = ensemble_prediction(std::vector<ScanPrediction>(k, one));
    EXPECT_EQ(e.cls, one.cls);
    for (size_t c = 0; c < 3; ++c) EXPECT_NEAR(e.probabilities[c], one.probabilities[c], 1e-15) << k;
  }
  // Two members: the mean of probabilities (not of logits), and its arg-max.
  const ScanPrediction a = prediction_from_logits({3, 0, 0}, "s", {}, 0, 1), b = prediction_from_logits({0, 2.5, 0}, "s", {}, 0, 1);
  const ScanPrediction e = ensemble_prediction({a, b});
  for (size_t c = 0; c < 3; ++c) EXPECT_NEAR(e.probabilities[c], (a.probabilities[c] + b.probabilities[c]) / 2, 1e-15);
  EXPECT_EQ(e.cls, a.probabilities[0] + b.probabilities[0] > a.probabilities[1] + b.probabilities[1] ? 0 : 1);
  test::expect_error([] { ensemble_prediction({}); }, {"no members"});
}

// A regression task's ensemble: the mean predicted T-score and the WHO band it falls in.
TEST(Ensemble, RegressionMembersAverageTheTScore) {
  io::Task task;
  task.head = io::Task::Head::Regression;
  ScanPrediction a, b;
  a.tscore = -3.0, a.logits = {-3.0}, a.cls = 0;
  b.tscore = -1.5, b.logits = {-1.5}, b.cls = 1;
  const ScanPrediction e = ensemble_prediction({a, b}, task);
  EXPECT_DOUBLE_EQ(e.tscore, -2.25);
  EXPECT_EQ(e.cls, 1);  // -2.5 < -2.25 < -1: osteopenia
  EXPECT_TRUE(e.probabilities.empty());
  ScanPrediction c = b;
  c.tscore = 0.5;
  EXPECT_EQ(ensemble_prediction({a, b, c}, task).cls, 1);  // mean -4/3
  ScanPrediction no_t;
  test::expect_error([&] { ensemble_prediction({a, no_t}, task); }, {"member 1", "no T-score"});
}

}  // namespace
}  // namespace mc::pipeline
