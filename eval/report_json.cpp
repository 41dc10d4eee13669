// report.json: the run, the headline evaluation, the sweep, the HU baseline, notes and files.
#include <filesystem>
#include <nlohmann/json.hpp>

#include "eval/report_text.h"

namespace mc::eval::report_text {
namespace fs = std::filesystem;
namespace {

io::Json value_ci(const MetricValue& v, const Interval* iv) {
  return {{"value", v.defined ? io::Json(v.value) : io::Json()}, {"ci", iv && iv->defined ? io::Json{iv->lo, iv->hi} : io::Json()}};
}

io::Json metrics_json(const ClassificationMetrics& m, const std::optional<BootstrapResult>& ci) {
  io::Json j = io::Json::object();
  for (const auto& [name, v] : m.named()) j[name] = value_ci(v, ci_of(ci, name));
  return j;
}

}  // namespace

std::string report_json(const Report& r) {
  const auto& run = r.run;
  auto file = [](const std::string& p) { return p.empty() ? io::Json() : io::Json(fs::path(p).filename().string()); };
  io::Json j;
  j["generator"] = "mc_eval";
  j["run"] = {{"title", run.title}, {"source", run.source}, {"model", run.model}, {"epoch", run.epoch},
              {"split", run.split}, {"cache", run.cache}, {"device", run.device},
              {"prior", run.prior.empty() ? io::Json() : io::Json(run.prior)}, {"prior_source", run.prior_source},
              {"tau2", run.tau2}, {"sweep", run.sweep}};
  j["evaluation"] = evaluation_json(r.headline);
  j["sweep"] = r.sweep ? evaluation_json(*r.sweep) : io::Json();
  j["calibration"] = calibration_json(r);
  if (r.run.crossval) j["crossval"] = crossval_json(*r.run.crossval);
  io::Json rules = io::Json::array();
  for (const HuRule& u : r.hu.rules)
    rules.push_back({{"key", u.key}, {"name", u.name}, {"feature", u.feature}, {"roi", u.roi},
                     {"thresholds", u.thresholds}, {"at_or_below", u.at_or_below}, {"n_train", u.n_train},
                     {"binary", u.binary}, {"metrics", metrics_json(u.metrics, u.ci)},
                     {"auc_osteoporosis", value_ci(u.auc_osteoporosis, u.ci ? &u.auc_osteoporosis_ci : nullptr)}});
  j["hu_baseline"] = {{"manifest", r.hu.manifest}, {"available", r.hu.available}, {"note", r.hu.note},
                      {"n_train", r.hu.n_train}, {"n_eval", r.hu.n_eval}, {"rules", std::move(rules)}};
  if (r.screening) j["screening"] = screening_json(*r.screening);
  if (r.regression) {
    const RegressionReport& g = *r.regression;
    auto vc = [](const MetricValue& v, const Interval& iv) {
      return io::Json{{"value", v.defined ? io::Json(v.value) : io::Json()}, {"ci", iv.defined ? io::Json{iv.lo, iv.hi} : io::Json()}};
    };
    j["regression"] = {{"n", g.n}, {"mae", vc(g.mae, g.mae_ci)}, {"rmse", vc(g.rmse, g.rmse_ci)},
                       {"pearson_r", vc(g.pearson, g.pearson_ci)}, {"r2", vc(g.r2, g.r2_ci)},
                       {"bland_altman", {{"bias", g.bias}, {"loa", {g.loa_lo, g.loa_hi}}}}};
  }
  j["notes"] = r.notes;
  j["files"] = {{"markdown", file(r.markdown)}, {"predictions", file(r.predictions)}, {"roc", file(r.roc)},
                {"confusion", file(r.confusion)}, {"tau2_sweep", file(r.sweep_chart)}, {"reliability", file(r.reliability)},
                {"training_curves", file(r.training_curves)}, {"pr", file(r.pr)}, {"tscore_scatter", file(r.scatter)},
                {"bland_altman", file(r.bland_altman)}};
  return io::json_text(j) + "\n";
}

}  // namespace mc::eval::report_text
