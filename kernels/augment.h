// 3D augmentation of a batch [B, C, D, H, W] f32: geometry (flips, 90-degree turns, a small
// rotation), intensity scale and shift, Gaussian noise. One launch does all of it per sample.
//
// Every random decision is drawn on the host from Philox, keyed by (seed, epoch, position in the
// epoch's global order) (augment_sample_key), into an AugmentParams struct. The CPU and CUDA
// launchers take the same host array of params, so both backends apply identical transforms and a
// batch does not depend on which thread or device built it.
//
// Geometry is one affine map around the volume centre c = ((D-1)/2, (H-1)/2, (W-1)/2) in voxel
// index space (cache volumes are isotropic cubes, so index space is physical space):
//   out[o] = in[c + A (o - c)]          (A maps an output voxel to where it is read from)
// Composition: flips first, then the 90-degree turn, then the small rotation, so
// A = A_flip * A_rot90 * A_rotate. Conventions follow numpy:
//   flip along axis a:        out[.., i_a, ..] = in[.., n_a-1-i_a, ..]
//   rot90(k=1, plane (a,b)):  out = transpose_ab(flip_b(in)) == np.rot90(in, 1, axes=(a, b)),
//                             i.e. out[i_a, i_b] = in[i_b, n-1-i_a]; only planes with n_a == n_b.
// When A only permutes and flips axes (no small rotation) the read is an exact gather; otherwise
// it is trilinear. Outside the volume the read is 0 (Border::Zero, PyTorch grid_sample
// padding 'zeros': each of the 8 neighbours outside counts as 0; 0 is air/background after the
// HU window) or the nearest edge voxel (Border::Edge: the coordinate is clamped, like 'border').
// Then  y = scale * value + shift + noise_std * n,  n ~ N(0, 1) from Philox with key noise_key
// and counter = (flat index within the sample, c*D*H*W + voxel) / 4, one Philox call giving four
// normals (Box-Muller on lanes (x, y) and (z, w)). No clipping: values may leave [0, 1].
//
// "balaug" (MedConv Table II): a per-class strength s >= 1 (the loader uses
// s_c = min(cap, (n_max / n_c)^power)) scales the magnitudes (rotation degrees, scale and shift
// ranges, noise std) by s and the probabilities of perturbations (rotation, intensity, noise) to
// min(1, p * s). Flips and 90-degree turns are symmetries whose most varied setting is p = 0.5:
// their probability rises to at most 0.5 (min(0.5, p * s); a p already >= 0.5 is kept).
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/common.h"
#include "kernels/philox.h"

namespace mc::kernels {

enum class Border : int32_t { Zero = 0, Edge = 1 };

// Per-sample parameters as the kernels consume them (plain data, host memory).
struct AugmentParams {
  float A[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};  // row-major, axes (d, h, w)
  int32_t interpolate = 0;                   // 0: A is a signed permutation: exact gather
  int32_t border = int32_t(Border::Zero);
  float scale = 1.f, shift = 0.f, noise_std = 0.f;
  uint64_t noise_key = 0;
};

// What a user configures (probabilities in [0, 1], magnitudes at strength 1).
struct AugmentConfig {
  float flip_p[3] = {0.5f, 0.5f, 0.5f};  // per axis (d, h, w)
  float rot90_p = 0.5f;    // one turn of k in {1, 2, 3} quarters, in a random eligible plane
  float rotate_p = 0.5f;   // small rotation about a random axis, angle ~ U[-deg, deg]
  float rotate_deg = 10.f;
  float intensity_p = 0.5f;  // scale ~ U[1 - s, 1 + s], shift ~ U[-t, t]
  float scale_range = 0.1f, shift_range = 0.1f;
  float noise_p = 0.5f;    // std ~ U[0, noise_std] (MONAI RandGaussianNoise)
  float noise_std = 0.02f;
  Border border = Border::Zero;
};

// The decisions for one sample in readable form (tests build these by hand).
struct AugmentDraw {
  bool flip[3] = {false, false, false};
  int rot90_plane = -1;  // -1 none; 0: (d, h), 1: (d, w), 2: (h, w)
  int rot90_k = 0;       // quarter turns, 0..3
  int rotate_axis = -1;  // -1 none; 0: about d (rotates the (h, w) plane), 1: about h, 2: about w
  float rotate_deg = 0.f;
  float scale = 1.f, shift = 0.f, noise_std = 0.f;
  uint64_t noise_key = 0;
  Border border = Border::Zero;
};

// A 64-bit key unique to (seed, epoch, position): Philox of the pair, so nearby inputs give
// unrelated keys.
uint64_t augment_sample_key(uint64_t seed, int64_t epoch, int64_t position);
// Draws a sample's decisions from Philox(counter j, key sample_key), one counter per decision.
AugmentDraw draw_augment(const AugmentConfig& cfg, float strength, uint64_t sample_key,
                         int64_t D, int64_t H, int64_t W);
AugmentParams augment_params(const AugmentDraw& d, int64_t D, int64_t H, int64_t W);

namespace cpu {
// x and y: [B, C, D, H, W] f32, distinct buffers; params: B structs (host).
void augment(const float* x, float* y, const AugmentParams* params, int64_t B, int64_t C,
             int64_t D, int64_t H, int64_t W, Stream s);
}  // namespace cpu
namespace cuda {
// Same contract on device x and y; params stay on the host (passed as kernel arguments).
void augment(const float* x, float* y, const AugmentParams* params, int64_t B, int64_t C,
             int64_t D, int64_t H, int64_t W, Stream s);
}  // namespace cuda

// ---- per-voxel math shared by both backends (so they agree to rounding) ----
namespace augment_detail {

MC_HD float fetch(const float* x, int64_t D, int64_t H, int64_t W, int64_t d, int64_t h,
                  int64_t w) {
  if (d < 0 || h < 0 || w < 0 || d >= D || h >= H || w >= W) return 0.f;
  return x[(d * H + h) * W + w];
}

MC_HD float clampf(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }

// floor() for |v| < 2^62 without a libm call (x86-64 without SSE4.1 has no floor instruction).
MC_HD int64_t floor_i(float v) {
  const int64_t i = int64_t(v);
  return float(i) > v ? i - 1 : i;
}

// Source coordinate of output voxel o along one axis: row r of c + A (o - c). The sum runs in
// this order on both backends, so a caller may hoist the first two terms out of a row.
MC_HD float source(const AugmentParams& p, int r, float c, float qd, float qh, float qw) {
  return c + p.A[r * 3] * qd + p.A[r * 3 + 1] * qh + p.A[r * 3 + 2] * qw;
}

// Reads channel volume x [D, H, W] at the continuous source (sd, sh, sw): Border and
// interpolation as the header says.
MC_HD float read(const float* x, const AugmentParams& p, int64_t D, int64_t H, int64_t W, float sd,
                 float sh, float sw) {
  if (p.border == int32_t(Border::Edge)) {
    sd = clampf(sd, 0.f, float(D - 1));
    sh = clampf(sh, 0.f, float(H - 1));
    sw = clampf(sw, 0.f, float(W - 1));
  }
  if (!p.interpolate)
    return fetch(x, D, H, W, floor_i(sd + 0.5f), floor_i(sh + 0.5f), floor_i(sw + 0.5f));
  const int64_t d0 = floor_i(sd), h0 = floor_i(sh), w0 = floor_i(sw);
  const float td = sd - float(d0), th = sh - float(h0), tw = sw - float(w0);
  if (d0 >= 0 && h0 >= 0 && w0 >= 0 && d0 + 1 < D && h0 + 1 < H && w0 + 1 < W) {
    const float* q = x + (d0 * H + h0) * W + w0;  // all eight neighbours inside: no checks
    const int64_t sH = W, sD = H * W;
    const float c00 = q[0] + tw * (q[1] - q[0]), c01 = q[sH] + tw * (q[sH + 1] - q[sH]);
    const float c10 = q[sD] + tw * (q[sD + 1] - q[sD]);
    const float c11 = q[sD + sH] + tw * (q[sD + sH + 1] - q[sD + sH]);
    const float c0 = c00 + th * (c01 - c00), c1 = c10 + th * (c11 - c10);
    return c0 + td * (c1 - c0);
  }
  // At the border a weight of exactly 0 skips its neighbour, so an edge voxel clamped to n-1
  // reads nothing beyond it and a grid-aligned read is exact.
  float acc = 0.f;
  for (int i = 0; i < 2; ++i) {
    const float wd = i ? td : 1.f - td;
    if (wd == 0.f) continue;
    for (int j = 0; j < 2; ++j) {
      const float wh = j ? th : 1.f - th;
      if (wh == 0.f) continue;
      for (int k = 0; k < 2; ++k) {
        const float ww = k ? tw : 1.f - tw;
        if (ww == 0.f) continue;
        acc += wd * wh * ww * fetch(x, D, H, W, d0 + i, h0 + j, w0 + k);
      }
    }
  }
  return acc;
}

// Box-Muller on one Philox draw: lanes (x, y) give normals 0 and 1, lanes (z, w) 2 and 3.
MC_HD void normal_pair(uint32_t a, uint32_t b, float& n0, float& n1) {
  const float u1 = 1.f - float(a >> 8) * (1.f / 16777216.f);  // (0, 1]: log is finite
  const float u2 = float(b >> 8) * (1.f / 16777216.f);
  const float rad = sqrtf(-2.f * logf(u1)), th = 6.2831853071795864f * u2;
  n0 = rad * cosf(th);
  n1 = rad * sinf(th);
}

MC_HD float normal_from(const U4& r, int lane) {
  float n0, n1;
  if (lane < 2) normal_pair(r.x, r.y, n0, n1);
  else normal_pair(r.z, r.w, n0, n1);
  return (lane & 1) ? n1 : n0;
}

}  // namespace augment_detail
}  // namespace mc::kernels
