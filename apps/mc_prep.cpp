// mc_prep: NIfTI scans + segmentations + T-scores -> preprocessed L1 caches (io/prep.h),
// or generated CT-like data (io/synthetic.h). Glue only.
#include <iostream>
#include <optional>

#include "io/prep.h"
#include "pipeline/prep_config.h"
#include "io/progress.h"
#include "io/synthetic.h"

int main(int argc, char** argv) {
  mc::PrepCommand cmd;
  try {
    std::vector<std::string> args(argv + 1, argv + argc);
    if (!args.empty() && (args[0] == "--config" || args[0].rfind("--config=", 0) == 0)) {
      // mc_prep --config FILE.yaml [key=value ...]: every setting from the run config.
      std::string path = args[0] == "--config" ? (args.size() > 1 ? args[1] : "") : args[0].substr(9);
      if (path.empty()) throw mc::Error("--config needs a file");
      std::vector<std::string> overrides(args.begin() + (args[0] == "--config" ? 2 : 1), args.end());
      cmd.prep = mc::prep_options_from_config(mc::load_config(path, overrides));
    } else {
      cmd = mc::parse_prep_command(args);
    }
  } catch (const std::exception& e) {
    std::cerr << "mc_prep: " << e.what() << "\n";
    return 2;
  }
  if (cmd.help) {
    std::cout << mc::prep_usage();
    return 0;
  }
  try {
    const mc::PrepOptions& o = cmd.prep;
    if (cmd.synthetic > 0) {
      mc::SyntheticOptions s;
      s.count = cmd.synthetic, s.size = cmd.synthetic_size, s.seed = o.seed, s.workers = o.workers;
      std::optional<mc::Progress> bar;
      if (o.progress) bar.emplace("synthetic", s.count);
      const auto subjects = mc::write_synthetic_dataset(o.out_dir, s, bar ? &*bar : nullptr);
      if (bar) bar->finish();
      std::cout << mc::synthetic_summary(subjects, o.out_dir);
      return 0;
    }
    const mc::PrepResult r = mc::run_prep(o);
    std::cout << mc::prep_summary(r);
    return r.ok > 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "mc_prep: " << e.what() << "\n";
    return 1;
  }
}
