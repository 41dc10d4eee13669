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
             int64_t D, int64_t H, int64_t W);
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

// Reads channel volume x [D, H, W] at the source of output voxel (od, oh, ow).
MC_HD float sample(const float* x, const AugmentParams& p, int64_t D, int64_t H, int64_t W,
                   int64_t od, int64_t oh, int64_t ow) {
  const float cd = 0.5f * float(D - 1), ch = 0.5f * float(H - 1), cw = 0.5f * float(W - 1);
  const float qd = float(od) - cd, qh = float(oh) - ch, qw = float(ow) - cw;
  float sd = cd + p.A[0] * qd + p.A[1] * qh + p.A[2] * qw;
  float sh = ch + p.A[3] * qd + p.A[4] * qh + p.A[5] * qw;
  float sw = cw + p.A[6] * qd + p.A[7] * qh + p.A[8] * qw;
  if (p.border == int32_t(Border::Edge)) {
    sd = clampf(sd, 0.f, float(D - 1));
    sh = clampf(sh, 0.f, float(H - 1));
    sw = clampf(sw, 0.f, float(W - 1));
  }
  if (!p.interpolate)
    return fetch(x, D, H, W, int64_t(floorf(sd + 0.5f)), int64_t(floorf(sh + 0.5f)),
                 int64_t(floorf(sw + 0.5f)));
  const float fd = floorf(sd), fh = floorf(sh), fw = floorf(sw);
  const float td = sd - fd, th = sh - fh, tw = sw - fw;
  const int64_t d0 = int64_t(fd), h0 = int64_t(fh), w0 = int64_t(fw);
  // A weight of exactly 0 skips its neighbour, so an edge voxel clamped to n-1 reads nothing
  // beyond it and a grid-aligned read is exact.
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

// Standard normal number `lane` (0..3) of the group of four from one Philox draw.
MC_HD float normal_from(const U4& r, int lane) {
  const uint32_t a = lane < 2 ? r.x : r.z, b = lane < 2 ? r.y : r.w;
  const float u1 = 1.f - float(a >> 8) * (1.f / 16777216.f);  // (0, 1]: log is finite
  const float u2 = float(b >> 8) * (1.f / 16777216.f);
  const float rad = sqrtf(-2.f * logf(u1)), th = 6.2831853071795864f * u2;
  return (lane & 1) ? rad * sinf(th) : rad * cosf(th);
}

}  // namespace augment_detail
}  // namespace mc::kernels
