// mc_predict: osteoporosis / osteopenia / normal for CT scans with a trained model
// (pipeline/predict.h; --help for the options).
#include <iostream>

#include "pipeline/cli.h"

#include "pipeline/predict.h"

static int run_main(int argc, char** argv) {
  mc::pipeline::PredictCommand cmd;
  try {
    cmd = mc::pipeline::parse_predict_command(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const std::exception& e) {
    std::cerr << "mc_predict: " << e.what() << "\n\n" << mc::pipeline::predict_usage();
    return 2;
  }
  if (cmd.help) {
    std::cout << mc::pipeline::predict_usage();
    return 0;
  }
  try {
    return mc::pipeline::run_predict(cmd, std::cout, std::cerr);
  } catch (const std::exception& e) {
    std::cerr << "mc_predict: error: " << e.what() << "\n";
    return 1;
  }
}

// Results written to a full disk or a closed pipe are a failure, not an exit status of 0.
int main(int argc, char** argv) { return mc::pipeline::cli::finish_stdout("mc_predict", run_main(argc, argv)); }
