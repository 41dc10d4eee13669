// Host side of the augmentation family: drawing the per-sample decisions, turning them into the
// affine map, and the CPU twin of the kernel (the reference the CUDA kernel is tested against).
#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "kernels/augment.h"

namespace mc::kernels {

namespace {

void matmul(const double* a, const double* b, double* out) {
  double r[9];
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      r[i * 3 + j] = a[i * 3] * b[j] + a[i * 3 + 1] * b[3 + j] + a[i * 3 + 2] * b[6 + j];
  std::copy(r, r + 9, out);
}

void identity(double* m) {
  std::fill(m, m + 9, 0.0);
  m[0] = m[4] = m[8] = 1.0;
}

// The two axes of a plane, ascending: plane 0 = (d, h), 1 = (d, w), 2 = (h, w).
void plane_axes(int plane, int& a, int& b) {
  a = plane == 2 ? 1 : 0;
  b = plane == 0 ? 1 : 2;
}

// Probability of a symmetry (flip, 90-degree turn) at strength s: see augment.h.
float symmetry_p(float p, float s) { return p >= 0.5f ? p : std::min(0.5f, p * s); }
float perturbation_p(float p, float s) { return std::min(1.0f, p * s); }

}  // namespace

uint64_t augment_sample_key(uint64_t seed, int64_t epoch, int64_t position) {
  // Epoch and position share the 64-bit counter (2^32 of each is far beyond any run); the key
  // is the seed with a tag so these keys never coincide with the sampling generator's stream.
  const uint64_t counter = (uint64_t(epoch) << 32) ^ uint64_t(uint32_t(position));
  const U4 r = philox4x32(counter, seed ^ 0xA5A5'0000'0000'A06Dull);
  return (uint64_t(r.x) << 32) | r.y;
}

AugmentDraw draw_augment(const AugmentConfig& cfg, float strength, uint64_t key, int64_t D,
                         int64_t H, int64_t W) {
  const float s = std::max(1.0f, strength);
  auto u = [&](uint64_t j) { return philox_uniform_d(j, key); };  // one counter per decision
  AugmentDraw d;
  d.border = cfg.border;
  for (int a = 0; a < 3; ++a) d.flip[a] = u(uint64_t(a)) < symmetry_p(cfg.flip_p[a], s);

  int eligible[3], n_eligible = 0;
  if (D == H) eligible[n_eligible++] = 0;
  if (D == W) eligible[n_eligible++] = 1;
  if (H == W) eligible[n_eligible++] = 2;
  if (n_eligible > 0 && u(3) < symmetry_p(cfg.rot90_p, s)) {
    d.rot90_plane = eligible[std::min(n_eligible - 1, int(u(4) * n_eligible))];
    d.rot90_k = 1 + std::min(2, int(u(5) * 3));
  }
  if (cfg.rotate_deg > 0 && u(6) < perturbation_p(cfg.rotate_p, s)) {
    d.rotate_axis = std::min(2, int(u(7) * 3));
    d.rotate_deg = float((2 * u(8) - 1) * cfg.rotate_deg * s);
  }
  if (u(9) < perturbation_p(cfg.intensity_p, s)) {
    d.scale = float(1 + (2 * u(10) - 1) * cfg.scale_range * s);
    d.shift = float((2 * u(11) - 1) * cfg.shift_range * s);
  }
  if (cfg.noise_std > 0 && u(12) < perturbation_p(cfg.noise_p, s)) {
    d.noise_std = float(u(13) * cfg.noise_std * s);
    const U4 r = philox4x32(14, key);
    d.noise_key = (uint64_t(r.x) << 32) | r.y;
  }
  return d;
}

AugmentParams augment_params(const AugmentDraw& d, int64_t D, int64_t H, int64_t W) {
  double A[9], m[9];
  identity(A);
  for (int a = 0; a < 3; ++a)
    if (d.flip[a]) A[a * 4] = -1.0;  // diagonal element (a, a)

  if (d.rot90_plane >= 0 && d.rot90_k % 4 != 0) {
    int a, b;
    plane_axes(d.rot90_plane, a, b);
    const int64_t n[3] = {D, H, W};
    if (n[a] != n[b])  // draw_augment never picks such a plane; a hand-built draw may
      throw std::invalid_argument("augment: 90-degree turn in a plane with unequal sides");
    // One quarter turn reads p_a = q_b, p_b = -q_a (np.rot90, centred coordinates).
    double r1[9];
    identity(r1);
    r1[a * 3 + a] = 0, r1[a * 3 + b] = 1;
    r1[b * 3 + b] = 0, r1[b * 3 + a] = -1;
    for (int k = 0; k < d.rot90_k % 4; ++k) matmul(A, r1, A);
  }

  bool interpolate = false;
  if (d.rotate_axis >= 0 && d.rotate_deg != 0.f) {
    const int a = d.rotate_axis == 0 ? 1 : 0, b = d.rotate_axis == 2 ? 1 : 2;
    const double t = double(d.rotate_deg) * 3.14159265358979323846 / 180.0;
    identity(m);
    m[a * 3 + a] = std::cos(t), m[a * 3 + b] = -std::sin(t);
    m[b * 3 + a] = std::sin(t), m[b * 3 + b] = std::cos(t);
    matmul(A, m, A);
    interpolate = true;
  }

  AugmentParams p;
  for (int i = 0; i < 9; ++i) p.A[i] = float(A[i]);
  p.interpolate = interpolate ? 1 : 0;
  p.border = int32_t(d.border);
  p.scale = d.scale;
  p.shift = d.shift;
  p.noise_std = d.noise_std;
  p.noise_key = d.noise_key;
  return p;
}

namespace cpu {

void augment(const float* x, float* y, const AugmentParams* params, int64_t B, int64_t C,
             int64_t D, int64_t H, int64_t W) {
  const int64_t vol = D * H * W;
#pragma omp parallel for collapse(3) schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t d = 0; d < D; ++d) {
        const AugmentParams& p = params[b];
        const float* xc = x + (b * C + c) * vol;
        float* yrow = y + (b * C + c) * vol + d * H * W;
        const uint64_t base = uint64_t(c * vol + d * H * W);  // flat index within the sample
        uint64_t group = ~0ull;
        U4 r{};
        for (int64_t h = 0; h < H; ++h)
          for (int64_t w = 0; w < W; ++w) {
            float v = p.scale * augment_detail::sample(xc, p, D, H, W, d, h, w) + p.shift;
            if (p.noise_std > 0.f) {
              const uint64_t idx = base + uint64_t(h * W + w);
              if ((idx >> 2) != group) r = philox4x32(group = idx >> 2, p.noise_key);
              v += p.noise_std * augment_detail::normal_from(r, int(idx & 3));
            }
            yrow[h * W + w] = v;
          }
      }
}

}  // namespace cpu
}  // namespace mc::kernels
