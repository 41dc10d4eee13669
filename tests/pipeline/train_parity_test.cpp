// The end-to-end golden run (issue 14): a short training run on generated data, exported with
// the mc_train hooks (initial weights, per-step batches and augmentation), replayed in PyTorch by
// benchmarks/pytorch/train_parity.py, and compared step by step: in float64 (both sides) the
// per-step losses agree to 1e-4 relative for 50 steps and the per-epoch validation curves stay
// in a band; in float32 at lr 1e-3 to 1e-3 while PyTorch's own float32 error allows it, and at
// lr 1e-5, where neither engine amplifies rounding, to 1e-3 for all 50 steps (below). Skips when
// Debian's python3 has no torch (CI sets MC_REQUIRE_TORCH_FIXTURES=1 so it cannot silently skip there).
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "pipeline/train.h"
#include "sparse_data.h"
#include "test_util.h"

namespace mc::pipeline {
namespace {

bool have_torch() {
  const std::string cmd = std::string(MC_TORCH_PYTHON) + " -c 'import torch, sklearn, yaml' >/dev/null 2>&1";
  return !std::string(MC_TORCH_PYTHON).empty() && std::system(cmd.c_str()) == 0;
}

std::vector<std::vector<std::string>> read_rows(const std::string& path) {
  std::ifstream f(path);
  std::vector<std::vector<std::string>> rows;
  std::string line;
  while (std::getline(f, line)) {
    std::vector<std::string> cells;
    std::stringstream s(line);
    std::string c;
    while (std::getline(s, c, ',')) cells.push_back(c);
    rows.push_back(cells);
  }
  return rows;
}

struct Parity {
  std::vector<std::vector<std::string>> steps, epochs;
  double lr0 = 0;
};

#define MC_REQUIRE_TORCH()                                                                     \
  if (!have_torch()) {                                                                         \
    if (std::getenv("MC_REQUIRE_TORCH_FIXTURES")) FAIL() << MC_TORCH_PYTHON << " cannot import torch"; \
    GTEST_SKIP() << "no PyTorch for " << MC_TORCH_PYTHON;                                      \
  }

// train_parity.py's replay of an exported step log into `out` (dtype "": the log's own); its
// steps.csv rows.
std::vector<std::vector<std::string>> torch_replay(const std::string& steps, const std::string& out,
                                                   const std::string& dtype = "") {
  const std::string cmd = std::string(MC_TORCH_PYTHON) + " " + MC_SOURCE_DIR +
                          "/benchmarks/pytorch/train_parity.py --threads 1" + (dtype.empty() ? "" : " --dtype " + dtype) +
                          " --steps " + steps + " --out " + out;
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  return read_rows(out + "/steps.csv");
}

// Our run (16^3, batch 8, 80 volumes: 10 steps an epoch, 5 epochs = 50 steps, flips on, cosine
// per step), exported, then replayed by train_parity.py.
// extra: overrides after those; run: the run folder's name under dir (default f64 / f32).
Parity run_parity(const std::string& dir, bool float64, const std::vector<std::string>& extra = {},
                  const std::string& run = "") {
  std::vector<std::string> ov = {"train.epochs=5", "train.batch_size=8",
                                 "output.dir=" + dir + "/" + (run.empty() ? (float64 ? "f64" : "f32") : run)};
  ov.insert(ov.end(), extra.begin(), extra.end());
  Config cfg = test::sparse_config(dir, 16, 80, 32, ov);
  std::ostringstream log;
  TrainHooks hooks;
  hooks.out = &log;
  hooks.float64 = float64;
  hooks.export_init = cfg.output.dir + "/init.safetensors";
  hooks.export_steps = cfg.output.dir + "/steps.jsonl";
  train(cfg, false, hooks);
  const std::string out = cfg.output.dir + "/torch";
  return {torch_replay(hooks.export_steps, out), read_rows(out + "/epochs.csv"), cfg.optim.lr};
}

// Returns the largest relative loss difference of the first n steps, checking the schedule.
double compare_steps(const Parity& p, size_t n, const char* what) {
  EXPECT_EQ(p.steps.size(), n + 1) << what;  // header + n
  std::printf("%s\nstep  lr             loss ours     loss torch    rel\n", what);
  double worst = 0;
  for (size_t i = 1; i < p.steps.size() && i <= n; ++i) {
    const double lr_o = std::stod(p.steps[i][2]), lr_t = std::stod(p.steps[i][3]);
    const double lo = std::stod(p.steps[i][4]), lt = std::stod(p.steps[i][5]);
    std::printf("%4zu  %.6e  %.9f  %.9f  %.2e\n", i, lr_o, lo, lt, std::abs(lo - lt) / lt);
    EXPECT_NEAR(lr_o, lr_t, 1e-12 * p.lr0) << what << " step " << i;  // one schedule rule
    worst = std::max(worst, std::abs(lo - lt) / std::abs(lt));
  }
  std::printf("%s: largest relative step-loss difference over %zu steps: %.3g\n", what, n, worst);
  return worst;
}

TEST(TrainParity, FiftyStepsMatchPyTorchInFloat64) {
  MC_REQUIRE_TORCH();
  const Parity p = run_parity(test::temp_dir(), true);
  EXPECT_LE(compare_steps(p, 50, "float64"), 1e-4);
  // The per-epoch validation curves stay within a band: loss within 1% relative, accuracy
  // within one volume of 32, macro AUC within 0.01.
  ASSERT_EQ(p.epochs.size(), 6u);
  for (size_t e = 1; e < p.epochs.size(); ++e) {
    auto v = [&](size_t c) { return std::stod(p.epochs[e][c]); };
    std::printf("epoch %zu  val loss %.4f / %.4f  acc %.3f / %.3f  bal.acc %.3f / %.3f  AUC %.3f / %.3f\n", e,
                v(1), v(2), v(3), v(4), v(5), v(6), v(7), v(8));
    EXPECT_NEAR(v(1), v(2), 0.01 * v(2)) << "epoch " << e << " val loss";
    EXPECT_NEAR(v(3), v(4), 1.0 / 32 + 1e-9) << "epoch " << e << " val accuracy";
    EXPECT_NEAR(v(7), v(8), 0.01) << "epoch " << e << " val macro AUC";
  }
}

// float32 is held to 1e-3 relative per step while the run is well-conditioned, measured by
// PyTorch's own float32 error (its f32 replay against its f64 replay of the same batches and
// initial weights): on this tiny, mostly-background task AdamW's first steps turn
// rounding-level differences of near-zero gradients into updates of up to lr (m / sqrt(v) is
// about their sign), so any two float32 engines drift apart within a few steps, PyTorch's f32 from
// its own f64 as much as we do. Over all 50 steps ours must stay within twice PyTorch's own
// float32 error (the rule of tests/models/torch_parity_test.cpp) of the float64 reference.
TEST(TrainParity, Float32StepsMatchPyTorchWithinItsOwnFloat32Error) {
  MC_REQUIRE_TORCH();
  const std::string dir = test::temp_dir();
  const Parity p = run_parity(dir, false);
  compare_steps(p, 50, "float32");
  const auto ref = torch_replay(dir + "/f32/steps.jsonl", dir + "/f32/torch64", "float64");
  ASSERT_EQ(ref.size(), 51u);
  size_t well_conditioned = 0;  // leading steps where PyTorch's own f32 error is below 1e-4
  double ours_worst = 0, torch_worst = 0;
  std::printf("step  ours f32 vs f64 ref  torch f32 vs f64 ref\n");
  for (size_t i = 1; i <= 50; ++i) {
    const double ours = std::stod(p.steps[i][4]), t32 = std::stod(p.steps[i][5]), t64 = std::stod(ref[i][5]);
    const double e_ours = std::abs(ours - t64) / t64, e_torch = std::abs(t32 - t64) / t64;
    std::printf("%4zu  %.2e             %.2e\n", i, e_ours, e_torch);
    if (well_conditioned == i - 1 && e_torch <= 1e-4) {
      ++well_conditioned;
      EXPECT_LE(std::abs(ours - t32), 1e-3 * t32) << "step " << i << " (well-conditioned)";
    }
    ours_worst = std::max(ours_worst, e_ours);
    torch_worst = std::max(torch_worst, e_torch);
  }
  std::printf("well-conditioned leading steps: %zu; largest error against float64 over 50 steps: "
              "ours %.3g, PyTorch's float32 %.3g\n", well_conditioned, ours_worst, torch_worst);
  EXPECT_GE(well_conditioned, 3u);
  EXPECT_LE(ours_worst, std::max(1e-3, 2 * torch_worst));
}

// The float32 run where rounding is not amplified (issue 14; benchmarks/pytorch/f32_drift.py
// measures it): the same task, batches and AdamW, with lr 1e-5 instead of 1e-3. At 1e-3 the
// float32 and float64 runs of either engine part within a few steps: AdamW's first update is
// lr g / (|g| + eps), so a gradient at rounding level (1e-8 in float32, 8e-10 in float64 at one
// element of layer2.0.conv2 on step 1) moves its weight by 0.50 lr in one run and 0.08 lr in
// the other, and the weights, once apart, put ReLU inputs on the other side of the kink (4 at
// step 3, 113 at step 5, 3360 at step 6) in layers whose maps are 1^3 at 16^3 input, where one
// flip changes a whole row of a gradient. AdamW bounds every step's update by about lr, so at
// lr 1e-5 they stay small for 50 steps (measured: ours f32 vs PyTorch f32 <= 8.6e-7; either f32
// vs float64 <= 6.8e-4, parting from step 24 on as flips begin: thin, but 1e-3 holds). Each step: ours
// float32 against PyTorch's float32 and float64 replays of our batches within 1e-3, and
// PyTorch's own float32 within 1e-3 of its float64 (the setting is well-posed on its side too).
TEST(TrainParity, Float32MatchesPyTorchWhereRoundingIsNotAmplified) {
  MC_REQUIRE_TORCH();
  const std::string dir = test::temp_dir();
  const Parity p = run_parity(dir, false, {"optim.lr=1.0e-5"}, "small_lr");
  compare_steps(p, 50, "float32, AdamW lr 1e-5");
  const auto ref = torch_replay(dir + "/small_lr/steps.jsonl", dir + "/small_lr/torch64", "float64");
  ASSERT_EQ(ref.size(), 51u);
  ASSERT_EQ(p.steps.size(), 51u);
  double w32 = 0, w64 = 0, wt = 0;
  std::printf("step  ours vs torch f32  ours vs torch f64  torch f32 vs f64\n");
  for (size_t i = 1; i <= 50; ++i) {
    const double ours = std::stod(p.steps[i][4]), t32 = std::stod(p.steps[i][5]), t64 = std::stod(ref[i][5]);
    const double e32 = std::abs(ours - t32) / t32, e64 = std::abs(ours - t64) / t64, et = std::abs(t32 - t64) / t64;
    std::printf("%4zu  %.2e           %.2e           %.2e\n", i, e32, e64, et);
    EXPECT_LE(e32, 1e-3) << "step " << i << ": ours vs PyTorch float32";
    EXPECT_LE(e64, 1e-3) << "step " << i << ": ours vs PyTorch float64";
    EXPECT_LE(et, 1e-3) << "step " << i << ": PyTorch float32 vs float64";
    w32 = std::max(w32, e32);
    w64 = std::max(w64, e64);
    wt = std::max(wt, et);
  }
  std::printf("largest over 50 steps: ours vs PyTorch f32 %.3g, ours vs PyTorch f64 %.3g, PyTorch f32 vs "
              "f64 %.3g\n", w32, w64, wt);
}

}  // namespace
}  // namespace mc::pipeline
