// mc_train --config FILE.yaml [key=value ...] [--resume] [--folds K]: the command line, then
// pipeline/train.h (or pipeline/crossval.h for a cross-validation run).
#include <CLI/CLI.hpp>
#include <unistd.h>

#include <csignal>
#include <iostream>

#include "pipeline/cli.h"

#include "pipeline/crossval.h"
#include "pipeline/train.h"

namespace {
std::atomic<bool> g_stop{false};
void on_sigint(int) {
  if (g_stop.exchange(true)) std::_Exit(130);  // a second Ctrl-C stops at once
  const char msg[] = "\nstopping after this epoch (Ctrl-C again to abort)\n";
  (void)!write(2, msg, sizeof(msg) - 1);
}

int usage_error(const std::string& msg) {
  std::cerr << "mc_train: " << msg << " (see --help)\n";
  return 2;
}
}  // namespace

static int run_main(int argc, char** argv) {
  CLI::App app("Trains a model as the config describes (on the GPU when there is one). Ctrl-C\n"
               "finishes the running epoch and leaves a resumable checkpoint; --resume continues\n"
               "from <output.dir>/last.safetensors. --folds K trains K cross-validation folds into\n"
               "<output.dir>/fold_<k>/ (resuming any unfinished one) and writes one report of the pooled\n"
               "out-of-fold predictions to <output.dir>/report/; add --fold k to train one fold per process.",
               "mc_train");
  std::string config;
  std::vector<std::string> overrides;
  bool resume = false;
  app.add_option("--config", config, "the run's YAML file")->option_text("FILE.yaml");
  app.add_flag("--resume", resume, "continue the run in output.dir (cross-validation runs always resume)");
  int folds = 0;
  app.add_option("--folds", folds, "cross-validation as one run: train.all_folds=true data.split.folds=K")
      ->option_text("K")
      ->check(CLI::Range(3, 100));
  int only_fold = -1;
  app.add_option("--fold", only_fold,
                 "with --folds K: train fold k alone, so that K processes (one per GPU: "
                 "CUDA_VISIBLE_DEVICES=k) train the folds at once into the same output.dir; the "
                 "one that finishes the last fold writes the pooled report")
      ->option_text("k");
  std::string export_init, export_steps;
  app.add_option("--export-init", export_init,
                 "write the weights training starts from (after init or model.pretrained) to FILE: "
                 "for checking a run against PyTorch (benchmarks/pytorch/train_parity.py)")
      ->option_text("FILE.safetensors");
  app.add_option("--export-steps", export_steps,
                 "write, per step, the batch's cache indices and labels, each sample's augmentation, "
                 "the learning rate and the loss, and each validation's metrics, to FILE (JSON "
                 "lines; reads each step's loss as it is taken, one host wait per step; off by "
                 "default); with --export-init, what train_parity.py replays in PyTorch")
      ->option_text("FILE.jsonl");
  bool float64 = false;
  app.add_flag("--float64", float64,
               "train in float64 on the CPU (weights, moments, activations, loss): for comparing "
               "with PyTorch in float64, where two correct engines agree to ~1e-10, not for real runs");
  app.add_option("overrides", overrides, "section.key=value, the value in YAML")->option_text("KEY=VALUE ...");
  app.allow_extras();  // unknown arguments are reported below, as the other programs do
  app.footer("\n" + mc::pipeline::config_help());
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return usage_error(e.what());
  }
  for (const auto& a : app.remaining()) return usage_error("unknown argument '" + a + "'");
  for (const auto& o : overrides)
    if (o.find('=') == std::string::npos) return usage_error("unknown argument '" + o + "'");
  if (config.empty()) return usage_error("--config FILE.yaml is required");
  try {
    if (folds) overrides.insert(overrides.end(), {"train.all_folds=true", "data.split.folds=" + std::to_string(folds)});
    mc::pipeline::Config cfg = mc::pipeline::load_config(config, overrides);
    std::signal(SIGINT, on_sigint);
    mc::pipeline::TrainHooks hooks;
    hooks.stop = &g_stop;
    hooks.export_init = export_init;
    hooks.export_steps = export_steps;
    hooks.float64 = float64;
    if (cfg.train.all_folds) {
      if (!export_init.empty() || !export_steps.empty())
        return usage_error("--export-init / --export-steps are for one run, not a cross-validation");
      const mc::pipeline::CrossValSummary cv = mc::pipeline::train_folds(cfg, hooks, only_fold);
      std::cout << "run folder: " << cv.run_dir << "\n";
      return cv.interrupted ? 130 : 0;
    }
    if (only_fold != -1)
      return usage_error("--fold k needs --folds K (or train.all_folds: true); to train on fold k of mc_prep's "
                         "kfold caches as a single run, set data.split.fold=k");
    mc::pipeline::TrainSummary s = mc::pipeline::train(cfg, resume, hooks);
    std::cout << "best epoch " << s.best_epoch << " (score " << s.best_value << "): " << s.best_weights
              << "\nrun folder: " << s.run_dir << "\n";
    return s.interrupted ? 130 : 0;
  } catch (const std::exception& e) {
    std::cerr << "mc_train: error: " << e.what() << "\n";
    return 1;
  }
}

// Results written to a full disk or a closed pipe are a failure, not an exit status of 0.
int main(int argc, char** argv) { return mc::pipeline::cli::finish_stdout("mc_train", run_main(argc, argv)); }
