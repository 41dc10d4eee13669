#include "pipeline/evaluate.h"

#include <cmath>
#include <filesystem>
#include <set>

#include "eval/calibration.h"
#include "io/cache.h"
#include "io/labels.h"
#include "io/text.h"
#include "eval/screening.h"
#include "pipeline/crossval.h"
#include "pipeline/model.h"
#include "pipeline/predictions.h"

namespace mc::pipeline {
namespace fs = std::filesystem;

namespace {

// Labelled rows only.
eval::PredictionTable labelled(const eval::PredictionTable& s, int64_t* unlabelled = nullptr) {
  const int64_t K = s.num_classes();
  eval::PredictionTable t;
  t.source = s.source;
  t.class_names = s.class_names;
  t.kind = s.kind;
  for (int64_t i = 0; i < s.size(); ++i) {
    if (s.labels[size_t(i)] < 0) {
      if (unlabelled) ++*unlabelled;
      continue;
    }
    t.ids.push_back(s.ids[size_t(i)]);
    t.labels.push_back(s.labels[size_t(i)]);
    t.scores.insert(t.scores.end(), s.scores.begin() + i * K, s.scores.begin() + (i + 1) * K);
  }
  return t;
}

}  // namespace

eval::ScreeningOptions screening_without_validation(const io::Task& task, const Config& cfg, std::string note) {
  eval::ScreeningOptions so;
  so.positive = task.positive_class();
  so.positive_name = task.name(so.positive);
  so.positive_reason = task.positive >= 0        ? "data.positive_class of the task"
                       : task.from_tscores() ? "the lowest T-score band, the task's default (data.positive_class picks another)"
                                             : "the second class of the task, its default (data.positive_class picks another)";
  so.target_sensitivity = cfg.eval.target_sensitivity;
  so.validation_note = std::move(note);
  return so;
}

namespace {

// The binary report's operating point chosen on the validation split: the highest threshold on
// p(positive) (after the same post-hoc adjustment) reaching eval.target_sensitivity there.
eval::ScreeningOptions screening_options(LoadedModel& m, const Config& cfg, const ReportOptions& o, const TrainingPrior& prior) {
  eval::ScreeningOptions so = screening_without_validation(m.task, cfg, "");
  const std::string val = split_cache_path(cfg.data, "val");
  if (!fs::exists(val)) {
    so.validation_note = "no validation cache '" + val + "'";
    return so;
  }
  const eval::PredictionTable v = labelled(predict_split(m, cfg, "val", o.progress));
  if (v.size() == 0) {
    so.validation_note = "the validation cache '" + val + "' has no labelled subjects";
    return so;
  }
  eval::choose_validation_threshold(v, prior.usable() ? cfg.posthoc.tau2 : 0.0,
                                    std::vector<double>(prior.counts.begin(), prior.counts.end()), "the val split", so);
  if (o.split == "val") so.validation_source += ", the split evaluated here: optimistic";
  return so;
}

}  // namespace

eval::PredictionTable regression_derived_classes(const io::Task& task, const eval::PredictionTable& s, const BootstrapOptions& b,
                                eval::RegressionReport& report, int64_t& unlabelled) {
  MC_CHECK(s.num_classes() == 1, s.source, ": a regression head gives one score per subject, got ", s.num_classes());
  const io::Cache cache = io::Cache::open(s.source);
  eval::PredictionTable t;
  t.source = s.source;
  t.class_names = task.classes;
  t.kind = eval::ScoreKind::Probabilities;
  std::vector<double> truth, pred;
  const int64_t K = task.num_classes();
  for (int64_t i = 0; i < s.size(); ++i) {
    const io::CacheRecord& r = cache.record(s.indices[size_t(i)]);
    if (!std::isfinite(r.tscore)) {
      ++unlabelled;
      continue;
    }
    const double p = s.scores[size_t(i)];
    truth.push_back(r.tscore), pred.push_back(p);
    t.ids.push_back(s.ids[size_t(i)]);
    t.labels.push_back(task.classify(r.tscore));
    for (int64_t k = 0; k < K; ++k) t.scores.push_back(k == task.classify(p) ? 1.0 : 0.0);
  }
  MC_CHECK(!truth.empty(), "the cache '", s.source, "' has no subject with a T-score to evaluate a regression head on");
  report = eval::regression_report(truth, pred, b);
  report.thresholds = task.thresholds;
  return t;
}

namespace {

// Did TTA help? The validation split with and without it: balanced accuracy, macro AUC, NLL and
// ECE of the probabilities as reported (tau2, temperature); for a regression head the T-score's
// MAE and the derived classes' balanced accuracy. A Markdown table.
std::string tta_validation(LoadedModel& m, const Config& cfg, const std::vector<Flip>& flips,
                           const std::vector<double>& prior, double tau2, double temperature) {
  const bool reg = m.task.regression();
  std::string md = reg ? "| validation | T-score MAE | balanced accuracy (derived classes) |\n|:--|--:|--:|\n"
                       : "| validation | balanced accuracy | macro AUC | NLL | ECE |\n|:--|--:|--:|--:|--:|\n";
  for (bool with : {false, true}) {
    const eval::PredictionTable v = predict_split(m, cfg, "val", false, with ? flips : std::vector<Flip>{});
    const std::string name = with ? "with TTA" : "without";
    eval::EvalOptions eo;
    eo.bootstrap.resamples = 0;
    eo.roc = false;
    if (reg) {
      eval::RegressionReport rr;
      int64_t unlabelled = 0;
      const eval::PredictionTable t = regression_derived_classes(m.task, v, {0, 0, 0.95}, rr, unlabelled);
      const ClassificationMetrics mm = eval::evaluate(t, eo).rows.at(0).metrics;
      md += "| " + name + " | " + io::fixed(rr.mae.value, 4) + " | " + io::fixed(100 * mm.balanced_accuracy.value, 2) + " |\n";
      continue;
    }
    const eval::PredictionTable t = labelled(v);
    MC_CHECK(t.size() > 0, "--tta: the val cache has no labelled subjects to compare on");
    const int64_t K = t.num_classes();
    eo.tau2 = {tau2};
    eo.prior = prior;
    const ClassificationMetrics mm = eval::evaluate(t, eo).rows.at(0).metrics;
    const std::vector<double> p = eval::calibrated_probabilities(t.scores, K, prior, tau2, temperature);
    md += "| " + name + " | " + io::fixed(100 * mm.balanced_accuracy.value, 2) + " | " +
          (mm.auc_macro.defined ? io::fixed(100 * mm.auc_macro.value, 2) : "n/a") + " | " + io::fixed(eval::mean_nll(p, t.labels, K), 4) +
          " | " + io::fixed(eval::expected_calibration_error(p, t.labels, K, 15), 4) + " |\n";
  }
  return md;
}


// The ensemble's report: each member over the split, its probabilities after its own post-hoc
// adjustment (its state's training prior) and temperature, then their mean (regression: the
// mean predicted T-score) as the table the ordinary report scores.
eval::Report ensemble_report(const Config& cfg, const ReportOptions& o, const std::vector<std::string>& members) {
  MC_CHECK(!o.tta, "--tta: not for an ensemble (evaluate one checkpoint with --tta to see whether it helps)");
  const BootstrapOptions b{cfg.eval.bootstrap, uint64_t(cfg.train.seed), 0.95};
  const double tau2 = cfg.posthoc.tau2;
  eval::PredictionTable s;
  std::vector<double> sum;
  io::Task task;
  std::string device, temps;
  int64_t no_prior = 0;
  for (size_t i = 0; i < members.size(); ++i) {
    MC_CHECK(fs::is_regular_file(members[i]), "ensemble member '", members[i], "' not found");
    LoadedModel m = load_model(cfg, members[i]);
    eval::PredictionTable t = predict_split(m, cfg, o.split, o.progress);
    if (i == 0) s = t, task = m.task, device = m.device.str();
    MC_CHECK(m.task == task && t.ids == s.ids, "ensemble member '", members[i], "' has ", m.task.describe(), "; '",
             members[0], "' ", task.describe());
    std::vector<double> v = t.scores;
    if (!task.regression()) {
      const TrainingPrior prior = training_prior(cfg, members[i]);  // the member's own (its state) first
      no_prior += tau2 != 0 && !prior.usable();
      const double temperature = checkpoint_temperature(members[i]).value;
      temps += (i ? ", " : "") + io::general(temperature);
      v = eval::calibrated_probabilities(t.scores, t.num_classes(), std::vector<double>(prior.counts.begin(), prior.counts.end()),
                                   prior.usable() ? tau2 : 0.0, temperature);
    }
    if (sum.empty()) sum.assign(v.size(), 0.0);
    for (size_t j = 0; j < v.size(); ++j) sum[j] += v[j] / double(members.size());
  }
  s.scores = sum;
  if (!task.regression()) s.kind = eval::ScoreKind::Probabilities;
  int64_t unlabelled = 0;
  eval::RegressionReport reg;
  const eval::PredictionTable t = task.regression() ? regression_derived_classes(task, s, b, reg, unlabelled) : labelled(s, &unlabelled);
  MC_CHECK(t.size() > 0, "the ", o.split, " cache '", s.source, "' has no labelled subjects to evaluate");
  const int64_t K = t.num_classes();
  const std::string arch(model_arch(cfg.model.name));
  eval::ReportRun run;
  run.title = arch + ", ensemble of " + std::to_string(members.size()) + " models, on the " + o.split + " split";
  for (const auto& w : members) run.source += (run.source.empty() ? "" : ", ") + w;
  run.model = arch + " x " + std::to_string(members.size()) + " (" + std::to_string(cfg.model.in_chans) + " input channel" +
              (cfg.model.in_chans == 1 ? "" : "s") + ", " +
              (task.regression() ? "T-score regression: the mean T, " + std::to_string(K) + " derived classes)"
                                 : std::to_string(K) + " classes: the mean of the members' probabilities)");
  run.split = o.split;
  run.cache = s.source;
  run.device = device;
  if (task.regression()) {
    run.regression = reg;
    run.prior_source = "not used: a regression head";
  } else {
    run.prior_source = "each member's own (its checkpoint state)";
    run.adjusted_upstream = "tau2 = " + io::general(tau2) + " with each member's own prior, then its temperature, before "
                            "averaging (the tables' tau2 = 0 means nothing more is applied)";
    run.temperature_source = "Each member's probabilities are scaled by its own temperature (T = " + temps +
                             ") before averaging; the table holds the averaged probabilities";
    if (no_prior)
      run.notes.push_back(std::to_string(no_prior) + " members have no usable training prior: no post-hoc adjustment for them");
  }
  if (task.binary() && !task.regression())
    run.screening = screening_without_validation(task, cfg, "an ensemble: no validation-chosen threshold");
  eval::HuBaseline hu;
  if (K == task.num_classes()) hu = eval::hu_baseline((fs::path(cfg.data.cache_dir) / "manifest.csv").string(), o.split, b, task);
  if (unlabelled) run.notes.push_back(std::to_string(unlabelled) + " subjects of the cache have no label and were left out");
  const std::string dir = o.out_dir.empty() ? (fs::path(cfg.output.dir) / ("report_ensemble_" + o.split)).string() : o.out_dir;
  return eval::write_report(t, run, b, hu, dir, true);
}

}  // namespace

eval::Report write_model_report(const Config& cfg, const ReportOptions& o) {
  MC_CHECK(o.split == "test" || o.split == "val" || o.split == "train", "unknown split '", o.split,
           "' (allowed: test, val, train)");
  // Cross-validation folders stand for their fold models; more than one model is an ensemble.
  std::vector<std::string> members;
  auto add = [&](const std::string& w) {
    if (!is_crossval_dir(w)) return members.push_back(w);
    const auto folds = fold_checkpoints(w);
    members.insert(members.end(), folds.begin(), folds.end());
  };
  if (!o.checkpoint.empty()) add(o.checkpoint);
  else if (cfg.train.all_folds) add(cfg.output.dir);
  for (const auto& w : o.ensemble) add(w);
  if (members.size() > 1) return ensemble_report(cfg, o, members);
  const std::string checkpoint = !members.empty() ? members[0] : (fs::path(cfg.output.dir) / "best.safetensors").string();
  MC_CHECK(fs::is_regular_file(checkpoint), "checkpoint '", checkpoint, "' not found",
           o.checkpoint.empty() ? " (the best epoch of the run in output.dir; pass --checkpoint to choose another)" : "");
  LoadedModel m = load_model(cfg, checkpoint);
  const std::vector<Flip> flips = o.tta ? tta_flips(cfg) : std::vector<Flip>{};
  const eval::PredictionTable s = predict_split(m, cfg, o.split, o.progress, flips);
  const BootstrapOptions b{cfg.eval.bootstrap, uint64_t(cfg.train.seed), 0.95};
  int64_t unlabelled = 0;
  eval::RegressionReport reg;
  const eval::PredictionTable t = m.task.regression() ? regression_derived_classes(m.task, s, b, reg, unlabelled) : labelled(s, &unlabelled);
  const int64_t K = t.num_classes();
  MC_CHECK(t.size() > 0, "the ", o.split, " cache '", s.source, "' has no labelled subjects to evaluate");

  eval::ReportRun run;
  run.title = std::string(model_arch(cfg.model.name)) + " on the " + o.split + " split";
  run.source = checkpoint;
  run.model = std::string(model_arch(cfg.model.name)) + " (" + std::to_string(cfg.model.in_chans) + " input channel" +
              (cfg.model.in_chans == 1 ? "" : "s") + ", " +
              (m.task.regression() ? "T-score regression, " + std::to_string(K) + " derived classes)" : std::to_string(K) + " classes)");
  run.epoch = m.epoch;
  run.split = o.split;
  run.cache = s.source;
  run.device = m.device.str();
  const TrainingPrior prior = training_prior(cfg, checkpoint, /*cache_first=*/true);
  run.prior_source = prior.source;
  run.prior.assign(prior.counts.begin(), prior.counts.end());
  if (m.task.regression()) {
    run.regression = reg;
    run.prior.clear();  // the derived classes are hard calls: no post-hoc adjustment
    run.prior_source = "not used: a regression head";
  } else if (prior.usable()) {
    run.tau2 = cfg.posthoc.tau2;
    std::set<double, std::greater<>> taus(cfg.posthoc.sweep.begin(), cfg.posthoc.sweep.end());
    taus.insert({cfg.posthoc.tau2, 0.0});  // the reported value and the unadjusted model
    run.sweep.assign(taus.begin(), taus.end());
  }
  // Temperature scaling calibrates class probabilities: not a regression head's.
  const CheckpointTemperature temp = m.task.regression() ? CheckpointTemperature{} : checkpoint_temperature(checkpoint);
  if (temp.present()) {
    run.temperature = temp.value;
    run.temperature_source = "fitted on the validation split by mc_train, " + temp.source;
    if (temp.tau2 != run.tau2)
      run.notes.push_back("the temperature was fitted at tau2 = " + io::general(temp.tau2) + ", the report adjusts with tau2 = " +
                          io::general(run.tau2) + ": it may calibrate less well here");
  }
  if (o.tta) {
    run.tta = flips_text(flips);
    run.tta_validation = tta_validation(m, cfg, flips, run.prior, run.tau2, run.temperature);
  }
  const std::string log = (fs::path(cfg.output.dir) / "metrics.csv").string();
  if (fs::exists(log)) run.metrics_csv = log;

  if (m.task.binary() && !m.task.regression()) run.screening = screening_options(m, cfg, o, prior);
  eval::HuBaseline hu;
  const io::Task task = task_of(cfg);
  if (K == task.num_classes()) hu = eval::hu_baseline((fs::path(cfg.data.cache_dir) / "manifest.csv").string(), o.split, b, task);
  else hu.note = "no HU baseline: the task has " + std::to_string(task.num_classes()) + " classes, the model " + std::to_string(K);
  if (unlabelled) run.notes.push_back(std::to_string(unlabelled) + " subjects of the cache have no label and were left out");
  if (!prior.usable() && cfg.posthoc.tau2 != 0 && !m.task.regression())
    run.notes.push_back("no post-hoc adjustment (posthoc.tau2 = " + io::general(cfg.posthoc.tau2) + " asked): training prior: " + prior.source);
  return eval::write_report(t, run, b, hu, o.out_dir.empty() ? (fs::path(cfg.output.dir) / "report").string() : o.out_dir, true);
}

}  // namespace mc::pipeline
