// CUDA twin of cpu::augment: one thread per output voxel, the same per-voxel math
// (augment_detail in augment.h). Params travel as kernel arguments, up to kChunk samples per
// launch, so the launch needs no device allocation or copy and can be captured in a CUDA graph.
#include <cuda_runtime.h>

#include <algorithm>

#include "kernels/augment.h"
#include "kernels/cuda_common.cuh"

namespace mc::kernels::cuda {

namespace {

constexpr int kChunk = 32;  // 32 x 64-byte params = 2 KiB, well inside the 4 KiB argument limit
struct ParamChunk {
  AugmentParams p[kChunk];
};

// Grid: x over the H*W plane, y over depth, z over (sample, channel): no 64-bit divisions.
__global__ void augment_kernel(const float* __restrict__ x, float* __restrict__ y, ParamChunk pc,
                               int C, int D, int H, int W) {
  const int hw = int(blockIdx.x) * blockDim.x + threadIdx.x;
  if (hw >= H * W) return;
  const int d = blockIdx.y, bc = blockIdx.z, b = bc / C, c = bc - b * C;
  const int h = hw / W, w = hw - h * W;
  const int64_t vol = int64_t(D) * H * W, v = int64_t(d) * H * W + hw;
  const AugmentParams& p = pc.p[b];
  const float cd = 0.5f * float(D - 1), ch = 0.5f * float(H - 1), cw = 0.5f * float(W - 1);
  const float qd = float(d) - cd, qh = float(h) - ch, qw = float(w) - cw;
  const float sd = augment_detail::source(p, 0, cd, qd, qh, qw);
  const float sh = augment_detail::source(p, 1, ch, qd, qh, qw);
  const float sw = augment_detail::source(p, 2, cw, qd, qh, qw);
  float val = p.scale * augment_detail::read(x + int64_t(bc) * vol, p, D, H, W, sd, sh, sw) + p.shift;
  if (p.noise_std > 0.f) {
    const uint64_t idx = uint64_t(c * vol + v);  // flat index within the sample, as on the CPU
    val += p.noise_std * augment_detail::normal_from(philox4x32(idx >> 2, p.noise_key), int(idx & 3));
  }
  y[int64_t(bc) * vol + v] = val;
}

}  // namespace

void augment(const float* x, float* y, const AugmentParams* params, int64_t B, int64_t C,
             int64_t D, int64_t H, int64_t W, Stream s) {
  if (B == 0 || C == 0 || D == 0 || H * W == 0) return;
  MC_CHECK(D <= 65535 && kChunk * C <= 65535,  // grid y and z limits
           "augment: depth ", D, " or channel count ", C, " too large for the grid");
  const int64_t per_sample = C * D * H * W;
    for (int64_t b0 = 0; b0 < B; b0 += kChunk) {
    const int64_t nb = std::min<int64_t>(kChunk, B - b0);
    ParamChunk pc;
    std::copy(params + b0, params + b0 + nb, pc.p);
    const dim3 grid(unsigned((H * W + kThreads - 1) / kThreads), unsigned(D), unsigned(nb * C));
    augment_kernel<<<grid, kThreads, 0, s>>>(x + b0 * per_sample, y + b0 * per_sample, pc, int(C),
                                            int(D), int(H), int(W));
    MC_KERNEL_LAUNCHED("kernels/augment.cu", "augment");
  }
}

}  // namespace mc::kernels::cuda
