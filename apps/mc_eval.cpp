// mc_eval: the evaluation report of a trained model, or metrics with bootstrap intervals for
// saved predictions (pipeline/eval_cli.h; --help for the options).
#include <iostream>

#include "pipeline/cli.h"

#include "pipeline/eval_cli.h"

static int run_main(int argc, char** argv) {
  mc::pipeline::EvalCommand cmd;
  try {
    cmd = mc::pipeline::parse_eval_command(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const std::exception& e) {
    std::cerr << "mc_eval: " << e.what() << "\n\n" << mc::pipeline::eval_usage();
    return 2;
  }
  if (cmd.help) {
    std::cout << mc::pipeline::eval_usage();
    return 0;
  }
  try {
    mc::pipeline::run_eval(cmd, std::cout);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "mc_eval: " << e.what() << "\n";
    return 1;
  }
}

// Results written to a full disk or a closed pipe are a failure, not an exit status of 0.
int main(int argc, char** argv) { return mc::pipeline::cli::finish_stdout("mc_eval", run_main(argc, argv)); }
