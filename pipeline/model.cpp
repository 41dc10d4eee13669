#include "pipeline/model.h"

#include <filesystem>
#include <iostream>
#include <optional>

#include "engine/autograd.h"
#include "engine/memory.h"
#include "engine/ops.h"
#include "io/cache.h"
#include "io/checkpoint.h"
#include "io/labels.h"
#include "io/safetensors.h"
#include "io/state_dict_io.h"
#include "io/text.h"
#include "models/resnet3d.h"

namespace mc::pipeline {
namespace fs = std::filesystem;
namespace {

// "20,110,181" -> counts; empty on anything else.
std::vector<int64_t> parse_counts(const std::string& s) {
  std::vector<int64_t> v;
  size_t start = 0;
  for (;;) {
    const size_t comma = s.find(',', start);
    const auto c = io::parse_int(std::string_view(s).substr(start, comma - start));
    if (!c || *c < 0) return {};
    v.push_back(*c);
    if (comma == std::string::npos) return v;
    start = comma + 1;
  }
}

}  // namespace

Device resolve_device(Config::Train::Device d) {
  switch (d) {
    case Config::Train::Device::CPU: return Device::cpu();
    case Config::Train::Device::CUDA:
      MC_CHECK(cuda_available(), "train.device is 'cuda' but no usable GPU was found (set train.device=auto or cpu)");
      return Device::cuda(0);
    case Config::Train::Device::Auto: break;
  }
  return cuda_available() ? Device::cuda(0) : Device::cpu();
}

std::unique_ptr<nn::Module> build_model(const Config& cfg) {
  // One output per class, or one T-score for a regression head.
  auto m = models::create(std::string(model_arch(cfg.model.name)), cfg.model.in_chans,
                          task_of(cfg).num_outputs(), uint64_t(cfg.train.seed), cfg.model.zero_init_last);
  if (!cfg.model.pretrained.empty()) {
    StateDict src = io::load_safetensors(cfg.model.pretrained);
    if (cfg.model.inflate_2d)
      src = io::inflate_2d_to_3d(src, cfg.model.in_chans,
                             models::stem_weight_name(std::string(model_arch(cfg.model.name))));
    for (const auto& prefix : cfg.model.pretrained_skip) io::drop_keys(src, prefix);
    io::LoadOptions lo;
    lo.strict = false;  // the head (fc) of a pretrained backbone rarely fits our classes
    io::check_finite_weights(src, "model.pretrained '" + cfg.model.pretrained + "'");
    io::LoadReport r = io::load_state_dict(m->state_dict(), src, lo);
    std::cout << "pretrained " << cfg.model.pretrained << ": " << r.summary() << "\n";
  }
  return m;
}

ComputeMode set_compute_mode(const Config& cfg, Device dev) {
  const ComputeMode mode = compute_mode_for(cfg.train.precision, dev);
  apply(mode);
  set_deterministic(cfg.train.deterministic);
  return mode;
}

Tensor model_input(const Tensor& x, Device dev) {
  return to_layout(x.to(dev), compute_mode_for(precision(), dev).layout);
}

Config checkpoint_config(const std::string& checkpoint, const std::string& config_path,
                         const std::vector<std::string>& overrides) {
  if (!config_path.empty()) return load_config(config_path, overrides);
  MC_CHECK(checkpoint.ends_with(".safetensors"), "no --config given, and '", checkpoint,
           "' has no <tag>.state.safetensors beside it to read the run's config from (not a "
           ".safetensors name): pass --config FILE.yaml");
  const std::string state = io::state_path_for(checkpoint);
  MC_CHECK(fs::exists(state), "no --config given, and no state file '", state,
           "' beside the checkpoint to read the run's config from: pass --config FILE.yaml");
  const io::SafeTensorsFile file = io::SafeTensorsFile::open(state);  // owns the metadata
  const auto& meta = file.metadata();
  auto it = meta.find("config");
  MC_CHECK(it != meta.end() && !it->second.empty(), "no --config given, and '", state,
           "' has no \"config\" in its metadata: pass --config FILE.yaml");
  return parse_config(it->second, state + " (metadata \"config\")", overrides);
}

LoadedModel load_model(const Config& cfg, const std::string& checkpoint) {
  MC_CHECK(fs::is_regular_file(checkpoint), "checkpoint '", checkpoint, "' not found");
  Config c = cfg;
  c.model.pretrained.clear();  // every tensor comes from the checkpoint; skip the import
  LoadedModel m;
  m.checkpoint = checkpoint;
  m.in_chans = cfg.model.in_chans;
  m.num_classes = cfg.model.num_classes;
  m.task = task_of(cfg);
  const io::SafeTensorsFile file = io::SafeTensorsFile::open(checkpoint);
  // A checkpoint of another task would give numbers under the wrong class names.
  if (const auto own = io::task_from_meta(file.metadata(), checkpoint)) {
    const std::string d = own->difference(m.task);
    MC_CHECK(d.empty(), "checkpoint '", checkpoint, "' was trained for another task than the config's: ", d,
             " (checkpoint vs config). Its task: ", own->describe(), "; evaluate it with its own config "
             "(omit --config to use the one stored beside it)");
  }
  io::check_finite_weights(file.views(), "checkpoint '" + checkpoint + "'");
  m.model = build_model(c);
  try {
    io::load_state_dict(m.model->state_dict(), file.views(), io::LoadOptions{});
  } catch (const Error& e) {
    throw Error("checkpoint '" + checkpoint + "' does not fit the configured model " +
                std::string(model_arch(cfg.model.name)) + " (model.in_chans " +
                std::to_string(cfg.model.in_chans) + ", model.num_classes " +
                std::to_string(cfg.model.num_classes) + ", model.head " + io::head_name(m.task.head) + "): " + e.what());
  }
  if (auto it = file.metadata().find("epoch"); it != file.metadata().end()) {
    const auto v = parse_counts(it->second);
    if (v.size() == 1) m.epoch = v[0];
  }
  m.device = resolve_device(cfg.train.device);
  m.mode = set_compute_mode(cfg, m.device);
  m.model->to(m.device);
  m.model->eval();
  return m;
}

TrainingPrior training_prior(const Config& cfg, const std::string& checkpoint, bool cache_first) {
  const int K = cfg.model.num_classes;
  TrainingPrior p;
  std::vector<std::string> tried;
  auto from_state = [&] {
    const std::string state = checkpoint.ends_with(".safetensors") ? io::state_path_for(checkpoint) : "";
    if (state.empty() || !fs::exists(state)) {
      tried.push_back("no checkpoint state file");
      return;
    }
    try {
      const io::SafeTensorsFile file = io::SafeTensorsFile::open(state);
      const auto& meta = file.metadata();
      auto it = meta.find("class_counts");
      if (it != meta.end() && parse_counts(it->second).size() == size_t(K))
        p = {parse_counts(it->second), "class_counts of " + state};
      else
        tried.push_back("no class_counts in " + state);
    } catch (const Error& e) {
      tried.push_back(state + " unreadable (" + e.what() + ")");
    }
  };
  auto from_cache = [&] {
    const std::string train = split_cache_path(cfg.data, "train");
    if (!fs::exists(train)) {
      tried.push_back("no train cache " + train);
      return;
    }
    p = {io::Cache::open(train).class_counts(K), "train cache " + train};
  };
  if (cache_first) from_cache();
  if (p.counts.empty()) from_state();
  if (p.counts.empty() && !cache_first) from_cache();
  if (p.counts.empty()) {
    p.source = "none (";
    for (size_t i = 0; i < tried.size(); ++i) p.source += (i ? ", " : "") + tried[i];
    p.source += ")";
    return p;
  }
  for (int k = 0; k < K; ++k)
    if (p.counts[size_t(k)] <= 0) {
      p.source += ": class " + std::to_string(k) + " has no training samples, so log(prior) is undefined";
      p.counts.clear();
      break;
    }
  return p;
}

CheckpointTemperature checkpoint_temperature(const std::string& checkpoint) {
  CheckpointTemperature t;
  const std::string state = checkpoint.ends_with(".safetensors") ? io::state_path_for(checkpoint) : "";
  if (state.empty() || !fs::exists(state)) return t;
  const io::SafeTensorsFile file = io::SafeTensorsFile::open(state);
  const auto& meta = file.metadata();
  auto number = [&](const char* key) -> std::optional<double> {
    auto it = meta.find(key);
    if (it == meta.end()) return std::nullopt;
    const auto v = io::parse_double(it->second);
    MC_CHECK(v && std::isfinite(*v), "checkpoint state '", state, "': '", key, "' = '", it->second,
             "' is not a number");
    return v;
  };
  const auto value = number("temperature");
  if (!value) return t;
  MC_CHECK(*value > 0, "checkpoint state '", state, "': temperature ", *value, " must be > 0");
  t.value = *value;
  t.tau2 = number("temperature_tau2").value_or(0.0);
  t.nll_before = number("temperature_nll_before").value_or(NAN);
  t.nll_after = number("temperature_nll_after").value_or(NAN);
  t.source = "temperature of " + state;
  return t;
}

std::optional<io::Task> checkpoint_task(const std::string& checkpoint) {
  return io::task_from_meta(io::SafeTensorsFile::open(checkpoint).metadata(), checkpoint);
}

}  // namespace mc::pipeline
