// The folds of a cross-validation run (pipeline/crossval.h) without training: every pooled
// subject in exactly one fold, class-stratified, fold k's run config; mc_prep's fold caches
// used as they are; and the errors for pools that cannot be split.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>

#include "io/cache.h"
#include "pipeline/crossval.h"
#include "test_util.h"

namespace mc::pipeline {
namespace {
namespace fs = std::filesystem;

// A cache of n tiny volumes, labels cycling 0, 1, 2 from `first`; ids <prefix><i>.
void tiny_cache(const std::string& path, const std::string& prefix, int n, int first = 0) {
  std::vector<io::CacheRecord> records;
  std::vector<Tensor> volumes;
  for (int i = 0; i < n; ++i) {
    records.push_back({prefix + std::to_string(i), (first + i) % 3, NAN});
    volumes.push_back(test::uniform({1, 4, 4, 4}, uint64_t(i + 1), 0, 1));
  }
  fs::create_directories(fs::path(path).parent_path());
  io::write_cache(path, records, volumes, {});
}

Config base(const std::string& dir) {
  Config c;
  c.data.cache_dir = dir + "/cache";
  c.output.dir = dir + "/cv";
  c.data.split.folds = 3;
  c.train.all_folds = true;
  return c;
}

TEST(CrossValPlan, TrainAndValPooledEverySubjectInOneFoldStratified) {
  const std::string dir = test::temp_dir();
  tiny_cache(dir + "/cache/train.safetensors", "t", 21);
  tiny_cache(dir + "/cache/val.safetensors", "v", 9);
  tiny_cache(dir + "/cache/test.safetensors", "x", 6);  // held out: never in a fold
  const FoldPlan plan = plan_folds(base(dir));
  ASSERT_EQ(plan.folds, 3);
  ASSERT_EQ(plan.subjects.size(), 30u);
  std::set<std::string> ids;
  std::map<int, std::map<int64_t, int>> per_fold;  // fold -> class -> count
  for (const auto& s : plan.subjects) {
    EXPECT_TRUE(ids.insert(s.id).second) << s.id;
    EXPECT_NE(s.id[0], 'x');
    ASSERT_GE(s.fold, 0);
    ASSERT_LT(s.fold, 3);
    ++per_fold[s.fold][s.label];
  }
  // 10 subjects per class over 3 folds: 3 or 4 in each.
  for (int64_t c = 0; c < 3; ++c) {
    int total = 0;
    for (int f = 0; f < 3; ++f) {
      EXPECT_GE(per_fold[f][c], 3) << f << " " << c;
      EXPECT_LE(per_fold[f][c], 4) << f << " " << c;
      total += per_fold[f][c];
    }
    EXPECT_EQ(total, 10);
  }
  // Deterministic for the seed.
  const FoldPlan again = plan_folds(base(dir));
  for (size_t i = 0; i < plan.subjects.size(); ++i) EXPECT_EQ(again.subjects[i].fold, plan.subjects[i].fold);

  const Config f1 = fold_config(base(dir), 1);
  EXPECT_EQ(f1.output.dir, dir + "/cv/fold_1");
  EXPECT_EQ(f1.data.test_cache, dir + "/cv/fold_1/data/oof.safetensors");
  EXPECT_EQ(f1.data.train_cache, dir + "/cv/fold_1/data/train.safetensors");
  EXPECT_FALSE(f1.train.all_folds);
}

TEST(CrossValPlan, McPrepFoldCachesAreTheFolds) {
  const std::string dir = test::temp_dir();
  for (int k = 0; k < 3; ++k) tiny_cache(dir + "/cache/fold" + std::to_string(k) + ".safetensors", "f" + std::to_string(k) + "_", 4 + k);
  Config c = base(dir);
  c.data.split.mode = Config::Split::Mode::KFold;
  const FoldPlan plan = plan_folds(c);
  ASSERT_EQ(plan.subjects.size(), 15u);
  for (const auto& s : plan.subjects) EXPECT_EQ(s.id.substr(0, 3), "f" + std::to_string(s.fold) + "_") << s.id;
  EXPECT_NE(plan.source.find("mc_prep's 3 fold caches"), std::string::npos);
  c.data.split.folds = 4;
  test::expect_error([&] { plan_folds(c); }, {"fold3.safetensors", "missing"});
  c.data.split.folds = 3;
  tiny_cache(dir + "/cache/fold3.safetensors", "g", 3);
  test::expect_error([&] { plan_folds(c); }, {"more than data.split.folds = 3"});
}

TEST(CrossValPlan, PoolsThatCannotBeSplitAreErrors) {
  const std::string dir = test::temp_dir();
  test::expect_error([&] { plan_folds(base(dir)); }, {"train cache", "mc_prep"});
  tiny_cache(dir + "/cache/train.safetensors", "s", 1);
  tiny_cache(dir + "/cache/val.safetensors", "s", 1);  // "s0" again
  test::expect_error([&] { plan_folds(base(dir)); }, {"'s0'", "twice"});
  tiny_cache(dir + "/cache/val.safetensors", "v", 1);
  test::expect_error([&] { plan_folds(base(dir)); }, {"2 subjects cannot fill 3 folds"});
  EXPECT_FALSE(is_crossval_dir(dir));
  test::expect_error([&] { fold_checkpoints(dir); }, {"not a cross-validation run folder"});
}

}  // namespace
}  // namespace mc::pipeline
