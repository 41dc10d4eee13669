// Seeded, reproducible random numbers: Philox-4x32-10 (counter based), so the same (seed,
// offset) gives the same numbers on every platform, thread count and device.
#pragma once
#include <cstdint>

#include "engine/tensor.h"

namespace mc {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_state(uint64_t seed, uint64_t offset) { seed_ = seed; offset_ = offset; }
  // Reserves n counters: draws are counter-indexed, so blocks can be filled in parallel.
  uint64_t advance(uint64_t n) { uint64_t o = offset_; offset_ += n; return o; }
  double uniform();   // [0, 1)
  double normal();    // N(0, 1)
  uint64_t next_u64();
  int64_t randint(int64_t lo, int64_t hi);  // [lo, hi)
 private:
  uint64_t seed_, offset_ = 0;
};

// Fill (CPU tensors, f32/f64; CUDA tensors are filled on the host and copied).
Tensor randn(const Shape& s, Generator& g, DType dt = DType::F32, double mean = 0, double stddev = 1);
Tensor rand_uniform(const Shape& s, Generator& g, double lo, double hi, DType dt = DType::F32);
void normal_(Tensor& t, Generator& g, double mean, double stddev);
void uniform_(Tensor& t, Generator& g, double lo, double hi);
// PyTorch's kaiming_normal_(mode='fan_out', nonlinearity='relu') as torchvision/timm ResNets
// use for convolutions: std = sqrt(2 / fan_out), fan_out = out_channels * kernel volume.
void kaiming_normal_fan_out_(Tensor& w, Generator& g);
// Values in a permutation order: Fisher-Yates driven by g.
void shuffle(std::vector<int64_t>& v, Generator& g);

}  // namespace mc
