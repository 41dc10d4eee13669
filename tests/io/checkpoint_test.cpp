// Checkpoints: the pair of files round-trips every field of the training state exactly, and a
// torn pair is refused.
#include "io/checkpoint.h"

#include <gtest/gtest.h>

#include "io/safetensors.h"
#include "test_util.h"

namespace mc {
namespace {

TEST(Checkpoint, TrainingStateRoundTripsExactly) {
  const std::string dir = test::temp_dir();
  TrainingState s;
  s.epoch = 7;
  s.global_step = 1234;
  s.best_value = 2.0 / 3.0;  // std::to_string kept 6 decimals: a resumed run compared against 0.666667
  s.best_epoch = 5;
  s.optimizer = "adamw";
  s.config_yaml = "train:\n  epochs: 9\n";
  s.optimizer_state = {{"exp_avg.fc.weight", test::randn({2, 3}, 1)}};
  s.extra = {{"class_counts", "20,110,181"}};
  const std::string w = save_checkpoint(dir, "last", {{"fc.weight", test::randn({2, 3}, 2)}}, s);
  const TrainingState t = load_training_state(state_path_for(w), w);
  EXPECT_EQ(t.epoch, 7);
  EXPECT_EQ(t.global_step, 1234);
  EXPECT_EQ(t.best_value, 2.0 / 3.0);
  EXPECT_EQ(t.best_epoch, 5);
  EXPECT_EQ(t.optimizer, "adamw");
  EXPECT_EQ(t.config_yaml, s.config_yaml);
  EXPECT_EQ(t.extra, s.extra);
  ASSERT_EQ(t.optimizer_state.size(), 1u);
  EXPECT_EQ(t.optimizer_state[0].first, "exp_avg.fc.weight");
  EXPECT_TRUE(test::all_close(t.optimizer_state[0].second, s.optimizer_state[0].second, 0, 0));

  // Weights from another save: refused, never mixed.
  const std::string other = save_checkpoint(dir + "/other", "last", {{"fc.weight", test::randn({2, 3}, 3)}}, s);
  test::expect_error([&] { load_training_state(state_path_for(w), other); }, {"different saves"});
}

}  // namespace
}  // namespace mc
