#include "pipeline/evaluate.h"

#include <filesystem>
#include <set>

#include "eval/calibration.h"
#include "io/labels.h"
#include "io/text.h"
#include "pipeline/model.h"
#include "pipeline/predictions.h"

namespace mc {
namespace fs = std::filesystem;

namespace {

// Did TTA help? The validation split with and without it: balanced accuracy, macro AUC, NLL and
// ECE of the probabilities as reported (tau2, temperature). A Markdown table.
std::string tta_validation(LoadedModel& m, const Config& cfg, const std::vector<Flip>& flips,
                           const std::vector<double>& prior, double tau2, double temperature) {
  std::string md = "| validation | balanced accuracy | macro AUC | NLL | ECE |\n|:--|--:|--:|--:|--:|\n";
  for (bool with : {false, true}) {
    PredictionTable v = predict_split(m, cfg, "val", false, with ? flips : std::vector<Flip>{});
    PredictionTable t = v;  // labelled rows only
    t.ids.clear(), t.labels.clear(), t.scores.clear();
    const int64_t K = v.num_classes();
    for (int64_t i = 0; i < v.size(); ++i)
      if (v.labels[size_t(i)] >= 0) {
        t.ids.push_back(v.ids[size_t(i)]);
        t.labels.push_back(v.labels[size_t(i)]);
        t.scores.insert(t.scores.end(), v.scores.begin() + i * K, v.scores.begin() + (i + 1) * K);
      }
    MC_CHECK(t.size() > 0, "--tta: the val cache has no labelled subjects to compare on");
    EvalOptions eo;
    eo.tau2 = {tau2};
    eo.prior = prior;
    eo.bootstrap.resamples = 0;
    eo.roc = false;
    const ClassificationMetrics mm = evaluate(t, eo).rows.at(0).metrics;
    const std::vector<double> p = calibrated_probabilities(t.scores, K, prior, tau2, temperature);
    md += "| " + std::string(with ? "with TTA" : "without") + " | " + fixed(100 * mm.balanced_accuracy.value, 2) + " | " +
          (mm.auc_macro.defined ? fixed(100 * mm.auc_macro.value, 2) : "n/a") + " | " + fixed(mean_nll(p, t.labels, K), 4) +
          " | " + fixed(expected_calibration_error(p, t.labels, K, 15), 4) + " |\n";
  }
  return md;
}

}  // namespace

Report write_model_report(const Config& cfg, const ReportOptions& o) {
  MC_CHECK(o.split == "test" || o.split == "val" || o.split == "train", "unknown split '", o.split,
           "' (allowed: test, val, train)");
  const std::string checkpoint = o.checkpoint.empty() ? (fs::path(cfg.output.dir) / "best.safetensors").string() : o.checkpoint;
  MC_CHECK(fs::is_regular_file(checkpoint), "checkpoint '", checkpoint, "' not found",
           o.checkpoint.empty() ? " (the best epoch of the run in output.dir; pass --checkpoint to choose another)" : "");
  LoadedModel m = load_model(cfg, checkpoint);
  const std::vector<Flip> flips = o.tta ? tta_flips(cfg) : std::vector<Flip>{};
  const PredictionTable s = predict_split(m, cfg, o.split, o.progress, flips);
  const int64_t K = s.num_classes();

  PredictionTable t;  // the labelled rows
  t.source = s.source;
  t.class_names = s.class_names;
  t.kind = s.kind;
  int64_t unlabelled = 0;
  for (int64_t i = 0; i < s.size(); ++i) {
    if (s.labels[size_t(i)] < 0) {
      ++unlabelled;
      continue;
    }
    t.ids.push_back(s.ids[size_t(i)]);
    t.labels.push_back(s.labels[size_t(i)]);
    t.scores.insert(t.scores.end(), s.scores.begin() + i * K, s.scores.begin() + (i + 1) * K);
  }
  MC_CHECK(t.size() > 0, "the ", o.split, " cache '", s.source, "' has no labelled subjects to evaluate");

  ReportRun run;
  run.title = std::string(model_arch(cfg.model.name)) + " on the " + o.split + " split";
  run.source = checkpoint;
  run.model = std::string(model_arch(cfg.model.name)) + " (" + std::to_string(cfg.model.in_chans) + " input channel" +
              (cfg.model.in_chans == 1 ? "" : "s") + ", " + std::to_string(K) + " classes)";
  run.epoch = m.epoch;
  run.split = o.split;
  run.cache = s.source;
  run.device = m.device.str();
  const TrainingPrior prior = training_prior(cfg, checkpoint, /*cache_first=*/true);
  run.prior_source = prior.source;
  run.prior.assign(prior.counts.begin(), prior.counts.end());
  if (prior.usable()) {
    run.tau2 = cfg.posthoc.tau2;
    std::set<double, std::greater<>> taus(cfg.posthoc.sweep.begin(), cfg.posthoc.sweep.end());
    taus.insert({cfg.posthoc.tau2, 0.0});  // the reported value and the unadjusted model
    run.sweep.assign(taus.begin(), taus.end());
  }
  const CheckpointTemperature temp = checkpoint_temperature(checkpoint);
  if (temp.present()) {
    run.temperature = temp.value;
    run.temperature_source = "fitted on the validation split by mc_train, " + temp.source;
    if (temp.tau2 != run.tau2)
      run.notes.push_back("the temperature was fitted at tau2 = " + general(temp.tau2) + ", the report adjusts with tau2 = " +
                          general(run.tau2) + ": it may calibrate less well here");
  }
  if (o.tta) {
    run.tta = flips_text(flips);
    run.tta_validation = tta_validation(m, cfg, flips, run.prior, run.tau2, run.temperature);
  }
  const std::string log = (fs::path(cfg.output.dir) / "metrics.csv").string();
  if (fs::exists(log)) run.metrics_csv = log;

  const BootstrapOptions b{cfg.eval.bootstrap, uint64_t(cfg.train.seed), 0.95};
  HuBaseline hu;
  if (K == kNumClasses) hu = hu_baseline((fs::path(cfg.data.cache_dir) / "manifest.csv").string(), o.split, b);
  else hu.note = "no HU baseline: it predicts the " + std::to_string(kNumClasses) + " WHO classes, the model has " + std::to_string(K);
  if (unlabelled) run.notes.push_back(std::to_string(unlabelled) + " subjects of the cache have no label and were left out");
  if (!prior.usable() && cfg.posthoc.tau2 != 0)
    run.notes.push_back("no post-hoc adjustment (posthoc.tau2 = " + general(cfg.posthoc.tau2) + " asked): training prior: " + prior.source);
  return write_report(t, run, b, hu, o.out_dir.empty() ? (fs::path(cfg.output.dir) / "report").string() : o.out_dir, true);
}

}  // namespace mc
