#include "pipeline/train_export.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/check.h"

namespace mc::pipeline {
namespace {

// The side of a ResNet's last feature map for an input side n: stem conv (k7 s2 p3), max pool
// (k3 s2 p1), then three stride-2 stages (the 1x1x1 stride-2 shortcut keeps positions 0, 2, ...).
int64_t final_side(int64_t n) {
  auto half = [](int64_t s) { return (s - 1) / 2 + 1; };
  n = half(half(n));
  for (int i = 0; i < 3; ++i) n = half(n);
  return n;
}

std::string vol_text(const Shape& v) {
  std::ostringstream s;
  for (size_t i = 1; i < v.size(); ++i) s << (i > 1 ? "x" : "") << v[i];
  return s.str();
}

}  // namespace

FeatureSpread feature_spread(const Tensor& pooled) {
  MC_CHECK(pooled.dim() == 2, "feature_spread: pooled features must be [N, F], got ", pooled.str());
  FeatureSpread s;
  s.batch = pooled.shape()[0];
  s.features = pooled.shape()[1];
  const std::vector<double> v = pooled.to_vector<double>();
  const int64_t N = s.batch, F = s.features;
  double abs_sum = 0;
  for (int64_t f = 0; f < F; ++f) {
    double mean = 0;
    for (int64_t n = 0; n < N; ++n) mean += v[size_t(n * F + f)];
    mean /= double(N);
    double var = 0;
    for (int64_t n = 0; n < N; ++n) {
      const double x = v[size_t(n * F + f)];
      var += (x - mean) * (x - mean);
      abs_sum += std::abs(x);
    }
    s.max_std = std::max(s.max_std, std::sqrt(var / double(N)));
  }
  s.mean_abs = N * F > 0 ? abs_sum / double(N * F) : 0;
  return s;
}

std::string dead_start_warning(const FeatureSpread& s, const Config& cfg, const Shape& volume) {
  std::ostringstream w;
  w << "warning: dead start: the pooled features of the first batch are the same for all "
    << s.batch << " volumes (largest standard deviation across the batch " << s.max_std << ", over "
    << s.features << " features), so the classifier sees one input and only its bias learns: the "
    << "loss stays at the class prior's until rounding noise breaks the symmetry, if ever.\n";
  const int64_t side = volume.size() == 4 ? final_side(std::min({volume[1], volume[2], volume[3]})) : 0;
  if (cfg.model.zero_init_last) {
    w << "  cause: constant features at init. model.zero_init_last=true starts every residual block "
         "as its shortcut, and this network's stride-2 1x1x1 shortcuts reduce a "
      << vol_text(volume) << " volume to a " << side << "^3 map read from a sparse lattice of input "
      << "voxels" << (side == 1 ? " (here one corner: background, the same in every volume)" : "")
      << ".\n  fix: model.zero_init_last=false (the default), or a larger data.volume.";
  } else {
    w << "  cause: constant features at init with model.zero_init_last=false: are the training "
         "volumes all alike (blank, or one value)? Check the cache and data.windows; weights from "
         "model.pretrained may not fit the input either.\n  fix: check the data (mc_eval on the "
         "train split shows it), or start from the default init.";
  }
  return w.str();
}

StepExporter::StepExporter(const std::string& path, const Config& cfg, const std::string& train_cache,
                           const std::string& val_cache, const std::vector<int64_t>& class_counts,
                           int64_t steps_per_epoch, const Shape& volume, const std::string& init_weights,
                           const std::string& dtype)
    : path_(path), out_(path, std::ios::trunc) {
  MC_CHECK(out_.good(), "--export-steps: cannot write '", path, "'");
  nlohmann::ordered_json h;
  h["format"] = "medconv-train-steps";
  h["version"] = 1;
  nlohmann::ordered_json c = nlohmann::ordered_json::object();
  for (const auto& [k, v] : config_flat(cfg)) c[k] = v;
  h["config"] = c;
  h["train_cache"] = train_cache;
  h["val_cache"] = val_cache;
  h["class_counts"] = class_counts;
  h["steps_per_epoch"] = steps_per_epoch;
  h["volume_shape"] = volume;
  h["init_weights"] = init_weights;
  h["dtype"] = dtype;
  line(h.dump());
}

void StepExporter::step(const StepRecord& r) {
  nlohmann::ordered_json j;
  j["epoch"] = r.epoch;
  j["step"] = r.step;
  j["global_step"] = r.global_step;
  j["lr"] = r.lr;
  j["loss"] = r.loss;
  j["indices"] = r.indices;
  j["labels"] = r.labels;
  nlohmann::ordered_json aug = nlohmann::ordered_json::array();
  for (const kernels::AugmentParams& p : r.augment) {
    nlohmann::ordered_json a;
    a["A"] = std::vector<float>(p.A, p.A + 9);
    a["interpolate"] = p.interpolate;
    a["border"] = p.border;
    a["scale"] = p.scale;
    a["shift"] = p.shift;
    a["noise_std"] = p.noise_std;
    aug.push_back(a);
  }
  j["augment"] = aug;
  line(j.dump());
}

void StepExporter::validation(const ValidationRecord& r) {
  nlohmann::ordered_json j;
  j["epoch"] = r.epoch;
  j["validation"] = {{"loss", r.loss}, {"accuracy", r.accuracy},
                     {"balanced_accuracy", r.balanced_accuracy}, {"auc_macro", r.auc_macro}};
  line(j.dump());
}

void StepExporter::line(const std::string& text) {
  out_ << text << '\n';
  out_.flush();  // a run that fails later still leaves every step before it
  MC_CHECK(out_.good(), "--export-steps: writing '", path_, "' failed");
}

}  // namespace mc::pipeline
