// Tasks other than the three WHO bands, end to end on the CPU: a binary task on pre-cropped
// volumes with class names (normal, mass), a 4-class task from three T-score thresholds, and a
// T-score regression head; and the errors of a task that does not fit its data.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/random.h"
#include "io/cache.h"
#include "io/nifti.h"
#include "io/safetensors.h"
#include "io/text.h"
#include "eval/screening.h"
#include "pipeline/eval_cli.h"
#include "pipeline/evaluate.h"
#include "pipeline/predict.h"
#include "pipeline/prep_config.h"
#include "pipeline/train.h"
#include "e2e_data.h"
#include "test_util.h"

namespace mc {
namespace {
namespace fs = std::filesystem;

#define EXPECT_HAS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << (text)

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Pre-cropped 20^3 CT crops: soft tissue with noise; "mass" subjects hold a dense sphere.
std::string write_mass_dataset(const std::string& dir, int n) {
  fs::create_directories(dir + "/ct");
  Generator g(5);
  std::string csv = "id,label\n";
  for (int s = 0; s < n; ++s) {
    const bool mass = s % 3 == 0;  // a third positive
    io::Affine a = io::identity_affine();
    for (int r = 0; r < 3; ++r) a[size_t(r)][size_t(r)] = 1.5;
    io::Volume v = io::make_volume(20, 20, 20, a);
    const double cx = 7 + 6 * g.uniform(), cy = 7 + 6 * g.uniform(), cz = 7 + 6 * g.uniform(), rad = 3 + 2 * g.uniform();
    float* p = v.ptr();
    for (int64_t k = 0; k < 20; ++k)
      for (int64_t j = 0; j < 20; ++j)
        for (int64_t i = 0; i < 20; ++i) {
          double hu = 40 + 25 * g.normal();
          if (mass && (i - cx) * (i - cx) + (j - cy) * (j - cy) + (k - cz) * (k - cz) <= rad * rad) hu += 350;
          p[(k * 20 + j) * 20 + i] = float(std::round(hu));
        }
    char id[16];
    std::snprintf(id, sizeof id, "m%03d", s);
    io::write_nifti(dir + "/ct/" + id + ".nii.gz", v, io::NiftiType::I16);
    csv += std::string(id) + "," + (mass ? "mass" : "normal") + "\n";
  }
  std::ofstream(dir + "/labels.csv") << csv;
  return dir;
}

std::vector<std::string> binary_overrides(const std::string& data, const std::string& out) {
  return {"data.raw.ct_dir=" + data + "/ct", "data.raw.seg_dir=", "data.raw.labels_csv=" + data + "/labels.csv",
          "data.raw.mask_mode=precropped", "data.cache_dir=" + data + "/cache", "data.classes=[normal, mass]",
          "data.tscore_thresholds=[]", "data.volume=16", "data.windows=[[100, 800]]", "output.dir=" + out,
          "train.device=cpu", "data.num_workers=1", "train.epochs=6", "schedule.warmup_epochs=0",
          "loss.type=ce", "posthoc.tau2=0", "posthoc.sweep=[]", "eval.bootstrap=50"};
}

TEST(TaskE2E, BinaryPrecroppedNormalMassReportsScreeningMetrics) {
  const std::string root = test::temp_dir();
  const std::string data = write_mass_dataset(root + "/mass", 72);
  const pipeline::Config cfg = pipeline::load_config(test::demo_config_path(), binary_overrides(data, root + "/run"));
  EXPECT_EQ(cfg.model.num_classes, 2);
  io::PrepOptions po = pipeline::prep_options_from_config(cfg);
  po.progress = false;
  const io::PrepResult pr = io::run_prep(po);
  ASSERT_EQ(pr.failed, 0);
  // Names flow into the manifest and the cache.
  EXPECT_HAS(slurp(pr.manifest), ",1,mass,");
  EXPECT_EQ(io::Cache::open(pr.caches.at("train")).meta().at("task.classes"), "normal,mass");
  EXPECT_HAS(io::prep_summary(pr, po.task), "normal ");

  std::ostringstream log;
  pipeline::TrainHooks hooks;
  hooks.out = &log;
  const pipeline::TrainSummary s = pipeline::train(cfg, false, hooks);
  std::printf("%s", log.str().c_str());
  // The checkpoint carries its task.
  const io::SafeTensorsFile w = io::SafeTensorsFile::open(s.best_weights);
  EXPECT_EQ(w.metadata().at("task.classes"), "normal,mass");

  pipeline::ReportOptions ro;
  const eval::Report r = pipeline::write_model_report(cfg, ro);
  ASSERT_TRUE(r.screening);
  const eval::ScreeningReport& sc = *r.screening;
  std::printf("binary test split: n %lld, ROC AUC %.3f [%.3f, %.3f], average precision %.3f\n", (long long)sc.n,
              sc.auc.value, sc.auc_ci.lo, sc.auc_ci.hi, sc.average_precision.value);
  EXPECT_EQ(sc.positive_name, "mass");
  EXPECT_GT(sc.auc.value, 0.8);  // chance 0.5
  EXPECT_TRUE(sc.auc_ci.defined);
  ASSERT_EQ(sc.points.size(), 3u);
  EXPECT_EQ(sc.points[2].key, "validation");
  EXPECT_TRUE(fs::exists(r.pr));
  const std::string md = slurp(r.markdown);
  EXPECT_HAS(md, "## Screening (mass positive)");
  EXPECT_HAS(md, "chosen on the val split");
  EXPECT_HAS(md, "PR AUC (average precision)");
  EXPECT_HAS(md, "| normal |");
  EXPECT_HAS(slurp(r.predictions).substr(0, 40), "id,label,");
  EXPECT_HAS(slurp(r.json), "\"screening\"");
  // The validation-chosen point is in the report's table with its sensitivity and specificity.
  EXPECT_HAS(md, "| p(mass) >= " + io::general(sc.points[2].threshold) + " (chosen on the val split (n = ");
  EXPECT_HAS(md, "The positive class is mass: the second class of the task");
  // Class names reach every picture.
  const std::string roc = slurp(r.roc), confusion = slurp(r.confusion), reliability = slurp(r.reliability), pr_svg = slurp(r.pr);
  EXPECT_HAS(roc, "normal  AUC");
  EXPECT_HAS(roc, "mass  AUC");
  EXPECT_HAS(confusion, ">normal<");
  EXPECT_HAS(confusion, ">mass<");
  EXPECT_HAS(reliability, "normal vs rest");
  EXPECT_HAS(reliability, "mass vs rest");
  EXPECT_HAS(pr_svg, "Precision-recall, mass positive");
  EXPECT_EQ(slurp(r.predictions).substr(0, 21), "id,label,normal,mass\n");

  // mc_eval --predictions on the saved tables gives the checkpoint report's validation point:
  // the val split's predictions choose the same threshold, applied to the same test table.
  pipeline::ReportOptions rv;
  rv.split = "val";
  rv.out_dir = root + "/report_val";
  const eval::Report val_report = pipeline::write_model_report(cfg, rv);
  pipeline::EvalCommand ec = pipeline::parse_eval_command(
      {"--predictions", r.predictions, "--val-predictions", val_report.predictions, "--tau2", "0", "--bootstrap", "0"});
  const eval::PredictionTable test_csv = eval::read_predictions_csv(r.predictions), val_csv = eval::read_predictions_csv(val_report.predictions);
  const eval::ScreeningOptions saved = eval::saved_screening_options(test_csv, ec.eval, &val_csv, "", 0.9);
  EXPECT_EQ(saved.positive, sc.positive);
  ASSERT_TRUE(saved.validation_threshold);
  EXPECT_EQ(*saved.validation_threshold, sc.points[2].threshold);
  std::ostringstream cli;
  pipeline::run_eval(ec, cli);
  const eval::OperatingPoint& vp = sc.points[2];
  EXPECT_HAS(cli.str(), "screening (mass positive: the second class of " + r.predictions);
  EXPECT_HAS(cli.str(), "| p(mass) >= " + io::general(vp.threshold) + " (chosen on " + val_report.predictions + " (n = ");
  EXPECT_HAS(cli.str(), std::to_string(vp.tp) + " / " + std::to_string(vp.fp) + " / " + std::to_string(vp.tn) + " / " +
                            std::to_string(vp.fn));
  std::printf("binary test split, threshold chosen on val: p(mass) >= %.4f, sensitivity %.3f, specificity %.3f (TP %lld FP %lld TN %lld FN %lld)\n",
              vp.threshold, vp.sensitivity.value, vp.specificity.value, (long long)vp.tp, (long long)vp.fp, (long long)vp.tn,
              (long long)vp.fn);

  // A checkpoint of this task under the WHO config is refused, naming both tasks.
  pipeline::Config who = pipeline::load_config(test::demo_config_path(), {"output.dir=" + root + "/run", "train.device=cpu"});
  try {
    pipeline::write_model_report(who, ro);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_HAS(e.what(), "was trained for another task");
    EXPECT_HAS(e.what(), "classes normal,mass vs osteoporosis,osteopenia,normal");
  }
  // mc_predict on a prepared tensor: logits and probabilities named by the task.
  Tensor x = io::Cache::open(pr.caches.at("test")).volume_f32(0);
  io::save_safetensors(root + "/x.safetensors", {{"input", x}});
  pipeline::PredictCommand pc = pipeline::parse_predict_command({"--checkpoint", s.best_weights, "--tensor", root + "/x.safetensors"});
  std::ostringstream out, err;
  EXPECT_EQ(pipeline::run_predict(pc, out, err), 0);
  EXPECT_HAS(out.str(), "\"probabilities\": {\"normal\": ");
  EXPECT_HAS(out.str(), "\"logits\": [");
  // A batch [N, C, D, H, W] as numpy.save writes it: one JSON line per sample.
  {
    const io::Cache tc = io::Cache::open(pr.caches.at("test"));
    std::string data_bytes;
    for (int64_t i = 0; i < 2; ++i) {
      const std::vector<float> v = tc.volume_f32(i).to_vector<float>();
      data_bytes.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
    }
    std::string shape = "(2";
    for (int64_t d : x.shape()) shape += ", " + std::to_string(d);
    std::string h = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + "), }";
    while ((10 + h.size() + 1) % 64) h += ' ';
    h += '\n';
    std::string npy = "\x93NUMPY";
    npy += char(1), npy += char(0), npy += char(h.size() & 0xff), npy += char(h.size() >> 8);
    std::ofstream(root + "/x.npy", std::ios::binary) << npy + h + data_bytes;
    pc = pipeline::parse_predict_command({"--checkpoint", s.best_weights, "--tensor", root + "/x.npy"});
    std::ostringstream batch, eb;
    EXPECT_EQ(pipeline::run_predict(pc, batch, eb), 0) << eb.str();
    const std::string b = batch.str();
    EXPECT_EQ(std::count(b.begin(), b.end(), '\n'), 2) << b;
    size_t n = 0;
    for (size_t at = b.find("\"probabilities\": {\"normal\": "); at != std::string::npos; at = b.find("\"probabilities\": {\"normal\": ", at + 1)) ++n;
    EXPECT_EQ(n, 2u) << b;
  }
  // ... and on a pre-cropped scan (JSON) and a folder of them (CSV).
  pc = pipeline::parse_predict_command({"--checkpoint", s.best_weights, "--crop", data + "/ct/m000.nii.gz"});
  std::ostringstream one, e1;
  EXPECT_EQ(pipeline::run_predict(pc, one, e1), 0) << e1.str();
  EXPECT_HAS(one.str(), "\"probabilities\": {\"normal\": ");
  EXPECT_HAS(one.str(), ", \"mass\": ");
  EXPECT_TRUE(one.str().find("\"class_name\": \"normal\"") != std::string::npos ||
              one.str().find("\"class_name\": \"mass\"") != std::string::npos) << one.str();
  fs::create_directories(root + "/few");
  for (const char* id : {"m000", "m001"}) fs::copy_file(data + "/ct/" + id + ".nii.gz", root + "/few/" + id + ".nii.gz");
  pc = pipeline::parse_predict_command({"--checkpoint", s.best_weights, "--ct-dir", root + "/few", "--raw", "--no-progress"});
  std::ostringstream folder, e2;
  EXPECT_EQ(pipeline::run_predict(pc, folder, e2), 0) << e2.str();
  EXPECT_EQ(folder.str().substr(0, folder.str().find('\n')), "id,class,class_name,p_normal,p_mass,logit_normal,logit_mass");
}

TEST(TaskE2E, FourClassesFromThreeThresholdsRunEndToEnd) {
  const std::string root = test::temp_dir();  // once: each call wipes the test's folder
  const std::string out = root + "/four";
  const std::string cache = root + "/four_cache";
  pipeline::Config cfg = test::e2e_config(out, {"data.cache_dir=" + cache, "data.classes=[severe, osteoporosis, osteopenia, normal]",
                                      "data.tscore_thresholds=[-3.2, -2.5, -1]", "train.epochs=2", "eval.bootstrap=20",
                                      "schedule.warmup_epochs=0", "loss.type=ce"});
  EXPECT_EQ(cfg.model.num_classes, 4);
  io::PrepOptions po = pipeline::prep_options_from_config(cfg);
  po.progress = false;
  ASSERT_EQ(io::run_prep(po).failed, 0);
  std::ostringstream log;
  pipeline::TrainHooks hooks;
  hooks.out = &log;
  pipeline::train(cfg, false, hooks);
  const eval::Report r = pipeline::write_model_report(cfg, pipeline::ReportOptions{});
  EXPECT_EQ(r.headline.class_names, (std::vector<std::string>{"severe", "osteoporosis", "osteopenia", "normal"}));
  EXPECT_EQ(r.headline.rows.at(0).metrics.confusion.size(), 16u);
  const ClassificationMetrics& m4 = r.headline.rows.at(0).metrics;
  std::printf("4-class test split: n %lld, accuracy %.3f, balanced accuracy %.3f, macro AUC %.3f\n", (long long)m4.num_samples,
              m4.accuracy.value, m4.balanced_accuracy.value, m4.auc_macro.value);
  EXPECT_FALSE(r.screening);
  const std::string md = slurp(r.markdown);
  EXPECT_HAS(md, "| severe |");
  EXPECT_HAS(md, "severe sensitivity");  // the HU baseline for 4 classes
  EXPECT_TRUE(r.hu.available) << r.hu.note;
  // Class names reach every picture and mc_predict's JSON and CSV.
  for (const std::string& name : r.headline.class_names) {
    EXPECT_HAS(slurp(r.roc), name + "  AUC");
    EXPECT_HAS(slurp(r.confusion), ">" + name + "<");
    EXPECT_HAS(slurp(r.reliability), name + " vs rest");
  }
  const std::string d = test::e2e_dataset();
  pipeline::PredictCommand pc = pipeline::parse_predict_command(
      {"--checkpoint", out + "/best.safetensors", "--ct", d + "/ct/syn00000.nii.gz", "--seg", d + "/seg/syn00000.nii.gz"});
  std::ostringstream o, e;
  EXPECT_EQ(pipeline::run_predict(pc, o, e), 0) << e.str();
  EXPECT_HAS(o.str(), "\"probabilities\": {\"severe\": ");
  EXPECT_HAS(o.str(), ", \"normal\": ");
  const std::string few = root + "/few4";
  fs::create_directories(few + "/ct");
  fs::create_directories(few + "/seg");
  for (const char* f : {"/ct/syn00000.nii.gz", "/ct/syn00001.nii.gz", "/seg/syn00000.nii.gz", "/seg/syn00001.nii.gz"})
    fs::copy_file(d + f, few + f);
  pc = pipeline::parse_predict_command(
      {"--checkpoint", out + "/best.safetensors", "--ct-dir", few + "/ct", "--seg-dir", few + "/seg", "--no-progress"});
  std::ostringstream csv, e2;
  EXPECT_EQ(pipeline::run_predict(pc, csv, e2), 0) << e2.str();
  EXPECT_EQ(csv.str().substr(0, csv.str().find('\n')), "id,class,class_name,p_severe,p_osteoporosis,p_osteopenia,p_normal");
}

TEST(TaskE2E, RegressionReportsMaeAndDerivedClasses) {
  const std::string out = test::temp_dir() + "/reg";
  pipeline::Config cfg = test::e2e_config(out, {"model.head=regression", "eval.select_by=mae", "train.epochs=2", "eval.bootstrap=20",
                                      "schedule.warmup_epochs=0"});
  test::e2e_prepare();
  std::ostringstream log;
  pipeline::TrainHooks hooks;
  hooks.out = &log;
  pipeline::train(cfg, false, hooks);
  std::printf("%s", log.str().c_str());
  EXPECT_HAS(log.str(), "MAE ");
  EXPECT_HAS(log.str(), "huber on the T-score");
  const eval::Report r = pipeline::write_model_report(cfg, pipeline::ReportOptions{});
  ASSERT_TRUE(r.regression);
  std::printf("regression test split: MAE %.3f, RMSE %.3f, r %.3f, R2 %.3f\n", r.regression->mae.value,
              r.regression->rmse.value, r.regression->pearson.value, r.regression->r2.value);
  EXPECT_TRUE(std::isfinite(r.regression->mae.value));
  EXPECT_TRUE(r.regression->mae_ci.defined);
  EXPECT_EQ(r.headline.class_names, io::Task::who().classes);  // the derived classes' table
  EXPECT_TRUE(fs::exists(r.scatter));
  EXPECT_TRUE(fs::exists(r.bland_altman));
  const std::string md = slurp(r.markdown);
  EXPECT_HAS(md, "## T-score regression");
  EXPECT_HAS(md, "| MAE (T units) |");
  EXPECT_HAS(md, "| Pearson r |");
  EXPECT_HAS(md, "## Per class");
  // mc_predict prints the T-score and its class.
  const std::string crop = test::e2e_dataset() + "/ct/syn00000.nii.gz";
  pipeline::PredictCommand pc = pipeline::parse_predict_command({"--checkpoint", out + "/best.safetensors", "--ct", crop, "--seg",
                                             test::e2e_dataset() + "/seg/syn00000.nii.gz"});
  std::ostringstream o, e;
  EXPECT_EQ(pipeline::run_predict(pc, o, e), 0);
  EXPECT_HAS(o.str(), "\"tscore\": ");
  EXPECT_HAS(o.str(), "\"class_name\": ");
}

TEST(TaskE2E, ErrorsNameTheTaskAndTheData) {
  // A logit-adjusted loss with a class that has no training subject: the class is named.
  const std::string root = test::temp_dir();
  const std::string data = write_mass_dataset(root + "/few", 12);
  {
    std::ofstream(data + "/labels.csv") << "id,label\n";  // rewritten below: no 'tumour' subject
  }
  std::string csv = "id,label\n";
  for (int s = 0; s < 12; ++s) {
    char id[16];
    std::snprintf(id, sizeof id, "m%03d", s);
    csv += std::string(id) + "," + (s % 2 ? "mass" : "normal") + "\n";
  }
  std::ofstream(data + "/labels.csv") << csv;
  auto ov = binary_overrides(data, root + "/run");
  ov.push_back("data.classes=[normal, mass, tumour]");
  ov.push_back("loss.type=logit_adjusted");
  const pipeline::Config cfg = pipeline::load_config(test::demo_config_path(), ov);
  io::PrepOptions po = pipeline::prep_options_from_config(cfg);
  po.progress = false;
  io::run_prep(po);
  try {
    pipeline::train(cfg, false);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_HAS(e.what(), "loss.type logit_adjusted needs every class in the training split");
    EXPECT_HAS(e.what(), "class 'tumour' (2) has no training subject");
  }
  // A class name in the CSV that is not in data.classes.
  std::ofstream(data + "/labels.csv") << "id,label\nm000,normal\nm001,tumour\n";
  auto two = binary_overrides(data, root + "/run2");
  const pipeline::Config c2 = pipeline::load_config(test::demo_config_path(), two);
  io::PrepOptions p2 = pipeline::prep_options_from_config(c2);
  p2.progress = false;
  try {
    io::run_prep(p2);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_HAS(e.what(), "labels.csv:3: class \"tumour\" of subject m001 is not one of the task's classes normal,mass");
  }
  // Regression without a T-score column.
  auto reg = binary_overrides(data, root + "/run3");
  reg.push_back("data.tscore_thresholds=[-2.5]");
  reg.push_back("model.head=regression");
  reg.push_back("eval.select_by=mae");
  const pipeline::Config c3 = pipeline::load_config(test::demo_config_path(), reg);
  io::PrepOptions p3 = pipeline::prep_options_from_config(c3);
  p3.progress = false;
  try {
    io::run_prep(p3);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_HAS(e.what(), "missing column: a regression task");
  }
}

}  // namespace
}  // namespace mc
