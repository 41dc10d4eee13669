// A generated task on small, mostly-background binary volumes (like MedMNIST's 28^3 shape
// sets): each volume is 0 except one solid ellipsoid of value 1 near the centre: class 0
// (about 60%) round, class 1 (25%) prolate (one semi-axis 1.8-2.2x the others), class 2 (15%)
// oblate (one semi-axis 0.4-0.5x). The corners are background in every volume, which is what
// makes timm's zero_init_last start dead at these sizes (pipeline/train_export.h).
#pragma once
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/random.h"
#include "io/cache.h"
#include "pipeline/config.h"

namespace mc::test {

inline void write_sparse_cache(const std::string& path, int64_t n, int64_t side, uint64_t seed) {
  Generator g(seed);
  std::vector<io::CacheRecord> recs;
  std::vector<Tensor> vols;
  for (int64_t i = 0; i < n; ++i) {
    const double u = g.uniform();
    const int64_t label = u < 0.6 ? 0 : u < 0.85 ? 1 : 2;
    double r[3];
    const double base = side * (0.12 + 0.08 * g.uniform());
    for (double& x : r) x = base * (0.9 + 0.2 * g.uniform());
    const size_t axis = size_t(g.randint(0, 3));
    if (label == 1) r[axis] *= 1.8 + 0.4 * g.uniform();
    if (label == 2) r[axis] *= 0.4 + 0.1 * g.uniform();
    double c[3];
    for (double& x : c) x = (side - 1) / 2.0 + (g.uniform() - 0.5) * side * 0.2;
    Tensor v = Tensor::zeros({1, side, side, side}, DType::F32);
    float* p = v.data<float>();
    for (int64_t d = 0; d < side; ++d)
      for (int64_t h = 0; h < side; ++h)
        for (int64_t w = 0; w < side; ++w) {
          const double a = (d - c[0]) / r[0], b = (h - c[1]) / r[1], e = (w - c[2]) / r[2];
          if (a * a + b * b + e * e <= 1) p[(d * side + h) * side + w] = 1.f;
        }
    recs.push_back({"v" + std::to_string(i), label, NAN});
    vols.push_back(v);
  }
  io::write_cache(path, recs, vols, {});
}

// train and val caches under dir (seeds apart), and the run config over them: resnet10,
// plain cross-entropy, AdamW 1e-3 cosine, flips only, on the CPU.
inline pipeline::Config sparse_config(const std::string& dir, int64_t side, int64_t n_train, int64_t n_val,
                            const std::vector<std::string>& extra = {}) {
  std::filesystem::create_directories(dir + "/cache");
  if (!std::filesystem::exists(dir + "/cache/train.safetensors")) {
    write_sparse_cache(dir + "/cache/train.safetensors", n_train, side, 1);
    write_sparse_cache(dir + "/cache/val.safetensors", n_val, side, 2);
  }
  std::vector<std::string> ov = {
      "data.cache_dir=" + dir + "/cache", "output.dir=" + dir + "/run", "model.name=resnet10",
      "loss.type=ce", "optim.lr=1.0e-3",
      "schedule.name=cosine", "train.batch_size=16", "train.device=cpu", "data.num_workers=1",
      "augment.enabled=true", "augment.rot90_prob=0", "augment.rotate_prob=0",
      "augment.intensity_prob=0", "augment.noise_prob=0", "eval.bootstrap=10",
      "posthoc.tau2=0", "posthoc.sweep=[]"};
  ov.insert(ov.end(), extra.begin(), extra.end());
  return pipeline::parse_config("", "sparse task", ov);
}

}  // namespace mc::test
