// mc_train data-parallel on the CPU path: `mpirun -np 2 mc_train` with synchronised batch norm
// must give the weights of one process with the same global batch (floating-point order aside),
// and a rank that dies must end the job with an error, not a hang.
#include <unistd.h>
#include <sys/wait.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "e2e_data.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace mc {
namespace {

std::string which(const std::string& name) {
  for (const char* d : {"/usr/bin/", "/usr/local/bin/", "/bin/"})
    if (::access((std::string(d) + name).c_str(), X_OK) == 0) return std::string(d) + name;
  return "";
}

struct Job {
  int code = -1;
  std::string out;
  double seconds = 0;
};

Job run(const std::string& cmd) {
  const auto t0 = std::chrono::steady_clock::now();
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  Job j;
  if (!p) return j;
  std::array<char, 4096> buf;
  while (size_t n = fread(buf.data(), 1, buf.size(), p)) j.out.append(buf.data(), n);
  const int st = pclose(p);
  j.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  j.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return j;
}

std::string train_cmd(const std::string& out, const std::vector<std::string>& extra) {
  std::string cmd = std::string(MC_BINARY_DIR) + "/apps/mc_train --config " + test::demo_config_path();
  for (const auto& o : test::e2e_overrides(out)) cmd += " " + o;
  for (const auto& o : extra) cmd += " " + o;
  return cmd;
}

std::string mpirun2() {
  return "timeout 300 " + which("mpirun") +
         " --allow-run-as-root --oversubscribe --bind-to none -np 2 -x OMP_NUM_THREADS=1 ";
}

#ifdef MC_HAVE_MPI
constexpr bool kMpi = true;
#else
constexpr bool kMpi = false;
#endif

// SGD: AdamW's first steps move every weight by ~lr * sign(g), so rounding-level differences in
// near-zero gradients would flip whole steps; SGD's update is proportional to the gradient.
// Two steps: these runs are chaotic (batch norm over 8 values per channel in layer4 at 32^3):
// a rounding-level difference (6e-8 after step 1) grows ~10x per step, measured with a driver
// that steps both in one process — 5.5e-7 after 2 steps, 5e-2 after 13. The same happens
// between two single-process runs with different summation orders. The init is timm's
// zero_init_last, as this bound was measured with: under it the residual branches' weights get
// no gradient at the first step, so fewer weights carry the rounding into step 2. With the
// default init (every weight moving) the same runs differ by 5.9e-8 after one step and by
// 1.7e-5 after two: the same chaos, faster, not a data-parallel fault.
const std::vector<std::string> kRun = {"train.epochs=1", "train.epoch_samples=16",
                                       "schedule.warmup_epochs=0", "train.sync_bn=true", "optim.name=sgd",
                                       "optim.lr=0.01", "optim.momentum=0.9", "augment.enabled=false",
                                       "output.checkpoint_every=0", "model.zero_init_last=true"};

TEST(DistTrain, TwoRanksEqualOneProcessWithTheSameGlobalBatch) {
  if (!kMpi || which("mpirun").empty()) GTEST_SKIP() << "no MPI in this build or no mpirun";
  test::e2e_prepare();
  const std::string dir = test::temp_dir();
  Job one = run("OMP_NUM_THREADS=1 " + train_cmd(dir + "/one", kRun));
  ASSERT_EQ(one.code, 0) << one.out;
  Job two = run(mpirun2() + train_cmd(dir + "/two", kRun));
  ASSERT_EQ(two.code, 0) << two.out;
  EXPECT_NE(two.out.find("data parallel: 2 ranks (mpi), batch 4 per rank = 8 global"), std::string::npos)
      << two.out;
  EXPECT_NE(two.out.find("synchronised batch norm"), std::string::npos);

  // Weights within 1e-5 of the model's weight scale (a per-tensor ratio would measure the tiny
  // updates of tensors that start at zero, e.g. BN biases, instead of the weights); running
  // statistics within 1e-5 per tensor.
  StateDict a = io::load_safetensors(dir + "/one/last.safetensors"), b = io::load_safetensors(dir + "/two/last.safetensors");
  ASSERT_EQ(a.size(), b.size());
  double scale = 0, worst_w = 0, worst_s = 0;
  for (auto& [k, t] : a)
    if (is_floating(t.dtype()) && k.find("running") == std::string::npos)
      for (double v : t.to_vector<double>()) scale = std::max(scale, std::abs(v));
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].first, b[i].first);
    if (!is_floating(a[i].second.dtype())) continue;
    if (a[i].first.find("running") != std::string::npos) {
      worst_s = std::max(worst_s, test::rel_error(b[i].second, a[i].second));
      continue;
    }
    auto u = a[i].second.to_vector<double>(), v = b[i].second.to_vector<double>();
    double d = 0;
    for (size_t j = 0; j < u.size(); ++j) d = std::max(d, std::abs(u[j] - v[j]));
    EXPECT_LE(d / scale, 1e-5) << a[i].first;
    worst_w = std::max(worst_w, d / scale);
  }
  EXPECT_LE(worst_s, 1e-5);
  std::printf("2 ranks vs 1 process after 2 SGD steps (sync BN): weights %.2e of their scale, "
              "running statistics %.2e\n", worst_w, worst_s);
}

TEST(DistTrain, AKilledRankEndsTheJobWithAnError) {
  if (!kMpi || which("mpirun").empty()) GTEST_SKIP() << "no MPI in this build or no mpirun";
  test::e2e_prepare();
  const std::string run_dir = test::temp_dir() + "/run";
  // A whole epoch (13 steps): rank 1 is killed a second after rank 0 has written the run's
  // config.yaml (it does so once its inputs check out), i.e. in the middle of training. Rank 0
  // must not wait forever in a collective.
  std::vector<std::string> args;
  for (const auto& a : kRun)
    if (a.rfind("train.epoch_samples", 0) != 0) args.push_back(a);
  const std::string cmd = mpirun2() + "bash -c '" + train_cmd(run_dir, args) +
                          " & pid=$!; if [ \"$OMPI_COMM_WORLD_RANK\" = 1 ]; then "
                          "while [ ! -f " + run_dir + "/config.yaml ]; do sleep 0.2; done; sleep 1; "
                          "kill -9 $pid; fi; wait $pid'";
  Job j = run(cmd);
  EXPECT_TRUE(std::filesystem::exists(run_dir + "/config.yaml")) << "training never started:\n" << j.out;
  EXPECT_FALSE(std::filesystem::exists(run_dir + "/last.safetensors")) << "the epoch finished before the kill";
  EXPECT_NE(j.code, 0) << j.out;
  EXPECT_LT(j.seconds, 120) << j.out;
  std::printf("killed rank: job ended with exit %d after %.1f s\n", j.code, j.seconds);
}

}  // namespace
}  // namespace mc
