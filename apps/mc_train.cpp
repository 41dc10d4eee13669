// mc_train --config FILE.yaml [key=value ...] [--resume]
#include <csignal>
#include <cstring>
#include <iostream>
#include <unistd.h>

#include "apps/common/trainer.h"

namespace {
std::atomic<bool> g_stop{false};
void on_sigint(int) {
  if (g_stop.exchange(true)) std::_Exit(130);  // a second Ctrl-C stops at once
  const char msg[] = "\nstopping after this epoch (Ctrl-C again to abort)\n";
  (void)!write(2, msg, sizeof(msg) - 1);
}

int usage(int code) {
  std::cout << "usage: mc_train --config FILE.yaml [section.key=value ...] [--resume]\n\n"
               "Trains a model as the config describes (on the GPU when there is one). Ctrl-C\n"
               "finishes the running epoch and leaves a resumable checkpoint; --resume continues\n"
               "from <output.dir>/last.safetensors.\n\nConfiguration keys:\n"
            << mc::config_help();
  return code;
}
}  // namespace

int main(int argc, char** argv) {
  std::string config;
  std::vector<std::string> overrides;
  bool resume = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") return usage(0);
    if (a == "--resume") resume = true;
    else if (a == "--config" && i + 1 < argc) config = argv[++i];
    else if (a.rfind("--config=", 0) == 0) config = a.substr(9);
    else if (a.find('=') != std::string::npos && a[0] != '-') overrides.push_back(a);
    else {
      std::cerr << "mc_train: unknown argument '" << a << "' (see --help)\n";
      return 2;
    }
  }
  if (config.empty()) {
    std::cerr << "mc_train: --config FILE.yaml is required (see --help)\n";
    return 2;
  }
  try {
    mc::Config cfg = mc::load_config(config, overrides);
    std::signal(SIGINT, on_sigint);
    mc::TrainHooks hooks;
    hooks.stop = &g_stop;
    mc::TrainSummary s = mc::train(cfg, resume, hooks);
    std::cout << "best epoch " << s.best_epoch << " (score " << s.best_value << "): " << s.best_weights
              << "\nrun folder: " << s.run_dir << "\n";
    return s.interrupted ? 130 : 0;
  } catch (const std::exception& e) {
    std::cerr << "mc_train: error: " << e.what() << "\n";
    return 1;
  }
}
