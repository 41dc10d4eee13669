// mc_prep: NIfTI scans + segmentations + T-scores -> preprocessed L1 caches, or generated
// CT-like data (pipeline/prep_cli.h; --help for the options).
#include <iostream>

#include "pipeline/cli.h"

#include "pipeline/prep_cli.h"

static int run_main(int argc, char** argv) {
  mc::pipeline::PrepCommand cmd;
  try {
    cmd = mc::pipeline::parse_prep_command(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const std::exception& e) {
    std::cerr << "mc_prep: " << e.what() << "\n";
    return 2;
  }
  if (cmd.help) {
    std::cout << mc::pipeline::prep_usage();
    return 0;
  }
  try {
    return mc::pipeline::run_prep_command(cmd, std::cout);
  } catch (const std::exception& e) {
    std::cerr << "mc_prep: " << e.what() << "\n";
    return 1;
  }
}

// Results written to a full disk or a closed pipe are a failure, not an exit status of 0.
int main(int argc, char** argv) { return mc::pipeline::cli::finish_stdout("mc_prep", run_main(argc, argv)); }
