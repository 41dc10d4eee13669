// The report folder: evaluates once (headline and sweep), then writes the pictures, the JSON,
// the Markdown and, for a checkpoint's report, the predictions.
#include "eval/report.h"

#include <filesystem>
#include <set>

#include "eval/report_text.h"
#include "io/atomic_file.h"
#include "io/text.h"

namespace mc::eval {
namespace fs = std::filesystem;
using namespace report_text;

Report write_report(const PredictionTable& table, ReportRun run, const BootstrapOptions& bootstrap,
                    HuBaseline hu, const std::string& out_dir, bool write_predictions) {
  Report r;
  r.notes = run.notes;
  r.run = std::move(run);
  r.hu = std::move(hu);
  r.dir = out_dir;
  EvalOptions eo;
  eo.tau2 = {r.run.tau2};
  eo.prior = r.run.prior;
  eo.bootstrap = bootstrap;
  r.headline = evaluate(table, eo);
  if (!r.run.sweep.empty()) {
    eo.tau2 = r.run.sweep;
    eo.roc = false;
    r.sweep = evaluate(table, eo);
  }
  add_calibration(r, table, bootstrap);
  if (table.num_classes() == 2) {
    ScreeningOptions so = r.run.screening ? *r.run.screening : saved_screening_options(table, {}, nullptr, "", 0.9);
    so.bootstrap = bootstrap;
    r.screening = screening_report(table.labels, positive_column(r.headline.rows.at(0), so.positive), so);
  }
  if (r.hu.available &&
      std::set<std::string>(r.hu.eval_ids.begin(), r.hu.eval_ids.end()) != std::set<std::string>(table.ids.begin(), table.ids.end()))
    r.notes.push_back("the HU baseline covers the " + std::to_string(r.hu.n_eval) + " usable manifest rows of the split; the model "
                      "was scored on the " + std::to_string(table.size()) + " subjects of its cache: the sets differ");

  fs::create_directories(out_dir);
  auto path = [&](const char* name) { return (fs::path(out_dir) / name).string(); };
  auto save_svg = [&](std::string& field, const char* name, const std::string& svg) {
    field = path(name);
    io::write_atomic(field, svg);
  };
  if (write_predictions) {
    r.predictions = path("predictions.csv");
    io::write_atomic(r.predictions, predictions_csv(table));
  }
  save_svg(r.roc, "roc.svg", roc_svg(r));
  save_svg(r.confusion, "confusion.svg", confusion_svg(r));
  if (r.sweep) save_svg(r.sweep_chart, "tau2_sweep.svg", sweep_svg(r));
  if (r.calibration) save_svg(r.reliability, "reliability.svg", reliability_svg(r));
  if (r.screening) save_svg(r.pr, "pr.svg", pr_svg(r));
  if (r.run.regression) {
    r.regression = r.run.regression;
    save_svg(r.scatter, "tscore_scatter.svg", regression_scatter_svg(*r.regression, where(r)));
    save_svg(r.bland_altman, "bland_altman.svg", bland_altman_svg(*r.regression, where(r)));
  }
  if (!r.run.metrics_csv.empty())
    if (auto svg = curves_svg(r)) save_svg(r.training_curves, "training_curves.svg", *svg);
  r.markdown = path("report.md");
  r.json = path("report.json");
  io::write_atomic(r.json, report_json(r));
  io::write_atomic(r.markdown, markdown(r));

  r.terminal = format_report(r.headline);
  if (r.regression)
    r.terminal += "\nT-score regression: MAE " + io::fixed(r.regression->mae.value, 3) + ", RMSE " + io::fixed(r.regression->rmse.value, 3) +
                  ", Pearson r " + (r.regression->pearson.defined ? io::fixed(r.regression->pearson.value, 3) : "n/a") + ", R^2 " +
                  (r.regression->r2.defined ? io::fixed(r.regression->r2.value, 3) : "n/a") + " (n = " + std::to_string(r.regression->n) +
                  "); the metrics above are of the classes derived from the predicted T\n";
  if (r.screening) r.terminal += "\n" + format_screening(*r.screening);
  if (r.run.crossval) r.terminal += "\n" + crossval_terminal(*r.run.crossval);
  if (r.sweep) r.terminal += "\npost-hoc adjustment sweep\n" + sweep_table(r);
  if (r.calibration) r.terminal += "\n" + calibration_terminal(r);
  r.terminal += "\nHU screening baseline\n" + (r.hu.available ? hu_table(r) : "") + (r.hu.note.empty() ? "" : r.hu.note + "\n");
  for (const auto& n : r.notes) r.terminal += "note: " + n + "\n";
  return r;
}

Report write_predictions_report(const PredictionTable& p, const EvalOptions& o, const std::string& out_dir,
                                std::optional<ScreeningOptions> screening) {
  ReportRun run;
  run.title = fs::path(p.source).filename().string();
  run.source = p.source;
  run.prior = o.prior;
  run.prior_source = o.prior.empty() ? "" : "--prior";
  MC_CHECK(!o.tau2.empty(), "evaluation: no tau2 values");
  run.tau2 = o.tau2[0];
  if (o.tau2.size() > 1) run.sweep = o.tau2;
  run.screening = std::move(screening);
  HuBaseline hu;
  hu.note = "no HU baseline for saved predictions: it needs the run's config and mc_prep's manifest (mc_eval --config)";
  return write_report(p, run, o.bootstrap, hu, out_dir, false);
}

}  // namespace mc::eval
