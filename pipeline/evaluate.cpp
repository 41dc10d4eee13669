#include "pipeline/evaluate.h"

#include <cmath>
#include <filesystem>
#include <set>

#include "io/cache.h"
#include "io/labels.h"
#include "io/text.h"
#include "eval/screening.h"
#include "pipeline/model.h"
#include "pipeline/predictions.h"

namespace mc {
namespace fs = std::filesystem;

namespace {

// Labelled rows only.
PredictionTable labelled(const PredictionTable& s, int64_t* unlabelled = nullptr) {
  const int64_t K = s.num_classes();
  PredictionTable t;
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

// The binary report's operating point chosen on the validation split: the highest threshold on
// p(positive) (after the same post-hoc adjustment) reaching eval.target_sensitivity there.
ScreeningOptions screening_options(LoadedModel& m, const Config& cfg, const ReportOptions& o, const TrainingPrior& prior) {
  ScreeningOptions so;
  so.positive = m.task.positive_class();
  so.positive_name = m.task.name(so.positive);
  so.target_sensitivity = cfg.eval.target_sensitivity;
  const std::string val = split_cache_path(cfg.data, "val");
  if (!fs::exists(val)) {
    so.validation_note = "no validation cache '" + val + "'";
    return so;
  }
  const PredictionTable v = labelled(predict_split(m, cfg, "val", o.progress));
  if (v.size() == 0) {
    so.validation_note = "the validation cache '" + val + "' has no labelled subjects";
    return so;
  }
  EvalOptions eo;
  eo.tau2 = {prior.usable() ? cfg.posthoc.tau2 : 0.0};
  eo.prior.assign(prior.counts.begin(), prior.counts.end());
  eo.bootstrap.resamples = 0;
  eo.roc = false;
  const std::vector<double> probs = evaluate(v, eo).rows.at(0).probabilities.to_vector<double>();
  std::vector<double> p;
  for (int64_t i = 0; i < v.size(); ++i) p.push_back(probs[size_t(2 * i + so.positive)]);
  so.validation_threshold = threshold_for_sensitivity(v.labels, p, so.positive, so.target_sensitivity);
  so.validation_source = "the val split (n = " + std::to_string(v.size()) + ")";
  if (!so.validation_threshold) so.validation_note = "the validation split has no " + so.positive_name + " subject";
  if (o.split == "val") so.validation_source += ", the split evaluated here: optimistic";
  return so;
}

// A regression head's predicted T-scores (one score column) against the cache's true ones, and
// the table of the classes both derive with the task's thresholds (one-hot scores), which the
// classification report then scores. Subjects without a true T-score are left out.
PredictionTable derived_classes(const Task& task, const PredictionTable& s, const BootstrapOptions& b,
                                RegressionReport& report, int64_t& unlabelled) {
  MC_CHECK(s.num_classes() == 1, s.source, ": a regression head gives one score per subject, got ", s.num_classes());
  const Cache cache = Cache::open(s.source);
  PredictionTable t;
  t.source = s.source;
  t.class_names = task.classes;
  t.kind = ScoreKind::Probabilities;
  std::vector<double> truth, pred;
  const int64_t K = task.num_classes();
  for (int64_t i = 0; i < s.size(); ++i) {
    const CacheRecord& r = cache.record(s.indices[size_t(i)]);
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
  report = regression_report(truth, pred, b);
  report.thresholds = task.thresholds;
  return t;
}

}  // namespace

Report write_model_report(const Config& cfg, const ReportOptions& o) {
  MC_CHECK(o.split == "test" || o.split == "val" || o.split == "train", "unknown split '", o.split,
           "' (allowed: test, val, train)");
  const std::string checkpoint = o.checkpoint.empty() ? (fs::path(cfg.output.dir) / "best.safetensors").string() : o.checkpoint;
  MC_CHECK(fs::is_regular_file(checkpoint), "checkpoint '", checkpoint, "' not found",
           o.checkpoint.empty() ? " (the best epoch of the run in output.dir; pass --checkpoint to choose another)" : "");
  LoadedModel m = load_model(cfg, checkpoint);
  const PredictionTable s = predict_split(m, cfg, o.split, o.progress);
  const BootstrapOptions b{cfg.eval.bootstrap, uint64_t(cfg.train.seed), 0.95};
  int64_t unlabelled = 0;
  RegressionReport reg;
  const PredictionTable t = m.task.regression() ? derived_classes(m.task, s, b, reg, unlabelled) : labelled(s, &unlabelled);
  const int64_t K = t.num_classes();
  MC_CHECK(t.size() > 0, "the ", o.split, " cache '", s.source, "' has no labelled subjects to evaluate");

  ReportRun run;
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
  const std::string log = (fs::path(cfg.output.dir) / "metrics.csv").string();
  if (fs::exists(log)) run.metrics_csv = log;

  if (m.task.binary() && !m.task.regression()) run.screening = screening_options(m, cfg, o, prior);
  HuBaseline hu;
  const Task task = task_of(cfg);
  if (K == task.num_classes()) hu = hu_baseline((fs::path(cfg.data.cache_dir) / "manifest.csv").string(), o.split, b, task);
  else hu.note = "no HU baseline: the task has " + std::to_string(task.num_classes()) + " classes, the model " + std::to_string(K);
  if (unlabelled) run.notes.push_back(std::to_string(unlabelled) + " subjects of the cache have no label and were left out");
  if (!prior.usable() && cfg.posthoc.tau2 != 0 && !m.task.regression())
    run.notes.push_back("no post-hoc adjustment (posthoc.tau2 = " + general(cfg.posthoc.tau2) + " asked): training prior: " + prior.source);
  return write_report(t, run, b, hu, o.out_dir.empty() ? (fs::path(cfg.output.dir) / "report").string() : o.out_dir, true);
}

}  // namespace mc
