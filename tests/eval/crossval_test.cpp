// Cross-validation's pooled table and per-fold summary (eval/crossval.h): every subject once,
// a subject in two folds refused, mean and SD as numpy's mean / std(ddof=1), and the section.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "eval/crossval.h"
#include "eval/evaluation.h"
#include "test_util.h"

namespace mc::eval {
namespace {

PredictionTable fold_table(const std::vector<std::string>& ids, const std::vector<int64_t>& labels, double bias) {
  PredictionTable t;
  t.source = "fold";
  t.class_names = {"a", "b", "c"};
  t.kind = ScoreKind::Logits;
  t.ids = ids;
  t.labels = labels;
  for (size_t i = 0; i < ids.size(); ++i)
    for (int k = 0; k < 3; ++k) t.scores.push_back(k == labels[i] ? 1.0 + bias : double(i % 3) * 0.1);
  return t;
}

TEST(CrossVal, PooledTableHoldsEverySubjectOnceWithItsFoldsScores) {
  const std::vector<PredictionTable> folds = {fold_table({"s1", "s4"}, {0, 1}, 0.0), fold_table({"s2", "s5", "s6"}, {2, 0, 1}, 0.5),
                                              fold_table({"s3"}, {1}, -0.25)};
  const PredictionTable p = pool_fold_tables(folds);
  ASSERT_EQ(p.size(), 6);
  EXPECT_EQ(std::set<std::string>(p.ids.begin(), p.ids.end()).size(), 6u);
  EXPECT_EQ(p.ids, (std::vector<std::string>{"s1", "s4", "s2", "s5", "s6", "s3"}));
  EXPECT_EQ(p.labels, (std::vector<int64_t>{0, 1, 2, 0, 1, 1}));
  // Row 3 (s5) is fold 1's second row, unchanged.
  for (int k = 0; k < 3; ++k) EXPECT_EQ(p.scores[size_t(3 * 3 + k)], folds[1].scores[size_t(3 + k)]);
  EXPECT_EQ(p.class_names, folds[0].class_names);
  EXPECT_EQ(p.kind, ScoreKind::Logits);
}

TEST(CrossVal, ASubjectInTwoFoldsOrTwiceIsAnError) {
  test::expect_error([] { pool_fold_tables({fold_table({"s1", "s2"}, {0, 1}, 0), fold_table({"s3", "s2"}, {0, 1}, 0)}); },
                     {"'s2'", "fold 0", "fold 1", "exactly once"});
  test::expect_error([] { pool_fold_tables({fold_table({"s1", "s1"}, {0, 1}, 0)}); }, {"'s1'"});
  PredictionTable other = fold_table({"s9"}, {0}, 0);
  other.class_names = {"x", "y", "z"};
  test::expect_error([&] { pool_fold_tables({fold_table({"s1"}, {0}, 0), other}); }, {"fold 1", "classes x,y,z"});
  test::expect_error([] { pool_fold_tables({}); }, {"no folds"});
}

TEST(CrossVal, MeanAndSampleSdLikeNumpyDdof1) {
  // numpy: np.mean([0.8, 0.6, 0.7]) = 0.7, np.std(..., ddof=1) = 0.1
  const MeanSd m = mean_sd({0.8, 0.6, 0.7, NAN});
  EXPECT_EQ(m.n, 3);
  EXPECT_NEAR(m.mean, 0.7, 1e-12);
  EXPECT_NEAR(m.sd, 0.1, 1e-12);
  const MeanSd one = mean_sd({0.5});
  EXPECT_DOUBLE_EQ(one.mean, 0.5);
  EXPECT_TRUE(std::isnan(one.sd));
  EXPECT_TRUE(std::isnan(mean_sd({}).mean));
}

TEST(CrossVal, SectionTabulatesEachFoldAndTheirMeanSd) {
  CrossValidation cv;
  cv.pooling = "pooled.";
  const std::vector<std::vector<int64_t>> labels = {{0, 1, 2, 0}, {1, 2, 0, 1}, {2, 0, 1, 2}};
  std::vector<double> acc;
  for (int f = 0; f < 3; ++f) {
    // Fold f gets the first f rows wrong (predicts class (y + 1) % 3): accuracy 1, 0.75, 0.5.
    std::vector<double> scores;
    for (size_t i = 0; i < 4; ++i)
      for (int k = 0; k < 3; ++k) scores.push_back(k == (labels[size_t(f)][i] + (int(i) < f ? 1 : 0)) % 3 ? 0.8 : 0.1);
    FoldResult r;
    r.fold = f;
    r.n = 4;
    r.metrics = classification_metrics(labels[size_t(f)], scores, 3);
    acc.push_back(r.metrics.accuracy.value);
    cv.folds.push_back(r);
  }
  EXPECT_EQ(acc, (std::vector<double>{1.0, 0.75, 0.5}));
  const std::string md = crossval_markdown(cv);
  EXPECT_NE(md.find("## Cross-validation: 3 folds"), std::string::npos) << md;
  EXPECT_NE(md.find("| 1 | 4 |"), std::string::npos) << md;
  EXPECT_NE(md.find("75.00 +- 25.00"), std::string::npos) << md;  // mean 0.75, SD 0.25
  const io::Json j = crossval_json(cv);
  EXPECT_NEAR(j["mean_sd"]["accuracy"]["mean"].get<double>(), 0.75, 1e-12);
  EXPECT_NEAR(j["mean_sd"]["accuracy"]["sd"].get<double>(), 0.25, 1e-12);
  EXPECT_EQ(j["folds"].size(), 3u);
  EXPECT_NE(crossval_terminal(cv).find("accuracy 75.00 +- 25.00"), std::string::npos);
}

}  // namespace
}  // namespace mc::eval
