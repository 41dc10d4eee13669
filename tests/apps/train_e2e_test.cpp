// End to end on the CPU: generated scans -> mc_prep's library -> training -> held-out metrics,
// and resume after an interruption gives the same final weights as an uninterrupted run.
#include <filesystem>
#include <sstream>

#include "pipeline/predictions.h"
#include "apps/common/trainer.h"
#include "engine/metrics.h"
#include "io/cache.h"
#include "io/prep_config.h"
#include "io/safetensors.h"
#include "io/state_dict_io.h"
#include "losses/posthoc.h"
#include "io/synthetic.h"
#include "e2e_data.h"
#include "test_util.h"

namespace mc {
namespace {
namespace fs = std::filesystem;

using test::e2e_config;

TEST(TrainE2E, DemoTrainsAndBeatsChanceOnHeldOutSplit) {
  const std::string out = test::temp_dir();
  Config cfg = e2e_config(out);
  test::e2e_prepare();
  std::ostringstream log;
  TrainHooks hooks;
  hooks.out = &log;
  TrainSummary s = train(cfg, false, hooks);
  std::printf("%s", log.str().c_str());
  EXPECT_EQ(s.epochs_done, cfg.train.epochs);
  ASSERT_TRUE(fs::exists(s.best_weights));
  EXPECT_TRUE(fs::exists(out + "/metrics.csv"));
  EXPECT_TRUE(fs::exists(out + "/config.yaml"));

  // The best checkpoint on the test split, which neither training nor selection saw.
  auto model = build_model(cfg);
  load_state_dict(model->state_dict(), load_safetensors(s.best_weights));
  const std::string train_cache = split_cache_path(cfg.data, "train");
  PredictionTable p = predict_cache(*model, split_cache_path(cfg.data, "test"), 8, Device::cpu());
  const std::vector<int64_t> counts = Cache::open(train_cache).class_counts(3);
  Tensor probs = posthoc_probabilities(p.scores_tensor(DType::F32), std::vector<double>(counts.begin(), counts.end()),
                                       cfg.posthoc.tau2);
  ClassificationMetrics m = classification_metrics(p.labels_tensor(), probs);
  std::printf("held-out test: n %lld, balanced accuracy %.3f, accuracy %.3f, macro AUC %.3f\n",
              (long long)m.num_samples, m.balanced_accuracy.value, m.accuracy.value, m.auc_macro.value);
  EXPECT_GT(m.balanced_accuracy.value, 0.5);  // chance: 1/3
  EXPECT_GT(m.auc_macro.value, 0.75);         // chance: 0.5
}

TEST(TrainE2E, ResumeAfterInterruptionEqualsUninterruptedRun) {
  const std::string a = test::temp_dir() + "/straight", b = test::temp_dir() + "/interrupted";
  const std::vector<std::string> short_run = {"train.epochs=3"};
  Config ca = e2e_config(a, short_run), cb = e2e_config(b, short_run);
  test::e2e_prepare();
  std::ostringstream sink;
  TrainHooks quiet;
  quiet.out = &sink;
  train(ca, false, quiet);

  TrainHooks one = quiet;
  one.max_epochs_this_call = 1;  // "interrupted" after epoch 1, leaving last.safetensors
  EXPECT_EQ(train(cb, false, one).epochs_done, 1);
  EXPECT_EQ(train(cb, true, quiet).epochs_done, 3);  // --resume: epochs 2 and 3

  StateDict wa = load_safetensors(a + "/last.safetensors"), wb = load_safetensors(b + "/last.safetensors");
  ASSERT_EQ(wa.size(), wb.size());
  for (size_t i = 0; i < wa.size(); ++i) {
    ASSERT_EQ(wa[i].first, wb[i].first);
    EXPECT_EQ(test::rel_error(wb[i].second, wa[i].second), 0.0) << wa[i].first;
  }
}

TEST(TrainE2E, ResumeWithoutCheckpointNamesTheFile) {
  Config cfg = e2e_config(test::temp_dir());
  test::e2e_prepare();
  try {
    train(cfg, true);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("last.safetensors"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mc
