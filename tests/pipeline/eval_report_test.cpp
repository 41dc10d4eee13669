// mc_eval's report on a tiny generated run: caches written with io/cache.h, a resnet10 checkpoint,
// a manifest and a run log. The report's numbers must equal engine/metrics on the predictions it
// wrote, its CSV must read back, its pictures must be well-formed, and the HU baseline must come
// from the manifest's train split.
#include <sys/wait.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "pipeline/eval_cli.h"
#include "pipeline/train.h"
#include "pipeline/train_setup.h"
#include "io/cache.h"
#include "io/checkpoint.h"
#include "io/prep.h"
#include "io/runlog.h"
#include "losses/posthoc.h"
#include "pipeline/evaluate.h"
#include "pipeline/model.h"
#include "test_util.h"
#include "xml_check.h"

namespace mc::pipeline {
namespace {
namespace fs = std::filesystem;

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

#define EXPECT_HAS(s, part) EXPECT_NE((s).find(part), std::string::npos) << "missing '" << (part) << "' in:\n" << (s)

// The first "name": {"value": X in a JSON text (the headline evaluation comes first).
double json_value(const std::string& json, const std::string& name) {
  const std::string key = "\"" + name + "\": {\"value\": ";
  const size_t p = json.find(key);
  EXPECT_NE(p, std::string::npos) << name;
  return p == std::string::npos ? NAN : std::strtod(json.c_str() + p + key.size(), nullptr);
}

double metric_value(const ClassificationMetrics& m, const std::string& name) {
  for (const auto& [n, v] : m.named())
    if (n == name) return v.value;
  return NAN;
}

// Low HU for osteoporosis, high for normal, apart by class (so every rule has something to find).
double median_hu(int64_t label, size_t i) { return 30.0 + 80.0 * double(label) + 5.0 * double(i % 3); }

struct TinyRun {
  std::string dir, checkpoint;
  Config cfg;
};

TinyRun make_tiny_run(const std::string& dir, bool manifest = true) {
  TinyRun s;
  s.dir = dir;
  const std::string cache = dir + "/cache", run = dir + "/run";
  fs::create_directories(cache);
  const std::map<std::string, std::vector<int64_t>> splits = {
      {"train", {0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2}},  // counts 2 / 5 / 8
      {"val", {0, 1, 2, 1, 2, 2}},
      {"test", {0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2}}};
  std::vector<io::ManifestRow> rows;
  uint64_t seed = 1;
  for (const auto& [split, labels] : splits) {
    std::vector<io::CacheRecord> records;
    std::vector<Tensor> volumes;
    for (size_t i = 0; i < labels.size(); ++i) {
      records.push_back({split + std::to_string(i), labels[i]});
      volumes.push_back(test::uniform({1, 16, 16, 16}, seed++, 0, 1));
      io::ManifestRow m;
      m.id = records.back().id, m.label = labels[i], m.split = split, m.status = "ok";
      m.stats = {1000, 5.0, median_hu(labels[i], i) + 10, median_hu(labels[i], i)};
      rows.push_back(m);
    }
    io::write_cache(cache + "/" + split + ".safetensors", records, volumes, {});
  }
  io::ManifestRow failed;  // rows that are not "ok" never reach the baseline
  failed.id = "broken", failed.label = 0, failed.split = "test", failed.status = "failed";
  rows.push_back(failed);
  if (manifest) io::write_manifest(cache + "/manifest.csv", rows);

  s.cfg = parse_config("data:\n  cache_dir: " + cache + "\n  volume: 16\n  num_workers: 0\n"
                       "model:\n  name: resnet10\n"
                       "posthoc:\n  tau2: 0.5\n  sweep: [1.0, 0.5]\n"
                       "train:\n  device: cpu\n  batch_size: 4\n  seed: 7\n"
                       "eval:\n  bootstrap: 50\n"
                       "output:\n  dir: " + run + "\n",
                       "report_test.yaml");
  auto model = build_model(s.cfg);
  io::TrainingState st;
  st.epoch = 3;
  st.optimizer = "adamw";
  st.config_yaml = to_yaml(s.cfg);
  s.checkpoint = io::save_checkpoint(run, "best", model->state_dict(), st);
  io::RunLog log(run);
  for (int e = 1; e <= 4; ++e)
    log.append({{"epoch", e}, {"lr", 1e-3}, {"train_loss", 1.0 / e}, {"val_loss", 1.1 / e},
                {"val_accuracy", 0.3 + 0.1 * e}, {"val_balanced_accuracy", 0.3 + 0.05 * e},
                {"val_auc_macro", e == 2 ? NAN : 0.5 + 0.05 * e}, {"val_f1_weighted", 0.4}, {"selected", 0.5}});
  return s;
}

TEST(EvalReport, EndToEndMatchesEngineMetricsAndWritesEveryFile) {
  const TinyRun s = make_tiny_run(test::temp_dir());
  ReportOptions o;
  o.out_dir = s.dir + "/report";
  const eval::Report r = write_model_report(s.cfg, o);

  for (const char* f : {"report.md", "report.json", "predictions.csv", "roc.svg", "confusion.svg",
                        "tau2_sweep.svg", "training_curves.svg"})
    EXPECT_TRUE(fs::exists(o.out_dir + "/" + f)) << f;
  EXPECT_EQ(r.run.epoch, 3);
  EXPECT_EQ(r.run.prior, (std::vector<double>{2, 5, 8}));  // the train cache's class counts
  EXPECT_EQ(r.run.sweep, (std::vector<double>{1.0, 0.5, 0.0}));

  // predictions.csv reads back: the test cache's subjects in order, with their labels.
  const eval::PredictionTable p = eval::read_predictions_csv(r.predictions);
  ASSERT_EQ(p.size(), 12);
  EXPECT_EQ(p.ids.front(), "test0");
  EXPECT_EQ(p.labels, io::Cache::open(s.dir + "/cache/test.safetensors").labels());
  EXPECT_EQ(p.num_classes(), 3);

  // Every number equals engine/metrics on those predictions, adjusted with the train prior.
  const Tensor labels = Tensor::from(p.labels, {p.size()});
  const Tensor probs = losses::posthoc_probabilities(Tensor::from(p.scores, {p.size(), 3}), {2, 5, 8}, 0.5);
  const ClassificationMetrics want = classification_metrics(labels, probs);
  const auto got = r.headline.rows.at(0).metrics.named();
  const auto expected = want.named();
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].second.defined, expected[i].second.defined) << got[i].first;
    EXPECT_EQ(got[i].second.value, expected[i].second.value) << got[i].first;
  }
  EXPECT_EQ(r.headline.rows.at(0).metrics.confusion, want.confusion);
  const std::string json = slurp(r.json);
  for (const char* m : {"accuracy", "balanced_accuracy", "auc_macro", "f1_weighted"})
    EXPECT_NEAR(json_value(json, m), metric_value(want, m), 1e-15) << m;
  const BootstrapResult ci = bootstrap_ci(labels, probs, {50, 7, 0.95});
  EXPECT_EQ(r.headline.rows.at(0).ci->at("balanced_accuracy").lo, ci.at("balanced_accuracy").lo);
  for (const char* key : {"\"generator\": \"mc_eval\"", "\"prior\": [2, 5, 8], \"prior_source\": \"train cache ", "\"epoch\": 3",
                          "\"hu_baseline\": {", "\"available\": true", "\"tau2_sweep\": \"tau2_sweep.svg\"",
                          "\"roi\": \"whole L1 mask"})
    EXPECT_HAS(json, key);

  // The sweep: one row per tau2, each equal to the engine's numbers at that tau2.
  ASSERT_TRUE(r.sweep);
  ASSERT_EQ(r.sweep->rows.size(), 3u);
  const Tensor raw = losses::posthoc_probabilities(Tensor::from(p.scores, {p.size(), 3}), {2, 5, 8}, 0.0);
  EXPECT_EQ(r.sweep->rows[2].metrics.balanced_accuracy.value,
            classification_metrics(labels, raw).balanced_accuracy.value);

  // Pictures: well-formed, with the expected series.
  const std::string roc = slurp(r.roc), sweep = slurp(r.sweep_chart), curves = slurp(r.training_curves),
                    confusion = slurp(r.confusion);
  for (const std::string* svg : {&roc, &sweep, &curves, &confusion}) EXPECT_EQ(test::xml_problem(*svg), "");
  for (const char* c : {"osteoporosis  AUC", "osteopenia  AUC", "normal  AUC"}) EXPECT_HAS(roc, c);
  for (const char* c : {">balanced accuracy</text>", ">ROC AUC (macro)</text>", ">0 (none)</text>", ">reported</text>"})
    EXPECT_HAS(sweep, c);
  for (const char* c : {">train</text>", ">validation</text>", "checkpoint (epoch 3)"}) EXPECT_HAS(curves, c);
  EXPECT_HAS(confusion, "n = 4");

  // The Markdown: every section, pictures as relative links, the command that reproduces it.
  const std::string md = slurp(r.markdown);
  for (const char* c : {"## Metrics", "## Per class", "## Confusion matrix", "## Post-hoc logit adjustment sweep",
                        "## HU screening baseline", "](roc.svg)", "](confusion.svg)", "](tau2_sweep.svg)",
                        "](training_curves.svg)", "--prior 2,5,8", "| osteoporosis | 3 |",
                        // HU rows name the region they measured (this manifest has the whole mask only)
                        "| measured on |", "| whole L1 mask (vertebra label", "whole-mask median HU < 90.25"})
    EXPECT_HAS(md, c);
  EXPECT_HAS(r.terminal, "balanced_accuracy");
}

TEST(EvalReport, HuBaselineFitsOnTrainAndScoresTheSplit) {
  const TinyRun s = make_tiny_run(test::temp_dir());
  const eval::HuBaseline h = eval::hu_baseline(s.dir + "/cache/manifest.csv", "test", {20, 0, 0.95});
  ASSERT_TRUE(h.available) << h.note;
  EXPECT_EQ(h.n_train, 15);
  EXPECT_EQ(h.n_eval, 12);  // the failed row is left out
  ASSERT_EQ(h.rules.size(), 3u);
  const eval::HuRule& ts = h.rules[0];
  EXPECT_TRUE(ts.binary);
  EXPECT_EQ(ts.thresholds, (std::vector<double>{90.25}));
  EXPECT_EQ(ts.metrics.sensitivity[0].value, 1.0);  // osteoporosis medians are 30..40 HU
  EXPECT_EQ(ts.metrics.specificity[0].value, 1.0);
  EXPECT_EQ(ts.auc_osteoporosis.value, 1.0);
  // The fitted pair sits midway between the train split's classes (medians 30-35 | 110-120 |
  // 190-200 there; the test split's osteoporosis medians reach 40).
  const eval::HuRule& median = h.rules[2];
  EXPECT_EQ(median.feature, "median_hu");
  EXPECT_EQ(median.thresholds, (std::vector<double>{72.5, 155}));
  EXPECT_EQ(median.metrics.accuracy.value, 1.0);
  EXPECT_EQ(h.rules[1].thresholds, (std::vector<double>{82.5, 165}));  // mean = median + 10
  ASSERT_TRUE(median.ci);

  const eval::HuBaseline none = eval::hu_baseline(s.dir + "/cache/missing.csv", "test", {});
  EXPECT_FALSE(none.available);
  EXPECT_HAS(none.note, "no manifest");
  const eval::HuBaseline empty = eval::hu_baseline(s.dir + "/cache/manifest.csv", "fold3", {});
  EXPECT_FALSE(empty.available);
  EXPECT_HAS(empty.note, "fold3");
}

TEST(EvalReport, FitThresholdsMaximisesBalancedAccuracy) {
  // Class 0 is rare: plain accuracy would sacrifice it, balanced accuracy must not.
  const std::vector<double> x = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  const std::vector<int64_t> y = {0, 1, 1, 1, 1, 2, 2, 2, 2, 2};
  EXPECT_EQ(eval::fit_thresholds(x, y, 3), (std::vector<double>{1.5, 5.5}));
  EXPECT_EQ(eval::threshold_class(1.5, {1.5, 5.5}), 1);
  EXPECT_EQ(eval::threshold_class(-1, {1.5, 5.5}), 0);
  EXPECT_EQ(eval::threshold_class(9, {1.5, 5.5}), 2);
  // An absent class gets an empty interval (+-infinity or two equal cuts), never a crash.
  const auto t = eval::fit_thresholds({1, 2, 3, 4}, {0, 0, 2, 2}, 3);
  EXPECT_EQ(t[0], 2.5);
  EXPECT_EQ(eval::threshold_class(3, t), 2);
  EXPECT_THROW(eval::fit_thresholds({1}, {3}, 3), Error);
}

TEST(EvalReport, BadInputsAreNamed) {
  const TinyRun s = make_tiny_run(test::temp_dir(), /*manifest=*/false);
  ReportOptions o;
  o.out_dir = s.dir + "/report";
  auto error = [&](const Config& cfg, const ReportOptions& ro) {
    try {
      write_model_report(cfg, ro);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  ReportOptions missing = o;
  missing.checkpoint = s.dir + "/run/nope.safetensors";
  EXPECT_HAS(error(s.cfg, missing), "nope.safetensors' not found");
  ReportOptions split = o;
  split.split = "testing";
  EXPECT_HAS(error(s.cfg, split), "unknown split 'testing' (allowed: test, val, train)");
  Config no_cache = s.cfg;
  no_cache.data.test_cache = s.dir + "/elsewhere/test.safetensors";
  EXPECT_HAS(error(no_cache, o), "elsewhere/test.safetensors' not found: run mc_prep");
  Config other_model = s.cfg;
  other_model.model.name = Config::Model::Name::ResNet18;
  EXPECT_HAS(error(other_model, o), "does not fit the configured model resnet18");

  // No manifest: the report is still written and says why the baseline is missing.
  const eval::Report r = write_model_report(s.cfg, o);
  EXPECT_FALSE(r.hu.available);
  EXPECT_HAS(slurp(r.markdown), "no manifest at " + s.dir + "/cache/manifest.csv");
  EXPECT_HAS(slurp(r.json), "\"available\": false");
}

// Issue 11: a label -1 (unknown) in the training cache failed mid-training naming nothing; now
// mc_train refuses at start, naming the cache and the subjects.
TEST(EvalReport, UnknownLabelInTheTrainingCacheIsRefusedNamingSubjects) {
  const TinyRun s = make_tiny_run(test::temp_dir(), false);
  std::vector<io::CacheRecord> records;
  std::vector<Tensor> volumes;
  for (int64_t i = 0; i < 6; ++i) {
    records.push_back({"train" + std::to_string(i), i == 4 ? -1 : i % 3});
    volumes.push_back(test::uniform({1, 16, 16, 16}, 50 + uint64_t(i), 0, 1));
  }
  const std::string train_cache = s.dir + "/cache/train.safetensors";
  io::write_cache(train_cache, records, volumes, {});
  test::expect_error([&] { train(s.cfg, false); }, {train_cache, "1 subject(s) have no label", "train4"});
}

// Issue 11: mc_eval --bootstrap 1e11 ran 47 s, then std::bad_alloc; now the option's bound.
TEST(EvalReport, BootstrapOptionIsBounded) {
  for (const char* n : {"100000000000", "1000001"}) {
    test::expect_error([&] { parse_eval_command({"--predictions", "p.csv", "--bootstrap", n}); },
                       {"--bootstrap", n, "maximum 1000000"});
  }
  EXPECT_EQ(parse_eval_command({"--predictions", "p.csv", "--bootstrap", "1000000"}).eval.bootstrap.resamples, 1000000);
}

// mc_eval --ensemble: more checkpoints (or cross-validation folders) with --config only.
TEST(EvalReport, EnsembleOptionGoesWithConfig) {
  const EvalCommand c = parse_eval_command({"--config", "r.yaml", "--checkpoint", "runs/cv", "--ensemble", "a.safetensors", "b.safetensors"});
  EXPECT_EQ(c.report.checkpoint, "runs/cv");
  EXPECT_EQ(c.report.ensemble, (std::vector<std::string>{"a.safetensors", "b.safetensors"}));
  test::expect_error([] { parse_eval_command({"--predictions", "p.csv", "--ensemble", "a.safetensors"}); },
                     {"--ensemble", "need --config"});
}

// mc_eval --predictions of a binary table: --val-predictions, --positive, --target-sensitivity;
// they are --predictions options, and a table that is not binary refuses them.
TEST(EvalReport, ValidationPredictionsGoWithBinaryTables) {
  const EvalCommand c = parse_eval_command(
      {"--predictions", "t.csv", "--val-predictions", "v.csv", "--positive", "mass", "--target-sensitivity", "0.8"});
  EXPECT_EQ(c.val_predictions, "v.csv");
  EXPECT_EQ(c.positive, "mass");
  EXPECT_EQ(c.target_sensitivity, 0.8);
  EXPECT_EQ(parse_eval_command({"--predictions", "t.csv"}).target_sensitivity, 0.9);
  test::expect_error([] { parse_eval_command({"--config", "r.yaml", "--val-predictions", "v.csv"}); },
                     {"--val-predictions is for --predictions"});
  EXPECT_THROW(parse_eval_command({"--predictions", "t.csv", "--target-sensitivity", "1.5"}), Error);
  const std::string dir = test::temp_dir();
  std::ofstream(dir + "/three.csv") << "id,label,a,b,c\ns0,0,0.7,0.2,0.1\ns1,1,0.2,0.7,0.1\ns2,2,0.1,0.2,0.7\n";
  std::ofstream(dir + "/two.csv") << "id,label,normal,mass\ns0,0,0.8,0.2\ns1,1,0.3,0.7\ns2,1,0.6,0.4\ns3,0,0.9,0.1\n";
  std::ostringstream out;
  test::expect_error([&] { run_eval(parse_eval_command({"--predictions", dir + "/three.csv", "--val-predictions", dir + "/two.csv"}), out); },
                     {"--val-predictions and --positive are for binary tables", "three.csv has 3 classes"});
  // A binary table alone: the screening section, and the plain statement that no validation
  // threshold was available.
  std::ostringstream two;
  run_eval(parse_eval_command({"--predictions", dir + "/two.csv", "--bootstrap", "0"}), two);
  EXPECT_HAS(two.str(), "screening (mass positive: the second class of " + dir + "/two.csv");
  EXPECT_HAS(two.str(), "no validation threshold was available");
  // With the validation table (here the same file): the point is there, chosen on it.
  std::ostringstream with;
  run_eval(parse_eval_command({"--predictions", dir + "/two.csv", "--val-predictions", dir + "/two.csv", "--bootstrap", "0"}), with);
  EXPECT_HAS(with.str(), "| p(mass) >= 0.4 (chosen on " + dir + "/two.csv (n = 4) for sensitivity >= 90%) | 2 / 0 / 2 / 0 |");
  EXPECT_EQ(with.str().find("no validation threshold"), std::string::npos) << with.str();
}

TEST(EvalReport, ProgramWritesTheReportAndExitsNonZeroOnErrors) {
  const std::string exe = std::string(MC_BINARY_DIR) + "/apps/mc_eval";
  if (!fs::exists(exe)) GTEST_SKIP() << "mc_eval not built";
  const TinyRun s = make_tiny_run(test::temp_dir());
  std::ofstream(s.dir + "/run.yaml") << to_yaml(s.cfg);
  auto run = [&](const std::string& args) {
    const int rc = std::system((exe + " " + args + " > " + s.dir + "/log.txt 2>&1").c_str());
    return std::pair{WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, slurp(s.dir + "/log.txt")};
  };
  const auto [ok, log] = run("--config " + s.dir + "/run.yaml --no-progress --split val eval.bootstrap=20");
  EXPECT_EQ(ok, 0) << log;
  EXPECT_HAS(log, "report: " + s.dir + "/run/report/report.md");
  EXPECT_HAS(slurp(s.dir + "/run/report/report.md"), "resnet10 on the val split");
  const auto [bad_split, why] = run("--config " + s.dir + "/run.yaml --split holdout");
  EXPECT_EQ(bad_split, 1);
  EXPECT_HAS(why, "unknown split 'holdout'");
  EXPECT_EQ(run("--config " + s.dir + "/run.yaml --tau2 0.3").first, 2);
  EXPECT_EQ(run("--config " + s.dir + "/run.yaml --predictions x.csv").first, 2);
}

TEST(EvalReport, SavedPredictionsGetTheSameReport) {
  const std::string dir = test::temp_dir();
  eval::PredictionTable p;
  p.source = dir + "/scores.csv";
  p.class_names = {"osteoporosis", "osteopenia", "normal"};
  for (int i = 0; i < 9; ++i) {
    p.ids.push_back("s" + std::to_string(i));
    p.labels.push_back(i % 3);
    p.scores.insert(p.scores.end(), {0.1 * i, (i % 3 == 1) ? 1.0 : 0.0, 0.2});
  }
  eval::EvalOptions o;
  o.tau2 = {0.5, 0.0};
  o.prior = {20, 110, 181};
  o.bootstrap.resamples = 30;
  const eval::Report r = eval::write_predictions_report(p, o, dir + "/report");
  EXPECT_TRUE(r.predictions.empty());  // the input already is the predictions file
  EXPECT_FALSE(r.hu.available);
  ASSERT_TRUE(r.sweep);
  EXPECT_EQ(r.sweep->rows.size(), 2u);
  for (const std::string* f : {&r.markdown, &r.json, &r.roc, &r.confusion, &r.sweep_chart}) EXPECT_TRUE(fs::exists(*f)) << *f;
  EXPECT_TRUE(r.training_curves.empty());
  EXPECT_HAS(slurp(r.markdown), "mc_eval --predictions " + p.source);
  // The CSV writer and reader agree, to the last bit.
  std::istringstream in(eval::predictions_csv(p));
  const eval::PredictionTable back = eval::parse_predictions_csv(in, "roundtrip.csv");
  EXPECT_EQ(back.ids, p.ids);
  EXPECT_EQ(back.labels, p.labels);
  EXPECT_EQ(back.scores, p.scores);
  eval::PredictionTable bad = p;
  bad.ids[0] = "a,b";
  EXPECT_THROW(eval::predictions_csv(bad), Error);
}

}  // namespace
}  // namespace mc::pipeline
