// The programs themselves on bad input: each error names the key / file and what was expected,
// exits non-zero, and leaves nothing half-written.
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "test_util.h"

namespace mc {
namespace {
namespace fs = std::filesystem;

struct Outcome {
  int code;
  std::string out;  // stdout and stderr
};

Outcome run(const std::string& program, const std::string& args) {
  const std::string cmd = std::string(MC_BINARY_DIR) + "/apps/" + program + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  Outcome r{-1, ""};
  if (!p) return r;
  std::array<char, 4096> buf;
  while (size_t n = fread(buf.data(), 1, buf.size(), p)) r.out.append(buf.data(), n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

const std::string demo = std::string(MC_SOURCE_DIR) + "/configs/demo.yaml";

#define EXPECT_HAS(r, s) EXPECT_NE((r).out.find(s), std::string::npos) << "missing '" << (s) << "' in:\n" << (r).out

TEST(Cli, TrainNeedsAConfig) {
  Outcome r = run("mc_train", "");
  EXPECT_EQ(r.code, 2);
  EXPECT_HAS(r, "--config FILE.yaml is required");
}

TEST(Cli, TrainUnknownArgument) {
  Outcome r = run("mc_train", "--config " + demo + " --epochs 3");
  EXPECT_EQ(r.code, 2);
  EXPECT_HAS(r, "unknown argument '--epochs'");
}

TEST(Cli, TrainFoldNeedsFolds) {
  Outcome r = run("mc_train", "--config " + demo + " --fold 1");
  EXPECT_EQ(r.code, 2);
  EXPECT_HAS(r, "--fold k needs --folds K");
  EXPECT_HAS(r, "data.split.fold=k");
}

TEST(Cli, TrainHelpListsEveryKeyGroup) {
  Outcome r = run("mc_train", "--help");
  EXPECT_EQ(r.code, 0);
  for (const char* k : {"optim.lr", "loss.tau1", "posthoc.tau2", "data.windows", "train.precision"}) EXPECT_HAS(r, k);
}

// Issue 14: the export hooks for checking a run against PyTorch are documented where users look.
TEST(Cli, TrainHelpDocumentsTheExportHooks) {
  Outcome r = run("mc_train", "--help");
  EXPECT_EQ(r.code, 0);
  for (const char* k : {"--export-init", "--export-steps", "--float64", "train_parity.py", "off by default",
                        "model.zero_init_last", "CosineAnnealingLR"})
    EXPECT_HAS(r, k);
}

TEST(Cli, MissingConfigFileIsNamed) {
  Outcome r = run("mc_train", "--config /nonexistent/run.yaml");
  EXPECT_EQ(r.code, 1);
  EXPECT_HAS(r, "/nonexistent/run.yaml");
}

TEST(Cli, TypoInOverrideSuggestsTheKey) {
  Outcome r = run("mc_train", "--config " + demo + " optim.lrr=0.1");
  EXPECT_EQ(r.code, 1);
  EXPECT_HAS(r, "optim.lrr");
  EXPECT_HAS(r, "optim.lr");
}

TEST(Cli, OutOfRangeAndBadEnumAndWrongType) {
  Outcome a = run("mc_train", "--config " + demo + " train.epochs=0");
  EXPECT_EQ(a.code, 1);
  EXPECT_HAS(a, "train.epochs");
  Outcome b = run("mc_prep", "--config " + demo + " loss.type=focal");
  EXPECT_NE(b.code, 0);
  EXPECT_HAS(b, "focal");
  EXPECT_HAS(b, "logit_adjusted");
  const std::string dir = test::temp_dir();
  std::ofstream(dir + "/bad.yaml") << "optim:\n  lr: fast\n";
  Outcome c = run("mc_train", "--config " + dir + "/bad.yaml");
  EXPECT_EQ(c.code, 1);
  EXPECT_HAS(c, "bad.yaml");
  EXPECT_HAS(c, "optim.lr");
  EXPECT_HAS(c, "fast");
}

TEST(Cli, MissingCacheSaysRunMcPrepAndWritesNothing) {
  const std::string out = test::temp_dir() + "/run";
  Outcome r = run("mc_train", "--config " + demo + " data.cache_dir=/nonexistent/cache output.dir=" + out);
  EXPECT_EQ(r.code, 1);
  EXPECT_HAS(r, "/nonexistent/cache/train.safetensors");
  EXPECT_HAS(r, "mc_prep");
  EXPECT_FALSE(fs::exists(out));
}

TEST(Cli, PrepWithNothingUsableExitsNonZero) {
  const std::string dir = test::temp_dir();
  fs::create_directories(dir + "/ct");
  std::ofstream(dir + "/labels.csv") << "id,tscore\na,-1.0\n";
  std::ofstream(dir + "/ct/a.nii.gz") << "not a nifti";
  Outcome r = run("mc_prep", "--ct-dir " + dir + "/ct --seg-dir " + dir + "/ct --labels " + dir +
                             "/labels.csv --out " + dir + "/out --no-progress");
  EXPECT_EQ(r.code, 1);
  EXPECT_HAS(r, "a");
}

}  // namespace
}  // namespace mc
