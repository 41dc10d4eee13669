// CUDA twin of kernels/softmax_cpu.cpp: one warp per row, statistics in double as the CPU twin
// (rows here are logits: a few to a few thousand classes, so double costs nothing measurable).
// Reductions use a fixed shuffle tree: deterministic.
#include <cuda_runtime.h>

#include "kernels/cuda_common.cuh"
#include "kernels/softmax.h"

namespace mc::kernels::cuda {
namespace {

constexpr int kWarps = 8;  // rows per block

__device__ __forceinline__ double warp_max(double v) {
  for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ double warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__global__ void softmax_fwd_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t R,
                                   int64_t C, bool log) {
  const int64_t r = int64_t(blockIdx.x) * kWarps + threadIdx.y;
  if (r >= R) return;
  const float* xr = x + r * C;
  float* yr = y + r * C;
  double m = -INFINITY;
  bool nan = false;
  for (int64_t c = threadIdx.x; c < C; c += 32) {
    m = fmax(m, double(xr[c]));
    nan |= isnan(xr[c]);
  }
  m = warp_max(m);
  // fmax drops NaN; the CPU twin's max_element does not look at NaN either, but its exp sum
  // then turns NaN: keep that by poisoning the max.
  if (__any_sync(0xffffffffu, nan)) m = NAN;
  double s = 0;
  for (int64_t c = threadIdx.x; c < C; c += 32) s += exp(double(xr[c]) - m);
  const double lse = m + ::log(warp_sum(s));
  for (int64_t c = threadIdx.x; c < C; c += 32)
    yr[c] = log ? float(double(xr[c]) - lse) : float(exp(double(xr[c]) - lse));
}

__global__ void softmax_bwd_kernel(const float* __restrict__ y, const float* __restrict__ dy,
                                   float* __restrict__ dx, int64_t R, int64_t C, bool log) {
  const int64_t r = int64_t(blockIdx.x) * kWarps + threadIdx.y;
  if (r >= R) return;
  const float *yr = y + r * C, *g = dy + r * C;
  float* d = dx + r * C;
  double s = 0;
  for (int64_t c = threadIdx.x; c < C; c += 32) s += log ? double(g[c]) : double(g[c]) * yr[c];
  s = warp_sum(s);
  for (int64_t c = threadIdx.x; c < C; c += 32)
    d[c] = log ? float(g[c] - exp(double(yr[c])) * s) : float(yr[c] * (g[c] - s));
}

unsigned blocks_for(int64_t R, int dt, const char* what) {
  MC_CHECK(dt == F32, "kernels/softmax.cu: ", what, " computes in f32, got ", dt_name(dt));
  const int64_t b = (R + kWarps - 1) / kWarps;
  MC_CHECK(b <= 0x7fffffff, "kernels/softmax.cu: ", what, ": too many rows (", R, ")");
  return unsigned(b);
}

}  // namespace

void softmax_forward(const void* x, void* y, int dt, int64_t R, int64_t C, bool log, Stream s) {
  if (R * C == 0) return;
  softmax_fwd_kernel<<<blocks_for(R, dt, "softmax"), dim3(32, kWarps), 0, s>>>(
      static_cast<const float*>(x), static_cast<float*>(y), R, C, log);
  MC_KERNEL_LAUNCHED("kernels/softmax.cu", "softmax");
}

void softmax_backward(const void* y, const void* dy, void* dx, int dt, int64_t R, int64_t C,
                      bool log, Stream s) {
  if (R * C == 0) return;
  softmax_bwd_kernel<<<blocks_for(R, dt, "softmax backward"), dim3(32, kWarps), 0, s>>>(
      static_cast<const float*>(y), static_cast<const float*>(dy), static_cast<float*>(dx), R, C,
      log);
  MC_KERNEL_LAUNCHED("kernels/softmax.cu", "softmax backward");
}

}  // namespace mc::kernels::cuda
