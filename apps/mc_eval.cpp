// mc_eval: metrics with bootstrap intervals for saved predictions (losses/evaluation.h).
//   mc_eval --predictions FILE.csv [--tau2 X[,Y,...]] [--prior p0,p1,...] [--bootstrap 1000]
//           [--seed S] [--level 0.95] [--scores auto|logits|probabilities] [--json OUT.json]
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "losses/evaluation.h"

namespace {

const char* kUsage =
    "usage: mc_eval --predictions FILE.csv [options]\n"
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
    "  --json OUT.json      also write every number as JSON\n";

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

}  // namespace

int main(int argc, char** argv) {
  std::string predictions, json;
  mc::EvalOptions o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      return 0;
    }
    if (a == "--no-roc") {
      o.roc = false;
      continue;
    }
    if (i + 1 >= argc) usage_error("unknown option or missing value: " + a);
    const std::string v = argv[++i];
    if (a == "--predictions") predictions = v;
    else if (a == "--json") json = v;
    else if (a == "--tau2") o.tau2 = to_list(a, v);
    else if (a == "--prior") o.prior = to_list(a, v);
    else if (a == "--bootstrap") o.bootstrap.resamples = int64_t(to_count(a, v));
    else if (a == "--seed") o.bootstrap.seed = to_count(a, v);
    else if (a == "--level") o.bootstrap.level = to_double(a, v);
    else if (a == "--scores") {
      try {
        o.kind = mc::parse_score_kind(v);
      } catch (const mc::Error& e) {
        usage_error(e.what());
      }
    } else usage_error("unknown option " + a);
  }
  if (predictions.empty()) usage_error("--predictions FILE.csv is required");
  try {
    const mc::Evaluation e = mc::evaluate(mc::read_predictions_csv(predictions), o);
    std::cout << mc::format_report(e);
    if (!json.empty()) {
      std::ofstream out(json);
      out << mc::to_json(e);
      out.close();
      if (!out) throw mc::Error("cannot write " + json);
      std::cout << "\nwrote " << json << "\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "mc_eval: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
