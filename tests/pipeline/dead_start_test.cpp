// The dead start of timm's zero_init_last on small mostly-background volumes (issue 14): the
// start check's arithmetic, the warning it prints, and that the default init learns within the
// first epoch where zero_init_last gives every volume the same features.
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "io/cache.h"
#include "io/runlog.h"
#include "models/resnet3d.h"
#include "pipeline/train.h"
#include "pipeline/train_export.h"
#include "sparse_data.h"
#include "test_util.h"

namespace mc::pipeline {
namespace {

TEST(StartCheck, FeatureSpreadSeesConstantRows) {
  Tensor same = Tensor::from<float>({0, 1, 2, 0, 1, 2, 0, 1, 2}, {3, 3});
  FeatureSpread s = feature_spread(same);
  EXPECT_EQ(s.batch, 3);
  EXPECT_EQ(s.features, 3);
  EXPECT_EQ(s.max_std, 0.0);
  EXPECT_TRUE(s.constant());
  // PyTorch's rounding noise (~3e-5 on features of order 1) is still a dead start.
  Tensor noisy = Tensor::from<float>({1, 1.00003f, 1, 1}, {2, 2});
  EXPECT_TRUE(feature_spread(noisy).constant());
  Tensor varied = Tensor::from<float>({0, 1, 0.5f, 1}, {2, 2});
  EXPECT_NEAR(feature_spread(varied).max_std, 0.25, 1e-7);
  EXPECT_FALSE(feature_spread(varied).constant());
  EXPECT_FALSE(feature_spread(Tensor::from<float>({0, 0}, {1, 2})).constant());  // one sample
}

// The cause as traced: with zero_init_last a 28^3 volume's pooled features are a function of
// its corner only, so two volumes that differ everywhere but there give the same features.
TEST(StartCheck, ZeroInitLastSeesOnlyTheCornerAt28) {
  Generator g(5);
  Tensor x = Tensor::zeros({4, 1, 28, 28, 28}, DType::F32);
  float* p = x.data<float>();
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t v = i % (28 * 28 * 28), d = v / (28 * 28), h = v / 28 % 28, w = v % 28;
    if (d >= 8 || h >= 8 || w >= 8) p[i] = float(g.uniform());  // the corner stays 0
  }
  for (bool zil : {true, false}) {
    models::ResNet3d m(models::resnet_spec("resnet10"), 1, 2);
    m.init_weights(0, zil);
    m.train();
    NoGradGuard ng;
    const FeatureSpread s = feature_spread(m.forward_pooled(x));
    std::printf("zero_init_last %d: pooled feature std across the batch %.3g\n", int(zil), s.max_std);
    EXPECT_EQ(s.constant(), zil);
    if (zil) EXPECT_EQ(s.max_std, 0.0);  // exactly: BN of a batch-constant value is 0
  }
}

struct SparseRun {
  std::string log;
  double epoch1_loss = NAN, val_auc = NAN;
};

SparseRun train_sparse(const std::string& dir, const std::vector<std::string>& extra) {
  Config cfg = test::sparse_config(dir, 28, 96, 48, extra);
  std::ostringstream log;
  TrainHooks hooks;
  hooks.out = &log;
  train(cfg, false, hooks);
  SparseRun r;
  r.log = log.str();
  const std::vector<io::LogRow> rows = io::RunLog::read_csv(cfg.output.dir + "/metrics.csv");
  auto col = [&](const std::string& k) {
    for (const auto& [name, v] : rows.at(0))
      if (name == k) return v;
    ADD_FAILURE() << "no column " << k;
    return double(NAN);
  };
  r.epoch1_loss = col("train_loss");
  r.val_auc = col("val_auc_macro");
  std::printf("%s", r.log.c_str());
  return r;
}

TEST(DeadStart, DefaultInitLearnsInTheFirstEpochAndZeroInitLastIsNamed) {
  const std::string dir = test::temp_dir();
  const std::vector<std::string> one = {"train.epochs=2", "output.dir=" + dir + "/default"};
  const SparseRun good = train_sparse(dir, {"train.epochs=2", "output.dir=" + dir + "/default"});
  EXPECT_EQ(good.log.find("dead start"), std::string::npos);
  // A dead start predicts the prior for every volume: its loss stays at the prior's entropy
  // (macro AUC 0.5). The default init must learn the shapes within the first epoch (6 steps):
  // its mean loss over them, the first at the prior, falls well below that plateau.
  const std::vector<int64_t> n = io::Cache::open(dir + "/cache/train.safetensors").class_counts(3);
  double entropy = 0;
  for (int64_t c : n) {
    const double p = double(c) / double(n[0] + n[1] + n[2]);
    entropy -= p * std::log(p);
  }
  EXPECT_LT(good.epoch1_loss, entropy - 0.05);
  EXPECT_GT(good.val_auc, 0.6);

  const SparseRun dead = train_sparse(dir, {"train.epochs=1", "model.zero_init_last=true",
                                            "output.dir=" + dir + "/zil"});
  EXPECT_NE(dead.log.find("dead start"), std::string::npos);
  EXPECT_NE(dead.log.find("model.zero_init_last=false"), std::string::npos);
  EXPECT_NE(dead.log.find("28x28x28 volume to a 1^3 map"), std::string::npos);
  std::printf("prior entropy %.4f; epoch 1 train loss: default %.4f, zero_init_last %.4f; val AUC "
              "%.3f vs %.3f\n", entropy, good.epoch1_loss, dead.epoch1_loss, good.val_auc, dead.val_auc);
}

}  // namespace
}  // namespace mc::pipeline
