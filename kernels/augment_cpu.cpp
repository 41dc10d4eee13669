// Host side of the augmentation family: drawing the per-sample decisions, turning them into the
// affine map, and the CPU twin of the kernel (the reference the CUDA kernel is tested against).
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

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

namespace {

// When A only permutes and flips axes, output voxel o reads the voxel M o + off (integers), so
// a row is a constant-stride walk: the same voxels the per-voxel float path reads, found faster.
struct IntegerMap {
  bool ok = false;
  int64_t start[3] = {0, 0, 0};  // source index of output voxel (0, 0, 0) per source axis
  int M[3][3] = {};
};

IntegerMap integer_map(const AugmentParams& p, int64_t D, int64_t H, int64_t W) {
  IntegerMap m;
  if (p.interpolate) return m;
  const int64_t n[3] = {D, H, W};
  for (int r = 0; r < 3; ++r) {
    int nonzero = 0;
    double off = 0.5 * double(n[r] - 1);
    for (int k = 0; k < 3; ++k) {
      const float a = p.A[r * 3 + k];
      if (a != 0.f && a != 1.f && a != -1.f) return m;
      m.M[r][k] = int(a);
      nonzero += a != 0.f;
      off -= double(a) * 0.5 * double(n[k] - 1);
    }
    if (nonzero != 1 || off != std::floor(off)) return m;
    m.start[r] = int64_t(off);
  }
  // Affine, so the source box is spanned by the images of the output box's corners.
  for (int corner = 0; corner < 8; ++corner)
    for (int r = 0; r < 3; ++r) {
      int64_t s = m.start[r];
      for (int k = 0; k < 3; ++k) s += m.M[r][k] * ((corner >> k & 1) ? n[k] - 1 : 0);
      if (s < 0 || s >= n[r]) return m;
    }
  m.ok = true;
  return m;
}

void add_noise(float* y, int64_t n, uint64_t first, float stddev, uint64_t key) {
  for (int64_t v = 0; v < n;) {
    const uint64_t idx = first + uint64_t(v);
    const U4 r = philox4x32(idx >> 2, key);
    float z[4];  // all four normals of the draw at once (the GPU picks its lane)
    augment_detail::normal_pair(r.x, r.y, z[0], z[1]);
    augment_detail::normal_pair(r.z, r.w, z[2], z[3]);
    for (int lane = int(idx & 3); lane < 4 && v < n; ++lane, ++v) y[v] += stddev * z[lane];
  }
}

// Output depth slice d of one channel.
void slice(const float* x, float* y, const AugmentParams& p, const IntegerMap& im, int64_t D,
           int64_t H, int64_t W, int64_t d) {
  if (im.ok) {
    const int64_t stride[3] = {H * W, W, 1};
    int64_t step = 0;
    for (int r = 0; r < 3; ++r) step += im.M[r][2] * stride[r];
    for (int64_t h = 0; h < H; ++h) {
      int64_t at = 0;
      for (int r = 0; r < 3; ++r) at += (im.start[r] + im.M[r][0] * d + im.M[r][1] * h) * stride[r];
      float* yr = y + h * W;
      for (int64_t w = 0; w < W; ++w, at += step) yr[w] = p.scale * x[at] + p.shift;
    }
    return;
  }
  const float cd = 0.5f * float(D - 1), ch = 0.5f * float(H - 1), cw = 0.5f * float(W - 1);
  const float qd = float(d) - cd;
  for (int64_t h = 0; h < H; ++h) {
    // The first two terms of augment_detail::source, in its order: bit-identical when hoisted.
    const float qh = float(h) - ch;
    const float pd = cd + p.A[0] * qd + p.A[1] * qh, ph = ch + p.A[3] * qd + p.A[4] * qh,
                pw = cw + p.A[6] * qd + p.A[7] * qh;
    float* yr = y + h * W;
    for (int64_t w = 0; w < W; ++w) {
      const float qw = float(w) - cw;
      const float v = augment_detail::read(x, p, D, H, W, pd + p.A[2] * qw, ph + p.A[5] * qw,
                                           pw + p.A[8] * qw);
      yr[w] = p.scale * v + p.shift;
    }
  }
}

}  // namespace

void augment(const float* x, float* y, const AugmentParams* params, int64_t B, int64_t C,
             int64_t D, int64_t H, int64_t W, Stream) {
  const int64_t vol = D * H * W, plane = H * W;
  std::vector<IntegerMap> maps;
  for (int64_t b = 0; b < B; ++b) maps.push_back(integer_map(params[b], D, H, W));
#pragma omp parallel for collapse(3) schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t d = 0; d < D; ++d) {
        const AugmentParams& p = params[b];
        float* ys = y + (b * C + c) * vol + d * plane;
        slice(x + (b * C + c) * vol, ys, p, maps[size_t(b)], D, H, W, d);
        if (p.noise_std > 0.f) add_noise(ys, plane, uint64_t(c * vol + d * plane), p.noise_std, p.noise_key);
      }
}

}  // namespace cpu
}  // namespace mc::kernels
