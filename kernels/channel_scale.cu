// CUDA twin of kernels/channel_scale_cpu.cpp (contract in kernels/channel_scale.h). Forward: one
// thread per element, one rounding (bit-equal to the CPU in f32). Gate gradient: NCDHW one
// block per (n, c) row, NDHWC a 32-channel x 8-row tile per block; fixed-order float sums.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <type_traits>

#include "kernels/channel_scale.h"
#include "kernels/cuda_common.cuh"

namespace mc::kernels::cuda {
namespace {

#define MC_LAUNCHED(what) MC_KERNEL_LAUNCHED("kernels/channel_scale.cu", what)

template <class T, bool CL>
__global__ void scale_kernel(const T* __restrict__ x, const T* __restrict__ g, T* __restrict__ y,
                             int64_t C, int64_t S, int64_t total) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int64_t nc = CL ? (i / (S * C)) * C + i % C : i / S;
    y[i] = from_f<T>(__fmul_rn(to_f(x[i]), to_f(g[nc])));
  }
}

template <class T>
__global__ void gate_rows_kernel(const T* __restrict__ x, const T* __restrict__ dy,
                                 T* __restrict__ dg, int64_t S) {
  __shared__ float part[kThreads];
  const int64_t row = blockIdx.x;
  float acc = 0.f;
  for (int64_t s = threadIdx.x; s < S; s += blockDim.x)
    acc = __fadd_rn(acc, __fmul_rn(to_f(dy[row * S + s]), to_f(x[row * S + s])));
  part[threadIdx.x] = acc;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w >>= 1) {
    if (int(threadIdx.x) < w) part[threadIdx.x] += part[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) dg[row] = from_f<T>(part[0]);
}

template <class T>
__global__ void gate_cl_kernel(const T* __restrict__ x, const T* __restrict__ dy,
                               T* __restrict__ dg, int64_t C, int64_t S) {
  __shared__ float part[8][33];
  const int64_t n = blockIdx.y, c = int64_t(blockIdx.x) * 32 + threadIdx.x;
  float acc = 0.f;
  if (c < C)
    for (int64_t s = threadIdx.y; s < S; s += 8) {
      const int64_t i = (n * S + s) * C + c;
      acc = __fadd_rn(acc, __fmul_rn(to_f(dy[i]), to_f(x[i])));
    }
  part[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    float t = 0.f;
    for (int r = 0; r < 8; ++r) t += part[r][threadIdx.x];
    dg[n * C + c] = from_f<T>(t);
  }
}

template <class F> void by_type(int dt, int layout, const char* what, F&& f) {
  MC_CHECK(layout == NCDHW || layout == NDHWC, "kernels/channel_scale.cu: ", what,
           ": unknown layout code ", layout);
  MC_CHECK(dt == F32 || dt == BF16, "kernels/channel_scale.cu: ", what, " takes f32 or bf16, got ",
           dt_name(dt));
  const bool cl = layout == NDHWC;
  if (dt == F32)
    cl ? f(float{}, std::true_type{}) : f(float{}, std::false_type{});
  else
    cl ? f(bf16{}, std::true_type{}) : f(bf16{}, std::false_type{});
}

}  // namespace

void channel_scale_forward(const void* x, const void* g, void* y, int dt, int64_t N, int64_t C,
                           int64_t S, int layout, Stream s) {
  const int64_t total = N * C * S;
  if (total == 0) return;
  by_type(dt, layout, "channel_scale", [&](auto t, auto cl) {
    using T = decltype(t);
    scale_kernel<T, decltype(cl)::value><<<grid_for(total), kThreads, 0, s>>>(
        static_cast<const T*>(x), static_cast<const T*>(g), static_cast<T*>(y), C, S, total);
  });
  MC_LAUNCHED("channel_scale");
}

void channel_scale_backward_gate(const void* x, const void* dy, void* dg, int dt, int64_t N,
                                 int64_t C, int64_t S, int layout, Stream s) {
  if (N * C == 0) return;
  by_type(dt, layout, "channel_scale backward", [&](auto t, auto cl) {
    using T = decltype(t);
    if constexpr (decltype(cl)::value) {
      MC_CHECK(N <= 65535, "channel_scale backward: batch of ", N, " is too large for the grid");
      gate_cl_kernel<T><<<dim3(unsigned((C + 31) / 32), unsigned(N)), dim3(32, 8), 0, s>>>(
          static_cast<const T*>(x), static_cast<const T*>(dy), static_cast<T*>(dg), C, S);
    } else {
      gate_rows_kernel<T><<<unsigned(N * C), kThreads, 0, s>>>(
          static_cast<const T*>(x), static_cast<const T*>(dy), static_cast<T*>(dg), S);
    }
  });
  MC_LAUNCHED("channel_scale backward");
}

}  // namespace mc::kernels::cuda
