// mc_eval: the evaluation report of a trained model (apps/common/report.h), or metrics with
// bootstrap intervals for saved predictions (losses/evaluation.h).
//   mc_eval --config FILE.yaml [key=value ...] [--checkpoint W] [--split test|val|train] [--out DIR]
//   mc_eval --predictions FILE.csv [--tau2 X[,Y,...]] [--prior p0,p1,...] [--bootstrap 1000]
//           [--seed S] [--level 0.95] [--scores auto|logits|probabilities] [--json OUT.json] [--out DIR]
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "apps/common/report.h"
#include "losses/evaluation.h"

namespace {

const char* kUsage =
    "usage: mc_eval --config FILE.yaml [section.key=value ...] [--checkpoint W.safetensors]\n"
    "               [--split test|val|train] [--out DIR] [--no-progress]\n"
    "       mc_eval --predictions FILE.csv [options]\n"
    "\n"
    "A model (--config): predicts the split's cache with the checkpoint (default\n"
    "<output.dir>/best.safetensors) and writes a report into --out (default <output.dir>/report):\n"
    "report.md, report.json, predictions.csv, roc.svg, confusion.svg, tau2_sweep.svg and\n"
    "training_curves.svg. Every metric has a bootstrap interval (eval.bootstrap resamples, seed\n"
    "train.seed); probabilities are adjusted post hoc with posthoc.tau2 and the train cache's class\n"
    "counts; the sweep covers posthoc.sweep; an HU screening baseline comes from mc_prep's\n"
    "manifest.csv in data.cache_dir.\n"
    "\n"
    "Saved predictions (--predictions):\n"
    "  --predictions FILE   CSV with header id,label,score_0,...,score_{K-1} (or class names\n"
    "                       as score headers); labels are class indices or class names\n"
    "  --tau2 X[,Y,...]     post-hoc logit adjustment: scores = logits - tau2 * log(prior);\n"
    "                       several values give a sweep table (default 0 = none)\n"
    "  --prior p0,p1,...    training class counts or frequencies (needed when tau2 != 0)\n"
    "  --scores KIND        auto (default), logits or probabilities\n"
    "  --bootstrap B        bootstrap resamples for the confidence intervals (default 1000,\n"
    "                       0 = none)\n"
    "  --seed S             bootstrap seed (default 0)\n"
    "  --level L            interval level (default 0.95)\n"
    "  --no-roc             leave ROC curve points out of the JSON\n"
    "  --json OUT.json      also write every number as JSON\n"
    "  --out DIR            also write the report (report.md, report.json, pictures) there\n";

[[noreturn]] void usage_error(const std::string& msg) {
  std::cerr << "mc_eval: " << msg << "\n" << kUsage;
  std::exit(2);
}

double to_double(const std::string& opt, const std::string& s) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0') usage_error(opt + ": '" + s + "' is not a number");
  return v;
}

std::vector<double> to_list(const std::string& opt, const std::string& s) {
  std::vector<double> v;
  size_t start = 0;
  for (;;) {
    const size_t comma = s.find(',', start);
    v.push_back(to_double(opt, s.substr(start, comma - start)));
    if (comma == std::string::npos) return v;
    start = comma + 1;
  }
}

uint64_t to_count(const std::string& opt, const std::string& s) {
  char* end = nullptr;
  const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || s[0] == '-') usage_error(opt + ": '" + s + "' is not a count");
  return v;
}

void print_report(const mc::Report& r) {
  std::cout << r.terminal << "\nreport: " << r.markdown << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  std::string predictions, json, config, out;
  std::vector<std::string> overrides, prediction_only;
  mc::ReportOptions ro;
  ro.progress = true;
  mc::EvalOptions o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      return 0;
    }
    if (a == "--no-roc") {
      o.roc = false;
      prediction_only.push_back(a);
      continue;
    }
    if (a == "--no-progress") {
      ro.progress = false;
      continue;
    }
    if (a.rfind("--", 0) != 0 && a.find('=') != std::string::npos) {
      overrides.push_back(a);
      continue;
    }
    if (i + 1 >= argc) usage_error("unknown option or missing value: " + a);
    const std::string v = argv[++i];
    if (a == "--predictions") predictions = v;
    else if (a == "--config") config = v;
    else if (a == "--checkpoint") ro.checkpoint = v;
    else if (a == "--split") ro.split = v;
    else if (a == "--out") out = v;
    else if (a == "--json") json = v, prediction_only.push_back(a);
    else if (a == "--tau2") o.tau2 = to_list(a, v), prediction_only.push_back(a);
    else if (a == "--prior") o.prior = to_list(a, v), prediction_only.push_back(a);
    else if (a == "--bootstrap") o.bootstrap.resamples = int64_t(to_count(a, v)), prediction_only.push_back(a);
    else if (a == "--seed") o.bootstrap.seed = to_count(a, v), prediction_only.push_back(a);
    else if (a == "--level") o.bootstrap.level = to_double(a, v), prediction_only.push_back(a);
    else if (a == "--scores") {
      try {
        o.kind = mc::parse_score_kind(v);
      } catch (const mc::Error& e) {
        usage_error(e.what());
      }
      prediction_only.push_back(a);
    } else usage_error("unknown option " + a);
  }
  if (predictions.empty() && config.empty())
    usage_error("--predictions FILE.csv is required, or --config FILE.yaml to evaluate a checkpoint");
  if (!predictions.empty() && !config.empty()) usage_error("give --config or --predictions, not both");
  if (!config.empty() && !prediction_only.empty())
    usage_error(prediction_only[0] + " is for --predictions; with --config set it in the config (posthoc.tau2=X, "
                "eval.bootstrap=N, train.seed=S)");
  if (config.empty() && (!overrides.empty() || !ro.checkpoint.empty() || ro.split != "test"))
    usage_error("key=value, --checkpoint and --split need --config");

  try {
    if (!config.empty()) {
      ro.out_dir = out;
      print_report(mc::write_model_report(mc::load_config(config, overrides), ro));
      return 0;
    }
    const mc::PredictionTable p = mc::read_predictions_csv(predictions);
    const mc::Evaluation e = mc::evaluate(p, o);
    std::cout << mc::format_report(e);
    if (!json.empty()) {
      std::ofstream f(json);
      f << mc::to_json(e);
      f.close();
      if (!f) throw mc::Error("cannot write " + json);
      std::cout << "\nwrote " << json << "\n";
    }
    if (!out.empty()) std::cout << "\nreport: " << mc::write_predictions_report(p, o, out).markdown << "\n";
  } catch (const std::exception& e) {
    std::cerr << "mc_eval: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
