// A model from a run config, and a trained model outside training: the checkpoint's config, the
// model with its weights, and the training prior for post-hoc adjustment. What mc_predict and
// mc_eval load their model with (and mc_train builds its model with).
#pragma once
#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/nn.h"
#include "engine/precision.h"
#include "pipeline/config.h"

namespace mc::pipeline {

// train.device: cpu, cuda (an error without a usable GPU) or auto.
Device resolve_device(Config::Train::Device d);
// models::create by model.name, plus model.pretrained's weights when configured (non-strict:
// the head of a pretrained backbone rarely fits our classes; what loaded is printed).
std::unique_ptr<nn::Module> build_model(const Config& cfg);

// The one place a program turns its config into the engine's compute mode on `dev`
// (train.precision, train.deterministic; engine/precision.h): sets it process-wide and returns
// it. mc_train, mc_eval, mc_predict and mc_bench all go through compute_mode_for, so what is
// benchmarked is what runs.
ComputeMode set_compute_mode(const Config& cfg, Device dev);
// x on `dev` in the layout the current precision wants there (NDHWC for tf32/bf16 on a GPU):
// what every program hands to a model's forward.
Tensor model_input(const Tensor& x, Device dev);

// The run config behind a checkpoint: config_path (+ overrides) when given, else the resolved
// config mc_train stored in the metadata of <tag>.state.safetensors beside the weights.
Config checkpoint_config(const std::string& checkpoint, const std::string& config_path,
                         const std::vector<std::string>& overrides = {});

struct LoadedModel {
  std::unique_ptr<nn::Module> model;  // eval mode, on `device`
  Device device = Device::cpu();
  std::string checkpoint;
  int64_t epoch = -1;  // from the weights' metadata when mc_train wrote them, else -1
  int64_t in_chans = 1, num_classes = 3;
  io::Task task;         // the config's, checked against the checkpoint's own when it carries one
  ComputeMode mode;  // set by load_model for `device`
};
// build_model(cfg) without its pretrained import (the checkpoint replaces every tensor), then a
// strict load: every tensor must be there with its shape; "module." prefixes (DataParallel,
// MedicalNet) are stripped. Errors name the checkpoint and what does not fit.
LoadedModel load_model(const Config& cfg, const std::string& checkpoint);

// Training class counts for post-hoc logit adjustment, from the "class_counts" metadata of the
// checkpoint's state file ("20,110,181") or from the train cache of cfg.data, in that order
// (cache_first: the other way round). counts is empty when neither is there, or when a class has
// no samples (log 0): `source` then says why, and callers skip the adjustment.
struct TrainingPrior {
  std::vector<int64_t> counts;
  std::string source;
  bool usable() const { return !counts.empty(); }
};
TrainingPrior training_prior(const Config& cfg, const std::string& checkpoint, bool cache_first = false);

// Temperature scaling stored by mc_train beside the weights ("temperature" and
// "temperature_tau2" in the state file's metadata): fitted on the validation split by NLL on
// softmax((logits - tau2 log prior) / T) at the run's tau2 (eval/calibration.h). value 1 and
// source "" when the checkpoint carries none; a malformed value is an error naming the file.
struct CheckpointTemperature {
  double value = 1;
  double tau2 = 0;          // the post-hoc adjustment it was fitted at
  double nll_before = NAN, nll_after = NAN;  // validation NLL at T = 1 and at T
  std::string source;       // "temperature of <state file>" or ""
  bool present() const { return !source.empty(); }
};
CheckpointTemperature checkpoint_temperature(const std::string& checkpoint);

// The task stored in a checkpoint's weights metadata (mc_train writes it); nullopt for weights
// from elsewhere or from before tasks were data.
std::optional<io::Task> checkpoint_task(const std::string& checkpoint);

}  // namespace mc::pipeline
