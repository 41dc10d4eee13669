// End to end on the CPU: generated scans -> mc_prep's library -> training -> held-out metrics,
// and resume after an interruption gives the same final weights as an uninterrupted run.
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <filesystem>
#include <sstream>

#include "pipeline/predictions.h"
#include "engine/metrics.h"
#include "eval/calibration.h"
#include "pipeline/model.h"
#include "io/cache.h"
#include "io/runlog.h"
#include "io/safetensors.h"
#include "io/state_dict_io.h"
#include "io/synthetic.h"
#include "losses/posthoc.h"
#include "pipeline/prep_config.h"
#include "pipeline/train.h"
#include "e2e_data.h"
#include "test_util.h"

namespace mc {
namespace {
namespace fs = std::filesystem;

using test::e2e_config;

TEST(TrainE2E, DemoTrainsAndBeatsChanceOnHeldOutSplit) {
  const std::string out = test::temp_dir();
  pipeline::Config cfg = e2e_config(out);
  test::e2e_prepare();
  std::ostringstream log;
  pipeline::TrainHooks hooks;
  hooks.out = &log;
  pipeline::TrainSummary s = pipeline::train(cfg, false, hooks);
  std::printf("%s", log.str().c_str());
  EXPECT_EQ(s.epochs_done, cfg.train.epochs);
  ASSERT_TRUE(fs::exists(s.best_weights));
  EXPECT_TRUE(fs::exists(out + "/metrics.csv"));
  EXPECT_TRUE(fs::exists(out + "/config.yaml"));

  // The best checkpoint on the test split, which neither training nor selection saw.
  auto model = pipeline::build_model(cfg);
  io::load_state_dict(model->state_dict(), io::load_safetensors(s.best_weights));
  const std::string train_cache = pipeline::split_cache_path(cfg.data, "train");
  eval::PredictionTable p = pipeline::predict_cache(*model, pipeline::split_cache_path(cfg.data, "test"), 8, Device::cpu());
  const std::vector<int64_t> counts = io::Cache::open(train_cache).class_counts(3);
  Tensor probs = losses::posthoc_probabilities(p.scores_tensor(DType::F32), std::vector<double>(counts.begin(), counts.end()),
                                       cfg.posthoc.tau2);
  ClassificationMetrics m = classification_metrics(p.labels_tensor(), probs);
  std::printf("held-out test: n %lld, balanced accuracy %.3f, accuracy %.3f, macro AUC %.3f\n",
              (long long)m.num_samples, m.balanced_accuracy.value, m.accuracy.value, m.auc_macro.value);
  EXPECT_GT(m.balanced_accuracy.value, 0.5);  // chance: 1/3
  EXPECT_GT(m.auc_macro.value, 0.75);         // chance: 0.5

  // The best checkpoint carries the temperature fitted on its validation scores (adjusted at
  // posthoc.tau2): refitting here gives the same T, and it lowers the validation NLL.
  const pipeline::CheckpointTemperature t = pipeline::checkpoint_temperature(s.best_weights);
  ASSERT_TRUE(t.present());
  EXPECT_EQ(t.tau2, cfg.posthoc.tau2);
  eval::PredictionTable v = pipeline::predict_cache(*model, pipeline::split_cache_path(cfg.data, "val"), 8, Device::cpu());
  const std::vector<double> prior(counts.begin(), counts.end());
  std::vector<double> adjusted = v.scores;
  const std::vector<double> f = losses::normalize_prior(prior);
  for (size_t i = 0; i < adjusted.size(); ++i) adjusted[i] -= cfg.posthoc.tau2 * std::log(f[i % 3]);
  const eval::TemperatureFit refit = eval::fit_temperature(adjusted, v.labels, 3);
  EXPECT_NEAR(t.value, refit.temperature, 1e-6 * refit.temperature);
  EXPECT_LE(t.nll_after, t.nll_before);
  const double nll1 = eval::mean_nll(eval::calibrated_probabilities(v.scores, 3, prior, cfg.posthoc.tau2, 1.0), v.labels, 3);
  const double nllT = eval::mean_nll(eval::calibrated_probabilities(v.scores, 3, prior, cfg.posthoc.tau2, t.value), v.labels, 3);
  std::printf("validation NLL %.4f at T = 1, %.4f at the fitted T = %.3f\n", nll1, nllT, t.value);
  EXPECT_NEAR(nll1, t.nll_before, 1e-5);
  EXPECT_LE(nllT, nll1);
}

TEST(TrainE2E, ResumeAfterInterruptionEqualsUninterruptedRun) {
  const std::string a = test::temp_dir() + "/straight", b = test::temp_dir() + "/interrupted";
  const std::vector<std::string> short_run = {"train.epochs=3"};
  pipeline::Config ca = e2e_config(a, short_run), cb = e2e_config(b, short_run);
  test::e2e_prepare();
  std::ostringstream sink;
  pipeline::TrainHooks quiet;
  quiet.out = &sink;
  pipeline::train(ca, false, quiet);

  pipeline::TrainHooks one = quiet;
  one.max_epochs_this_call = 1;  // "interrupted" after epoch 1, leaving last.safetensors
  EXPECT_EQ(pipeline::train(cb, false, one).epochs_done, 1);
  EXPECT_EQ(pipeline::train(cb, true, quiet).epochs_done, 3);  // --resume: epochs 2 and 3

  StateDict wa = io::load_safetensors(a + "/last.safetensors"), wb = io::load_safetensors(b + "/last.safetensors");
  ASSERT_EQ(wa.size(), wb.size());
  for (size_t i = 0; i < wa.size(); ++i) {
    ASSERT_EQ(wa[i].first, wb[i].first);
    EXPECT_EQ(test::rel_error(wb[i].second, wa[i].second), 0.0) << wa[i].first;
  }
}

// eval.every_epochs and output.keep_last: validation on epochs 2 and 3 (the last) only, and of
// the periodic checkpoints only the newest is kept unless keep_last is false.
TEST(TrainE2E, ValidationEveryNEpochsAndPeriodicCheckpoints) {
  test::e2e_prepare();
  for (bool keep_last : {true, false}) {
    const std::string out = test::temp_dir() + (keep_last ? "/keep" : "/all");
    pipeline::Config cfg = e2e_config(out, {"train.epochs=3", "train.epoch_samples=16", "schedule.warmup_epochs=0",
                                  "eval.every_epochs=2", "output.checkpoint_every=1",
                                  std::string("output.keep_last=") + (keep_last ? "true" : "false")});
    std::ostringstream log;
    pipeline::TrainHooks hooks;
    hooks.out = &log;
    pipeline::TrainSummary s = pipeline::train(cfg, false, hooks);
    EXPECT_EQ(s.epochs_done, 3);
    EXPECT_TRUE(s.best_epoch == 2 || s.best_epoch == 3) << s.best_epoch;
    const std::vector<io::LogRow> rows = io::RunLog::read_csv(out + "/metrics.csv");
    ASSERT_EQ(rows.size(), 3u);
    auto value = [](const io::LogRow& r, const std::string& k) {
      for (const auto& [name, v] : r)
        if (name == k) return v;
      ADD_FAILURE() << "no column " << k;
      return 0.0;
    };
    EXPECT_TRUE(std::isnan(value(rows[0], "val_loss")));
    EXPECT_TRUE(std::isnan(value(rows[0], "selected")));
    EXPECT_TRUE(std::isfinite(value(rows[0], "train_loss")));
    EXPECT_TRUE(std::isfinite(value(rows[1], "val_loss")));
    EXPECT_TRUE(std::isfinite(value(rows[2], "val_loss")));
    std::istringstream lines(log.str());
    int epoch_lines = 0;
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("epoch ", 0) != 0) continue;
      ++epoch_lines;
      EXPECT_EQ(line.find("val loss") != std::string::npos, line.find("epoch   1/3") == std::string::npos) << line;
    }
    EXPECT_EQ(epoch_lines, 3) << log.str();
    EXPECT_TRUE(fs::exists(out + "/last.safetensors"));
    EXPECT_TRUE(fs::exists(out + "/epoch3.safetensors"));
    EXPECT_TRUE(fs::exists(out + "/epoch3.state.safetensors"));
    for (const char* tag : {"epoch1", "epoch2"}) {
      EXPECT_EQ(fs::exists(out + "/" + tag + ".safetensors"), !keep_last) << tag;
      EXPECT_EQ(fs::exists(out + "/" + tag + ".state.safetensors"), !keep_last) << tag;
    }
  }
}

// What a kill -9 leaves behind (a temporary of a process that is gone, a periodic state whose
// weights never got written) is removed when the run is resumed, and the log says which files.
TEST(TrainE2E, ResumeAfterAKillRemovesItsLeftoversAndSaysSo) {
  const std::string out = test::temp_dir();
  pipeline::Config cfg = e2e_config(out, {"train.epochs=2", "train.epoch_samples=16", "schedule.warmup_epochs=0",
                                "output.checkpoint_every=1", "output.keep_last=false"});
  test::e2e_prepare();
  std::ostringstream first;
  pipeline::TrainHooks one;
  one.out = &first;
  one.max_epochs_this_call = 1;
  ASSERT_EQ(pipeline::train(cfg, false, one).epochs_done, 1);
  ASSERT_TRUE(fs::exists(out + "/epoch1.state.safetensors"));

  const pid_t gone = ::fork();  // a process id that is certainly not running any more
  if (gone == 0) ::_exit(0);
  ASSERT_GT(gone, 0);
  ::waitpid(gone, nullptr, 0);
  const std::string temp = out + "/last.safetensors.tmp." + std::to_string(gone) + ".0";
  std::ofstream(temp) << "half a checkpoint";
  fs::remove(out + "/epoch1.safetensors");  // killed between the state and the weights

  std::ostringstream log;
  pipeline::TrainHooks rest;
  rest.out = &log;
  EXPECT_EQ(pipeline::train(cfg, true, rest).epochs_done, 2);
  const std::string text = log.str();
  EXPECT_NE(text.find("removed a stale temporary file " + temp), std::string::npos) << text;
  EXPECT_NE(text.find("from process " + std::to_string(gone)), std::string::npos) << text;
  EXPECT_NE(text.find("removed a torn checkpoint"), std::string::npos) << text;
  EXPECT_NE(text.find("epoch1.state.safetensors"), std::string::npos) << text;
  EXPECT_FALSE(fs::exists(temp));
  EXPECT_FALSE(fs::exists(out + "/epoch1.state.safetensors"));
  EXPECT_TRUE(fs::exists(out + "/epoch2.safetensors"));
  EXPECT_EQ(first.str().find("removed a"), std::string::npos) << first.str();  // a clean start says nothing
}

TEST(TrainE2E, ResumeWithoutCheckpointNamesTheFile) {
  pipeline::Config cfg = e2e_config(test::temp_dir());
  test::e2e_prepare();
  try {
    pipeline::train(cfg, true);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("last.safetensors"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mc
