// Checkpoints: the pair of files round-trips every field of the training state exactly, and a
// torn pair is refused.
#include "io/checkpoint.h"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace mc::io {
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

// What kill -9 leaves (issue 11): an epoch checkpoint's state without its weights, a pair from
// two saves, and temporaries of a dead process are removed at the next start and named; a
// whole pair, last/best, and a live process's temporaries stay.
TEST(Checkpoint, TornPairsAndStaleTemporariesAreRemovedAndNamed) {
  namespace fs = std::filesystem;
  const std::string dir = test::temp_dir();
  const StateDict w = {{"fc.weight", Tensor::from<float>({1.f, 2.f}, {1, 2})}};
  TrainingState s;
  s.optimizer = "sgd";
  for (const char* tag : {"epoch1", "epoch2", "epoch3", "last"}) save_checkpoint(dir, tag, w, s);
  fs::remove(dir + "/epoch2.safetensors");                                 // state without weights
  fs::copy_file(dir + "/epoch1.safetensors", dir + "/epoch3.safetensors",  // weights of another save
                fs::copy_options::overwrite_existing);
  fs::remove(dir + "/last.safetensors");  // last is --resume's to check, not removed here
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);  // a process that is no longer running
  const std::string dead = dir + "/last.safetensors.tmp." + std::to_string(child) + ".0";
  const std::string live = dir + "/best.safetensors.tmp." + std::to_string(::getppid()) + ".3";
  std::ofstream(dead) << "half a checkpoint";
  std::ofstream(live) << "being written";
  const auto temps = remove_stale_temporaries(dir);
  ASSERT_EQ(temps.size(), 1u);
  EXPECT_NE(temps[0].find(dead), std::string::npos);
  EXPECT_NE(temps[0].find("17 bytes, from process " + std::to_string(child)), std::string::npos) << temps[0];
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_TRUE(fs::exists(live));
  auto torn = remove_torn_checkpoints(dir);
  std::sort(torn.begin(), torn.end());
  ASSERT_EQ(torn.size(), 2u);
  EXPECT_NE(torn[0].find("epoch2.state.safetensors (its weights are missing)"), std::string::npos) << torn[0];
  EXPECT_NE(torn[1].find("epoch3.state.safetensors (its two files are from different saves)"), std::string::npos) << torn[1];
  for (const char* f : {"epoch2.state.safetensors", "epoch3.safetensors", "epoch3.state.safetensors"})
    EXPECT_FALSE(fs::exists(dir + "/" + f)) << f;
  for (const char* f : {"epoch1.safetensors", "epoch1.state.safetensors", "last.state.safetensors"})
    EXPECT_TRUE(fs::exists(dir + "/" + f)) << f;
  EXPECT_TRUE(remove_torn_checkpoints(dir).empty());
}

}  // namespace
}  // namespace mc::io
