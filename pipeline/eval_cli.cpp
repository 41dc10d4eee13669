// mc_eval's command line (CLI11) and its two modes.
#include "pipeline/eval_cli.h"

#include <ostream>

#include "eval/screening.h"
#include "io/atomic_file.h"
#include "pipeline/config.h"
#include "pipeline/cli.h"

namespace mc::pipeline {
namespace {

const char* kUsage =
    "usage: mc_eval --config FILE.yaml [section.key=value ...] [--checkpoint W.safetensors|CV_DIR]\n"
    "               [--ensemble W2|CV_DIR ...] [--split test|val|train] [--tta] [--out DIR] [--no-progress]\n"
    "       mc_eval --predictions FILE.csv [--val-predictions VAL.csv] [options]\n";

const char* kAbout =
    "A model (--config): predicts the split's cache with the checkpoint (default\n"
    "<output.dir>/best.safetensors) and writes a report into --out (default <output.dir>/report):\n"
    "report.md, report.json, predictions.csv, roc.svg, confusion.svg, tau2_sweep.svg,\n"
    "reliability.svg (calibration before / after the checkpoint's temperature) and\n"
    "training_curves.svg. Every metric has a bootstrap interval (eval.bootstrap resamples, seed\n"
    "train.seed); probabilities are adjusted post hoc with posthoc.tau2 and the train cache's class\n"
    "counts; the sweep covers posthoc.sweep; the HU screening baselines (TotalSegmentator 90.25 HU\n"
    "on the L1 body median, Pickhardt <= 160 / 110 HU on its trabecular ROI, thresholds fitted on\n"
    "train, ACR QCT with a calibration) come from mc_prep's manifest.csv in data.cache_dir. A\n"
    "binary task adds the screening section (ROC and PR AUC; sensitivity, specificity, PPV, NPV\n"
    "at p >= 0.5, at the Youden point and at the threshold chosen on the val split for\n"
    "eval.target_sensitivity) and pr.svg; a regression head adds MAE, RMSE, r, R^2,\n"
    "tscore_scatter.svg and bland_altman.svg, and reports the derived classes.\n"
    "An ensemble (--ensemble, a cross-validation folder from mc_train --folds K as --checkpoint,\n"
    "or a config with train.all_folds and no --checkpoint) is scored on the mean of its members'\n"
    "probabilities, each after its own adjustment and temperature, into\n"
    "<output.dir>/report_ensemble_<split> by default.\n"
    "Saved predictions (--predictions) of a binary table get the same screening section; its\n"
    "positive class is the table's second class (--positive picks the other), and the threshold\n"
    "for --target-sensitivity is chosen on --val-predictions (the same task's validation\n"
    "predictions, scored with the same --tau2 and --prior) and applied to the table, as the\n"
    "checkpoint report does with its val split.";

// Options that belong to --predictions only (with --config they are config keys).
const char* kPredictionOnly[] = {"--json",   "--tau2",   "--prior",           "--bootstrap",         "--seed", "--level",
                                 "--scores", "--no-roc", "--val-predictions", "--target-sensitivity", "--positive"};

struct Options {
  std::unique_ptr<CLI::App> app;
  std::string scores;
};

Options make_options(EvalCommand& c) {
  Options o;
  o.app = cli::make_app("mc_eval", kUsage, kAbout);
  CLI::App& a = *o.app;
  const char* model = "A model (--config)";
  a.add_option("--config", c.config, "the run's config; key=value arguments override it")->type_name("FILE.yaml")->group(model);
  a.add_option("--checkpoint", c.report.checkpoint, "weights (default <output.dir>/best.safetensors), or a\n"
               "cross-validation run folder: the ensemble of its fold models")->type_name("W")->group(model);
  a.add_option("--ensemble", c.report.ensemble, "more checkpoints (or cross-validation folders): evaluate\n"
               "the ensemble, the mean of every model's probabilities")->type_name("W ...")->group(model);
  a.add_option("--split", c.report.split, "the split to evaluate: test (default), val or train")->type_name("SPLIT")->group(model);
  a.add_flag_callback("--no-progress", [&c] { c.report.progress = false; }, "no progress bar")->group(model);
  a.add_flag("--tta", c.report.tta, "test-time augmentation: mean logits over the flips training used;\n"
             "the report compares the validation split with and without it")->group(model);
  const char* saved = "Saved predictions (--predictions)";
  a.add_option("--predictions", c.predictions, "CSV with header id,label,score_0,...,score_{K-1} (or class names\n"
               "as score headers); labels are class indices or class names")->type_name("FILE")->group(saved);
  a.add_option("--tau2", c.eval.tau2, "post-hoc logit adjustment: scores = logits - tau2 * log(prior);\n"
               "several values give a sweep table (default 0 = none)")
      ->type_name("X[,Y,...]")->delimiter(',')->check(cli::number())->group(saved);
  a.add_option("--prior", c.eval.prior, "training class counts or frequencies (needed when tau2 != 0)")
      ->type_name("p0,p1,...")->delimiter(',')->check(cli::number())->group(saved);
  a.add_option("--scores", o.scores, "auto (default), logits or probabilities")->type_name("KIND")->group(saved);
  a.add_option("--bootstrap", c.eval.bootstrap.resamples, "bootstrap resamples for the confidence intervals (default 1000,\n"
               "0 = none, at most 1000000)")->type_name("B")->check(cli::count())->group(saved);
  a.add_option("--seed", c.eval.bootstrap.seed, "bootstrap seed (default 0)")->type_name("S")->check(cli::count())->group(saved);
  a.add_option("--level", c.eval.bootstrap.level, "interval level (default 0.95)")->type_name("L")->check(cli::number())->group(saved);
  a.add_flag_callback("--no-roc", [&c] { c.eval.roc = false; }, "leave ROC curve points out of the JSON")->group(saved);
  a.add_option("--val-predictions", c.val_predictions, "binary tables: validation predictions of the same task (same\n"
               "header); the threshold reaching --target-sensitivity on them is applied to the table")
      ->type_name("VAL.csv")->group(saved);
  a.add_option("--target-sensitivity", c.target_sensitivity, "binary tables: the sensitivity the validation threshold aims at\n"
               "(default 0.9)")->type_name("S")->check(CLI::Range(0.0, 1.0))->group(saved);
  a.add_option("--positive", c.positive, "binary tables: the positive class, a name or index of the\n"
               "table (default: its second class)")->type_name("CLASS")->group(saved);
  a.add_option("--json", c.json, "also write every number as JSON")->type_name("OUT.json")->group(saved);
  a.add_option("--out", c.out, "also write the report (report.md, report.json, pictures) there")->type_name("DIR");
  return o;
}

}  // namespace

std::string eval_usage() {
  EvalCommand c;
  return make_options(c).app->help();
}

EvalCommand parse_eval_command(const std::vector<std::string>& args) {
  EvalCommand c;
  c.report.progress = true;
  Options o = make_options(c);
  const cli::Parsed parsed = cli::parse(*o.app, args);
  if (parsed.help) {
    c.help = true;
    return c;
  }
  const std::string bad = cli::take_overrides(parsed.rest, c.overrides);
  MC_CHECK(bad.empty(), "unknown option or missing value: ", bad);
  if (!o.scores.empty()) c.scores = eval::parse_score_kind(o.scores);
  MC_CHECK(c.eval.bootstrap.resamples <= kMaxBootstrapResamples, "--bootstrap: ",
           c.eval.bootstrap.resamples, " resamples is more than the maximum ", kMaxBootstrapResamples);
  MC_CHECK(!c.predictions.empty() || !c.config.empty(),
           "--predictions FILE.csv is required, or --config FILE.yaml to evaluate a checkpoint");
  MC_CHECK(c.predictions.empty() || c.config.empty(), "give --config or --predictions, not both");
  if (!c.config.empty()) {
    for (const char* opt : kPredictionOnly)
      MC_CHECK(o.app->count(opt) == 0, opt, " is for --predictions; with --config set it in the config "
               "(posthoc.tau2=X, eval.bootstrap=N, train.seed=S)");
  } else {
    MC_CHECK(c.overrides.empty() && c.report.checkpoint.empty() && c.report.ensemble.empty() && c.report.split == "test",
             "key=value, --checkpoint, --ensemble and --split need --config");
  }
  return c;
}

void run_eval(const EvalCommand& cmd, std::ostream& out) {
  if (!cmd.config.empty()) {
    ReportOptions ro = cmd.report;
    ro.out_dir = cmd.out;
    const eval::Report r = write_model_report(load_config(cmd.config, cmd.overrides), ro);
    out << r.terminal << "\nreport: " << r.markdown << "\n";
    return;
  }
  eval::PredictionTable p = eval::read_predictions_csv(cmd.predictions);
  if (cmd.scores) p.kind = *cmd.scores;
  std::optional<eval::ScreeningOptions> so;
  if (p.num_classes() == 2) {
    std::optional<eval::PredictionTable> val;
    if (!cmd.val_predictions.empty()) {
      val = eval::read_predictions_csv(cmd.val_predictions);
      if (cmd.scores) val->kind = *cmd.scores;
    }
    so = eval::saved_screening_options(p, cmd.eval, val ? &*val : nullptr, cmd.positive, cmd.target_sensitivity);
    so->bootstrap = cmd.eval.bootstrap;
  } else {
    MC_CHECK(cmd.val_predictions.empty() && cmd.positive.empty(), "--val-predictions and --positive are for binary tables; ",
             cmd.predictions, " has ", p.num_classes(), " classes");
  }
  const eval::Evaluation e = eval::evaluate(p, cmd.eval);
  out << eval::format_report(e);
  std::optional<eval::Report> report;
  std::optional<eval::ScreeningReport> screening;
  if (!cmd.out.empty()) {
    report = eval::write_predictions_report(p, cmd.eval, cmd.out, so);
    screening = report->screening;
  } else if (so) {
    screening = eval::screening_report(p.labels, eval::positive_column(e.rows.at(0), so->positive), *so);  // e: at tau2[0]
  }
  if (screening) out << "\n" << eval::format_screening(*screening);
  if (!cmd.json.empty()) {
    io::write_atomic(cmd.json, eval::to_json(e));
    out << "\nwrote " << cmd.json << "\n";
  }
  if (report) out << "\nreport: " << report->markdown << "\n";
}

}  // namespace mc::pipeline
