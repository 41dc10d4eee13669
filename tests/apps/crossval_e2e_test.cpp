// Cross-validation as one run (pipeline/crossval.h), end to end on the CPU on a small generated
// data set (16^3 cubes, resnet10, 2 epochs): an interrupted fold resumes, the pooled
// out-of-fold report covers every pooled subject exactly once and each by the fold that never
// saw it, a rerun of a finished run trains nothing and leaves the checkpoints as they were,
// and the fold ensemble is evaluated on the held-out test split and predicts raw scans.
#include <sys/wait.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "eval/predictions.h"
#include "io/atomic_file.h"
#include "io/cache.h"
#include "io/checkpoint.h"
#include "io/synthetic.h"
#include "pipeline/crossval.h"
#include "pipeline/evaluate.h"
#include "pipeline/predict.h"
#include "pipeline/prep_config.h"
#include "e2e_data.h"
#include "test_util.h"

namespace mc {
namespace {
namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::set<std::string> cache_ids(const std::string& path) {
  std::set<std::string> ids;
  const io::Cache c = io::Cache::open(path);
  for (const io::CacheRecord& r : c.records()) ids.insert(r.id);
  return ids;
}

// The pooled report's table holds the train + val caches' subjects, each once; returns them.
std::set<std::string> expect_report_pools_train_and_val(const pipeline::Config& cfg, const std::string& dir) {
  std::set<std::string> pool = cache_ids(cfg.data.cache_dir + "/train.safetensors");
  const std::set<std::string> val = cache_ids(cfg.data.cache_dir + "/val.safetensors");
  pool.insert(val.begin(), val.end());
  const eval::PredictionTable pooled = eval::read_predictions_csv(dir + "/cv/report/predictions.csv");
  EXPECT_EQ(pooled.size(), int64_t(pool.size()));
  EXPECT_EQ(std::set<std::string>(pooled.ids.begin(), pooled.ids.end()), pool);
  return pool;
}

// 48 generated subjects prepared at 16^3 (ratio split: train, val, test) and the run config.
pipeline::Config small_run(const std::string& dir, const std::vector<std::string>& extra = {}) {
  io::SyntheticOptions so;
  so.count = 48;
  so.class_mix = {0.3, 0.3, 0.4};  // every class in every fold's training split
  so.size = 32;
  so.seed = 21;
  io::write_synthetic_dataset(dir + "/data", so, nullptr);
  std::vector<std::string> ov = {
      "data.raw.ct_dir=" + dir + "/data/ct", "data.raw.seg_dir=" + dir + "/data/seg",
      "data.raw.labels_csv=" + dir + "/data/labels.csv", "data.cache_dir=" + dir + "/data/cache",
      "output.dir=" + dir + "/cv", "train.device=cpu", "data.num_workers=1", "data.volume=16",
      "train.epochs=2", "schedule.warmup_epochs=0", "train.batch_size=8", "eval.bootstrap=50",
      "train.all_folds=true", "data.split.folds=3"};
  ov.insert(ov.end(), extra.begin(), extra.end());
  const pipeline::Config cfg = pipeline::load_config(test::demo_config_path(), ov);
  io::PrepOptions p = pipeline::prep_options_from_config(cfg);
  p.progress = false;
  if (io::run_prep(p).failed != 0) throw Error("small_run: subjects failed to prepare");
  return cfg;
}

TEST(CrossValE2E, ThreeFoldsResumePoolEveryoneOnceAndEnsemble) {
  const std::string dir = test::temp_dir();
  const pipeline::Config cfg = small_run(dir);

  // 1. Stopped after one epoch of fold 0: no report yet, fold 0 resumable.
  std::ostringstream log;
  pipeline::TrainHooks hooks;
  hooks.out = &log;
  hooks.max_epochs_this_call = 1;
  const pipeline::CrossValSummary s1 = pipeline::train_folds(cfg, hooks);
  EXPECT_TRUE(s1.interrupted);
  EXPECT_EQ(s1.trained, std::vector<int>{0});
  EXPECT_TRUE(fs::exists(dir + "/cv/fold_0/last.safetensors"));
  EXPECT_FALSE(fs::exists(dir + "/cv/fold_0/done.json"));
  EXPECT_FALSE(fs::exists(dir + "/cv/report/report.md"));
  EXPECT_THROW(pipeline::fold_checkpoints(dir + "/cv"), Error);  // not finished: no ensemble yet

  // 2. The rerun resumes fold 0 (to its second epoch), trains folds 1 and 2, and reports.
  hooks.max_epochs_this_call = -1;
  const pipeline::CrossValSummary s2 = pipeline::train_folds(cfg, hooks);
  ASSERT_FALSE(s2.interrupted) << log.str();
  EXPECT_EQ(s2.resumed, std::vector<int>{0});
  EXPECT_EQ(s2.trained, (std::vector<int>{1, 2}));
  EXPECT_EQ(io::load_training_state(dir + "/cv/fold_0/last.state.safetensors", dir + "/cv/fold_0/last.safetensors").epoch, 2);
  EXPECT_NE(log.str().find("fold 0: resuming"), std::string::npos) << log.str();

  // Every subject of the pooled train + val caches is out of fold exactly once, in the report's
  // table, and never in the train or val cache of the fold that predicted it.
  const std::set<std::string> pool = expect_report_pools_train_and_val(cfg, dir);
  EXPECT_EQ(s2.pooled_subjects, int64_t(pool.size()));
  std::multiset<std::string> oof_all;
  for (int k = 0; k < 3; ++k) {
    const std::string d = dir + "/cv/fold_" + std::to_string(k) + "/data/";
    const std::set<std::string> oof = cache_ids(d + "oof.safetensors");
    oof_all.insert(oof.begin(), oof.end());
    for (const char* seen : {"train.safetensors", "val.safetensors"})
      for (const std::string& id : cache_ids(d + seen)) EXPECT_EQ(oof.count(id), 0u) << id << " fold " << k << " " << seen;
    EXPECT_EQ(eval::read_predictions_csv(dir + "/cv/fold_" + std::to_string(k) + "/oof_predictions.csv").size(),
              int64_t(oof.size()));
  }
  EXPECT_EQ(oof_all.size(), pool.size());
  for (const auto& id : pool) EXPECT_EQ(oof_all.count(id), 1u) << id;
  const std::string md = slurp(dir + "/cv/report/report.md");
  EXPECT_NE(md.find("## Cross-validation: 3 folds"), std::string::npos);
  EXPECT_NE(md.find("mean +- SD"), std::string::npos);
  EXPECT_NE(md.find("[", md.find("balanced")), std::string::npos);  // bootstrap intervals
  ASSERT_TRUE(s2.report.run.crossval.has_value());
  int64_t fold_n = 0;
  for (const eval::FoldResult& f : s2.report.run.crossval->folds) fold_n += f.n;
  EXPECT_EQ(fold_n, int64_t(pool.size()));

  // 3. A finished run: nothing trained again, checkpoints untouched (an atomic rewrite would
  // give them a new modification time).
  std::map<std::string, fs::file_time_type> before;
  for (int k = 0; k < 3; ++k)
    for (const char* f : {"best.safetensors", "best.state.safetensors", "last.safetensors", "last.state.safetensors",
                          "done.json", "data/train.safetensors"}) {
      const fs::path q = fs::path(dir) / "cv" / ("fold_" + std::to_string(k)) / f;
      before[q.string()] = fs::last_write_time(q);
    }
  const fs::file_time_type report_time = fs::last_write_time(dir + "/cv/report/report.json");
  const pipeline::CrossValSummary s3 = pipeline::train_folds(cfg, hooks);
  EXPECT_EQ(s3.skipped, (std::vector<int>{0, 1, 2}));
  EXPECT_TRUE(s3.trained.empty() && s3.resumed.empty());
  EXPECT_EQ(s3.checkpoints.size(), 3u);
  for (const auto& [path, t] : before) EXPECT_TRUE(fs::last_write_time(path) == t) << path;
  EXPECT_TRUE(fs::last_write_time(dir + "/cv/report/report.json") == report_time);

  // Another config in the same folder is refused, naming the key.
  pipeline::Config other = cfg;
  other.optim.lr *= 2;
  test::expect_error([&] { pipeline::train_folds(other, hooks); }, {"another config", "optim.lr"});

  // 4. The fold ensemble on the held-out test split (train.all_folds and no --checkpoint).
  pipeline::ReportOptions ro;
  ro.progress = false;
  const eval::Report r = pipeline::write_model_report(cfg, ro);
  EXPECT_EQ(int64_t(r.headline.rows.at(0).metrics.num_samples), io::Cache::open(cfg.data.cache_dir + "/test.safetensors").size());
  EXPECT_NE(r.run.title.find("ensemble of 3"), std::string::npos) << r.run.title;
  EXPECT_TRUE(fs::exists(dir + "/cv/report_ensemble_test/report.md"));

  // 5. mc_predict with the folder: the three fold models' mean equals the mean of the three.
  const std::string id = *pool.begin();
  auto predict = [&](const std::string& checkpoint, std::vector<std::string> ensemble) {
    pipeline::PredictCommand pc;
    pc.checkpoint = checkpoint;
    pc.ensemble = std::move(ensemble);
    pc.ct = dir + "/data/ct/" + id + ".nii.gz";
    pc.seg = dir + "/data/seg/" + id + ".nii.gz";
    pc.progress = false;
    std::ostringstream out, err;
    EXPECT_EQ(pipeline::run_predict(pc, out, err), 0) << err.str();
    return std::make_pair(out.str(), err.str());
  };
  const auto folder = predict(dir + "/cv", {});
  EXPECT_NE(folder.second.find("ensemble of 3 models"), std::string::npos) << folder.second;
  const auto listed = predict(s3.checkpoints[0], {s3.checkpoints[1], s3.checkpoints[2]});
  EXPECT_EQ(folder.first, listed.first);
  EXPECT_NE(folder.first.find("\"id\": \"" + id + "\""), std::string::npos) << folder.first;
}

// One fold per process: two mc_train processes train folds 2 and 0 at the same time into one
// output.dir; neither writes a report (fold 1 is not done) and each says which folds it waits
// for; the call that finishes fold 1 writes the pooled report over every subject once.
TEST(CrossValE2E, OneFoldPerProcessAtOnceThenTheLastWritesTheReport) {
  const std::string dir = test::temp_dir();
  const pipeline::Config cfg = small_run(dir);
  const std::string yaml = dir + "/run.yaml";
  io::write_atomic(yaml, pipeline::to_yaml(cfg));
  struct Proc {
    FILE* pipe;
    std::string out;
    int code = -1;
  };
  std::vector<Proc> procs;
  for (int k : {2, 0}) {
    const std::string cmd = std::string(MC_BINARY_DIR) + "/apps/mc_train --config " + yaml + " --folds 3 --fold " +
                            std::to_string(k) + " 2>&1";
    procs.push_back({popen(cmd.c_str(), "r")});  // both run from here on
    ASSERT_NE(procs.back().pipe, nullptr);
  }
  for (Proc& p : procs) {
    std::array<char, 4096> buf;
    while (size_t n = fread(buf.data(), 1, buf.size(), p.pipe)) p.out.append(buf.data(), n);
    const int status = pclose(p.pipe);
    p.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  for (const Proc& p : procs) {  // each waits for fold 1 at least, and names it
    EXPECT_EQ(p.code, 0) << p.out;
    EXPECT_TRUE(std::regex_search(p.out, std::regex("is finished; fold\\(s\\) [0-9, ]*1"))) << p.out;
  }
  EXPECT_FALSE(fs::exists(dir + "/cv/report/report.md"));
  for (int k : {0, 2}) EXPECT_TRUE(fs::exists(dir + "/cv/fold_" + std::to_string(k) + "/done.json")) << k;
  EXPECT_FALSE(fs::exists(dir + "/cv/fold_1/last.safetensors"));  // nobody touched fold 1

  std::ostringstream log;
  pipeline::TrainHooks hooks;
  hooks.out = &log;
  test::expect_error([&] { pipeline::train_folds(cfg, hooks, 3); }, {"fold 3", "3 folds", "0 to 2"});
  const pipeline::CrossValSummary s = pipeline::train_folds(cfg, hooks, 1);
  ASSERT_FALSE(s.interrupted) << log.str();
  EXPECT_EQ(s.trained, std::vector<int>{1});
  EXPECT_EQ(s.skipped, (std::vector<int>{0, 2}));
  EXPECT_TRUE(s.waiting.empty());
  const std::set<std::string> pool = expect_report_pools_train_and_val(cfg, dir);
  EXPECT_EQ(s.checkpoints.size(), 3u);
}

// A regression head: the pooled report scores the predicted T-scores (MAE and the derived
// classes), every pooled subject once; the ensemble averages the T-scores on the test split.
TEST(CrossValE2E, RegressionHeadPoolsTScores) {
  const std::string dir = test::temp_dir();
  const pipeline::Config cfg = small_run(dir, {"model.head=regression", "eval.select_by=mae", "train.epochs=1"});
  std::ostringstream log;
  pipeline::TrainHooks hooks;
  hooks.out = &log;
  const pipeline::CrossValSummary s = pipeline::train_folds(cfg, hooks);
  ASSERT_FALSE(s.interrupted) << log.str();
  ASSERT_TRUE(s.report.regression.has_value());
  const size_t pool = cache_ids(cfg.data.cache_dir + "/train.safetensors").size() +
                      cache_ids(cfg.data.cache_dir + "/val.safetensors").size();
  EXPECT_EQ(s.report.regression->n, int64_t(pool));
  EXPECT_EQ(s.pooled_subjects, int64_t(pool));
  EXPECT_TRUE(std::isfinite(s.report.regression->mae.value));
  ASSERT_TRUE(s.report.run.crossval.has_value());
  for (const eval::FoldResult& f : s.report.run.crossval->folds) EXPECT_TRUE(std::isfinite(f.mae)) << f.fold;
  EXPECT_FALSE(s.report.calibration.has_value());  // hard derived classes: nothing to calibrate
  EXPECT_NE(slurp(dir + "/cv/fold_0/oof_predictions.csv").rfind("id,tscore\n", 0), std::string::npos);
  pipeline::ReportOptions ro;
  ro.progress = false;
  const eval::Report r = pipeline::write_model_report(cfg, ro);
  ASSERT_TRUE(r.regression.has_value());
  EXPECT_EQ(r.regression->n, io::Cache::open(cfg.data.cache_dir + "/test.safetensors").size());
}

}  // namespace
}  // namespace mc
