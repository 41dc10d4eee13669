// Philox-4x32-10 (Salmon et al., SC'11): the counter-based generator cuRAND and PyTorch use.
// Host and device share it, so CPU and GPU augmentations draw identical numbers.
#pragma once
#include <cstdint>

#include "kernels/common.h"  // MC_HD

namespace mc::kernels {

struct U4 { uint32_t x, y, z, w; };

MC_HD U4 philox4x32(uint64_t counter, uint64_t key) {
  uint32_t c0 = uint32_t(counter), c1 = uint32_t(counter >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = uint32_t(key), k1 = uint32_t(key >> 32);
  for (int r = 0; r < 10; ++r) {
    const uint64_t p0 = uint64_t(0xD2511F53u) * c0, p1 = uint64_t(0xCD9E8D57u) * c2;
    const uint32_t n0 = uint32_t(p1 >> 32) ^ c1 ^ k0, n2 = uint32_t(p0 >> 32) ^ c3 ^ k1;
    c1 = uint32_t(p1);
    c3 = uint32_t(p0);
    c0 = n0;
    c2 = n2;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return {c0, c1, c2, c3};
}

// Uniform in [0, 1) with 24 (float) or 53 (double) bits from one counter.
MC_HD float philox_uniform_f(uint64_t counter, uint64_t key) {
  return float(philox4x32(counter, key).x >> 8) * (1.0f / 16777216.0f);
}
MC_HD double philox_uniform_d(uint64_t counter, uint64_t key) {
  const U4 r = philox4x32(counter, key);
  const uint64_t bits53 = (uint64_t(r.x) << 21) | (r.y >> 11);
  return double(bits53) * (1.0 / 9007199254740992.0);
}

}  // namespace mc::kernels
