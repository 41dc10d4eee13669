// The report's pictures: ROC curves, the confusion matrix, the tau2 sweep and the training
// curves, as SVG documents (io/plot.h).
#include <algorithm>
#include <cmath>

#include "eval/report_text.h"
#include "io/plot.h"
#include "io/runlog.h"
#include "io/text.h"

namespace mc::eval::report_text {
namespace {
std::string fixed3(double v) { return io::fixed(v, 3); }
}  // namespace

std::string roc_svg(const Report& r) {
  const EvalRow& h = r.headline.rows.at(0);
  io::plot::LineChart c;
  c.title = "ROC curves, one vs rest (" + where(r) + ")";
  c.x = {"false positive rate (1 - specificity)", 0, 1, true};
  c.y = {"true positive rate (sensitivity)", 0, 1, true};
  c.diagonal = true;
  c.legend = io::plot::Legend::InsideBottomRight;
  c.width = 640, c.height = 620;
  for (size_t k = 0; k < h.roc.size(); ++k) {
    const MetricValue& a = h.metrics.auc[k];
    const Interval* iv = ci_of(h.ci, "auc[" + std::to_string(k) + "]");
    io::plot::Series s;
    s.name = r.headline.class_names[k] + "  AUC " + (a.defined ? fixed3(a.value) : "undefined");
    if (a.defined && iv && iv->defined) s.name += " [" + fixed3(iv->lo) + ", " + fixed3(iv->hi) + "]";
    if (h.roc[k].defined) s.x = h.roc[k].fpr, s.y = h.roc[k].tpr;
    c.series.push_back(s);
  }
  return io::plot::svg(c);
}

std::string sweep_svg(const Report& r) {
  io::plot::BarChart c;
  c.title = "Post-hoc logit adjustment sweep (" + (r.run.split.empty() ? r.run.source : r.run.split + " split") + ")";
  c.x_label = "tau2   (scores = logits - tau2 * log prior)";
  c.y = {"", 0, 1, true};
  const std::vector<std::pair<std::string, std::string>> shown = {
      {"accuracy", "accuracy"}, {"balanced_accuracy", "balanced accuracy"},
      {"f1_weighted", "F1 (weighted)"}, {"auc_macro", "ROC AUC (macro)"}};
  for (const auto& [key, label] : shown) c.series.emplace_back().name = label;
  for (const EvalRow& row : r.sweep->rows) {
    if (row.tau2 == r.run.tau2) c.highlight = int(c.categories.size()), c.highlight_label = "reported";
    c.categories.push_back(row.tau2 == 0 ? "0 (none)" : tau_text(row.tau2));
    for (size_t i = 0; i < shown.size(); ++i) {
      const MetricValue v = metric(row.metrics, shown[i].first);
      const Interval* iv = ci_of(row.ci, shown[i].first);
      c.series[i].values.push_back(v.defined ? v.value : NAN);
      if (iv) {
        c.series[i].lo.push_back(iv->defined ? iv->lo : NAN);
        c.series[i].hi.push_back(iv->defined ? iv->hi : NAN);
      }
    }
  }
  c.width = std::max(640, 110 + 64 * int(c.categories.size()) + 190);
  return io::plot::svg(c);
}

std::optional<std::string> curves_svg(Report& r) {
  std::vector<io::LogRow> rows;
  try {
    rows = io::RunLog::read_csv(r.run.metrics_csv);
  } catch (const std::exception& e) {
    r.notes.push_back("training curves left out: " + r.run.metrics_csv + " unreadable (" + e.what() + ")");
    return std::nullopt;
  }
  if (rows.empty()) return std::nullopt;
  auto column = [&](const std::string& name) {
    std::vector<double> v;
    for (const io::LogRow& row : rows) {
      double x = NAN;
      for (const auto& [k, value] : row)
        if (k == name) x = value;
      v.push_back(x);
    }
    return v;
  };
  const std::vector<double> epoch = column("epoch");
  io::plot::LineChart loss, val;
  loss.title = "Loss";
  loss.x = val.x = {"epoch", io::plot::kAuto, io::plot::kAuto, false, true};
  loss.y.label = "loss";
  auto series = [&](const char* name, const char* key, bool dashed = false) {
    io::plot::Series s;
    s.name = name, s.x = epoch, s.y = column(key), s.dashed = dashed;
    return s;
  };
  loss.series = {series("train", "train_loss"), series("validation", "val_loss", true)};
  val.title = "Validation metrics (as mc_train logged them)";
  val.y = {"", 0, 1, true};
  val.series = {series("accuracy", "val_accuracy"), series("balanced accuracy", "val_balanced_accuracy"),
                series("ROC AUC (macro)", "val_auc_macro")};
  if (r.run.epoch > 0) loss.vlines = val.vlines = {{double(r.run.epoch), "checkpoint (epoch " + std::to_string(r.run.epoch) + ")"}};
  return io::plot::svg_panels({loss, val}, 1, "Training curves");
}

std::string confusion_svg(const Report& r) {
  return io::plot::svg(io::plot::ConfusionChart{"Confusion matrix (" + where(r) + ")", r.headline.class_names,
                                        r.headline.rows.at(0).metrics.confusion});
}

}  // namespace mc::eval::report_text
