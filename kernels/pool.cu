// CUDA twins of kernels/pool_cpu.cpp (contract in kernels/pool.h), NCDHW or NDHWC, f32 or bf16.
//
// Max pool forward: one thread per output element, first maximum wins, NaN propagates (as the
// CPU twin and PyTorch). Backward: one thread per input element sums, in output order, the
// gradients of the windows whose argmax is that element; the CPU twin scatters in the same
// output order, so f32 results are bitwise equal, and no atomics are needed.
// Global average pool: fixed-order tree reductions in float; backward broadcasts dy / S.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <type_traits>

#include "kernels/cuda_common.cuh"
#include "kernels/pool.h"

namespace mc::kernels::cuda {
namespace {

#define MC_LAUNCHED(what) MC_KERNEL_LAUNCHED("kernels/pool.cu", what)


// Geometry in plain ints for the device (PoolGeom's std::array is host-only in spirit).
struct G {
  int64_t N, C, D, H, W, oD, oH, oW;
  int kd, kh, kw, sd, sh, sw, pd, ph, pw;
};
// Average pool: the clipped window [lo, hi) of output o on one axis, and the outputs
// [first, last] whose windows cover input i (as the CPU twin).
__device__ __forceinline__ void window(int64_t o, int k, int s, int p, int64_t in, int64_t& lo,
                                       int64_t& hi) {
  lo = o * s - p;
  hi = min(lo + k, in);
  lo = max(lo, int64_t(0));
}
__device__ __forceinline__ void covering(int64_t i, int k, int s, int p, int64_t out,
                                         int64_t& first, int64_t& last) {
  const int64_t q = i + p;
  first = q < k ? 0 : (q - k) / s + 1;
  last = min(q / s, out - 1);
}
G make(const PoolGeom& g) {
  G r;
  r.N = g.N, r.C = g.C, r.D = g.D, r.H = g.H, r.W = g.W;
  r.oD = g.out(0), r.oH = g.out(1), r.oW = g.out(2);
  r.kd = int(g.k[0]), r.kh = int(g.k[1]), r.kw = int(g.k[2]);
  r.sd = int(g.stride[0]), r.sh = int(g.stride[1]), r.sw = int(g.stride[2]);
  r.pd = int(g.pad[0]), r.ph = int(g.pad[1]), r.pw = int(g.pad[2]);
  return r;
}

// Element (n, c, plane index p) of a [N, C, P] or [N, P, C] buffer.
template <bool CL>
__device__ __forceinline__ int64_t at(int64_t n, int64_t c, int64_t p, int64_t C, int64_t P) {
  return CL ? (n * P + p) * C + c : (n * C + c) * P + p;
}

template <class T, bool CL>
__global__ void maxpool_fwd_kernel(G g, const T* __restrict__ x, T* __restrict__ y,
                                   int32_t* __restrict__ argmax) {
  const int64_t oP = g.oD * g.oH * g.oW, iP = g.D * g.H * g.W, total = g.N * g.C * oP;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t o = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; o < total; o += stride) {
    int64_t n, c, op;
    if (CL) {
      c = o % g.C;
      op = (o / g.C) % oP;
      n = o / (g.C * oP);
    } else {
      op = o % oP;
      c = (o / oP) % g.C;
      n = o / (oP * g.C);
    }
    const int64_t ow = op % g.oW, oh = (op / g.oW) % g.oH, od = op / (g.oW * g.oH);
    float best = 0.f;
    int64_t arg = -1;
    bool nan = false;
    for (int a = 0; a < g.kd && !nan; ++a) {
      const int64_t id = od * g.sd - g.pd + a;
      if (id < 0 || id >= g.D) continue;
      for (int b = 0; b < g.kh && !nan; ++b) {
        const int64_t ih = oh * g.sh - g.ph + b;
        if (ih < 0 || ih >= g.H) continue;
        for (int e = 0; e < g.kw; ++e) {
          const int64_t iw = ow * g.sw - g.pw + e;
          if (iw < 0 || iw >= g.W) continue;
          const int64_t p = (id * g.H + ih) * g.W + iw;
          const float v = to_f(x[at<CL>(n, c, p, g.C, iP)]);
          if (arg < 0 || v > best || isnan(v)) {
            best = v;
            arg = p;
            if (isnan(v)) {
              nan = true;
              break;
            }
          }
        }
      }
    }
    y[o] = from_f<T>(best);  // an input value: exact in T
    argmax[o] = int32_t(arg);
  }
}

// Output windows along one axis that contain input index i: [lo, hi].
__device__ __forceinline__ void cover(int64_t i, int k, int s, int p, int64_t out, int64_t& lo,
                                      int64_t& hi) {
  const int64_t first = i + p - k + 1;  // smallest o*s that still reaches i
  lo = first <= 0 ? 0 : (first + s - 1) / s;
  hi = (i + p) / s;
  if (hi > out - 1) hi = out - 1;
}

template <class T, bool CL>
__global__ void maxpool_bwd_kernel(G g, const T* __restrict__ dy,
                                   const int32_t* __restrict__ argmax, T* __restrict__ dx) {
  const int64_t oP = g.oD * g.oH * g.oW, iP = g.D * g.H * g.W, total = g.N * g.C * iP;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    int64_t n, c, p;
    if (CL) {
      c = i % g.C;
      p = (i / g.C) % iP;
      n = i / (g.C * iP);
    } else {
      p = i % iP;
      c = (i / iP) % g.C;
      n = i / (iP * g.C);
    }
    const int64_t iw = p % g.W, ih = (p / g.W) % g.H, id = p / (g.W * g.H);
    int64_t d0, d1, h0, h1, w0, w1;
    cover(id, g.kd, g.sd, g.pd, g.oD, d0, d1);
    cover(ih, g.kh, g.sh, g.ph, g.oH, h0, h1);
    cover(iw, g.kw, g.sw, g.pw, g.oW, w0, w1);
    float acc = 0.f;
    for (int64_t od = d0; od <= d1; ++od)
      for (int64_t oh = h0; oh <= h1; ++oh)
        for (int64_t ow = w0; ow <= w1; ++ow) {
          const int64_t o = at<CL>(n, c, (od * g.oH + oh) * g.oW + ow, g.C, oP);
          if (argmax[o] == p) acc += to_f(dy[o]);
        }
    dx[i] = from_f<T>(acc);
  }
}

__device__ float block_sum(float v, float* smem) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  v = threadIdx.x < blockDim.x / 32 ? smem[threadIdx.x] : 0.f;
  if (warp == 0)
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;  // valid in thread 0
}

// NCDHW: one block per (n, c) row of S contiguous values.
template <class T>
__global__ void gap_fwd_rows_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t S) {
  __shared__ float smem[kThreads / 32];
  const T* row = x + int64_t(blockIdx.x) * S;
  float acc = 0.f;
  for (int64_t s = threadIdx.x; s < S; s += blockDim.x) acc += to_f(row[s]);
  acc = block_sum(acc, smem);
  if (threadIdx.x == 0) y[blockIdx.x] = from_f<T>(acc / float(S));
}

// NDHWC: block (32 channels x 8 rows of the spatial axis) per (channel tile, n).
template <class T>
__global__ void gap_fwd_cl_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t C,
                                  int64_t S) {
  __shared__ float part[8][33];
  const int64_t n = blockIdx.y, c = int64_t(blockIdx.x) * 32 + threadIdx.x;
  float acc = 0.f;
  if (c < C)
    for (int64_t s = threadIdx.y; s < S; s += 8) acc += to_f(x[(n * S + s) * C + c]);
  part[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    float t = 0.f;
    for (int r = 0; r < 8; ++r) t += part[r][threadIdx.x];
    y[n * C + c] = from_f<T>(t / float(S));
  }
}

template <class T, bool CL>
__global__ void gap_bwd_kernel(const T* __restrict__ dy, T* __restrict__ dx, int64_t C, int64_t S,
                               int64_t total) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int64_t nc = CL ? (i / (S * C)) * C + i % C : i / S;
    dx[i] = from_f<T>(float(double(to_f(dy[nc])) / double(S)));
  }
}

// One thread per output element; the sum runs in the CPU twin's order (d, h, w).
template <class T, bool CL>
__global__ void avgpool_fwd_kernel(G g, const T* __restrict__ x, T* __restrict__ y) {
  const int64_t oP = g.oD * g.oH * g.oW, iP = g.D * g.H * g.W, total = g.N * g.C * oP;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t o = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; o < total; o += stride) {
    int64_t n, c, op;
    if (CL) {
      c = o % g.C, op = (o / g.C) % oP, n = o / (g.C * oP);
    } else {
      op = o % oP, c = (o / oP) % g.C, n = o / (oP * g.C);
    }
    const int64_t ow = op % g.oW, oh = (op / g.oW) % g.oH, od = op / (g.oW * g.oH);
    int64_t d0, d1, h0, h1, w0, w1;
    window(od, g.kd, g.sd, g.pd, g.D, d0, d1);
    window(oh, g.kh, g.sh, g.ph, g.H, h0, h1);
    window(ow, g.kw, g.sw, g.pw, g.W, w0, w1);
    float acc = 0.f;
    for (int64_t d = d0; d < d1; ++d)
      for (int64_t h = h0; h < h1; ++h)
        for (int64_t w = w0; w < w1; ++w)
          acc = __fadd_rn(acc, to_f(x[at<CL>(n, c, (d * g.H + h) * g.W + w, g.C, iP)]));
    y[o] = from_f<T>(__fdiv_rn(acc, float((d1 - d0) * (h1 - h0) * (w1 - w0))));
  }
}

// One thread per input element gathers dy / count over its covering windows.
template <class T, bool CL>
__global__ void avgpool_bwd_kernel(G g, const T* __restrict__ dy, T* __restrict__ dx) {
  const int64_t oP = g.oD * g.oH * g.oW, iP = g.D * g.H * g.W, total = g.N * g.C * iP;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    int64_t n, c, ip;
    if (CL) {
      c = i % g.C, ip = (i / g.C) % iP, n = i / (g.C * iP);
    } else {
      ip = i % iP, c = (i / iP) % g.C, n = i / (iP * g.C);
    }
    const int64_t w = ip % g.W, h = (ip / g.W) % g.H, d = ip / (g.W * g.H);
    int64_t a0, a1, b0, b1, e0, e1;
    covering(d, g.kd, g.sd, g.pd, g.oD, a0, a1);
    covering(h, g.kh, g.sh, g.ph, g.oH, b0, b1);
    covering(w, g.kw, g.sw, g.pw, g.oW, e0, e1);
    float acc = 0.f;
    for (int64_t od = a0; od <= a1; ++od)
      for (int64_t oh = b0; oh <= b1; ++oh)
        for (int64_t ow = e0; ow <= e1; ++ow) {
          int64_t d0, d1, h0, h1, w0, w1;
          window(od, g.kd, g.sd, g.pd, g.D, d0, d1);
          window(oh, g.kh, g.sh, g.ph, g.H, h0, h1);
          window(ow, g.kw, g.sw, g.pw, g.W, w0, w1);
          const float cnt = float((d1 - d0) * (h1 - h0) * (w1 - w0));
          acc = __fadd_rn(acc, __fdiv_rn(to_f(dy[at<CL>(n, c, (od * g.oH + oh) * g.oW + ow, g.C, oP)]), cnt));
        }
    dx[i] = from_f<T>(acc);
  }
}

// Runs f(T{}, bool_constant<channels last>) for f32 or bf16 data in either layout.
template <class F> void by_type(int dt, int layout, const char* what, F&& f) {
  MC_CHECK(layout == NCDHW || layout == NDHWC, "kernels/pool.cu: ", what, ": unknown layout code ",
           layout);
  MC_CHECK(dt == F32 || dt == BF16, "kernels/pool.cu: ", what, " takes f32 or bf16, got ",
           dt_name(dt));
  const bool cl = layout == NDHWC;
  if (dt == F32)
    cl ? f(float{}, std::true_type{}) : f(float{}, std::false_type{});
  else
    cl ? f(bf16{}, std::true_type{}) : f(bf16{}, std::false_type{});
}

}  // namespace

void avgpool3d_forward(const PoolGeom& pg, const void* x, void* y, int dt, int layout, Stream s) {
  const G g = make(pg);
  const int64_t total = g.N * g.C * g.oD * g.oH * g.oW;
  if (total == 0) return;
  by_type(dt, layout, "avg_pool3d", [&](auto t, auto cl) {
    using T = decltype(t);
    avgpool_fwd_kernel<T, decltype(cl)::value><<<grid_for(total), kThreads, 0, s>>>(
        g, static_cast<const T*>(x), static_cast<T*>(y));
  });
  MC_LAUNCHED("avg_pool3d");
}

void avgpool3d_backward(const PoolGeom& pg, const void* dy, void* dx, int dt, int layout,
                        Stream s) {
  const G g = make(pg);
  const int64_t total = g.N * g.C * g.D * g.H * g.W;
  if (total == 0) return;
  by_type(dt, layout, "avg_pool3d backward", [&](auto t, auto cl) {
    using T = decltype(t);
    avgpool_bwd_kernel<T, decltype(cl)::value><<<grid_for(total), kThreads, 0, s>>>(
        g, static_cast<const T*>(dy), static_cast<T*>(dx));
  });
  MC_LAUNCHED("avg_pool3d backward");
}

void maxpool3d_forward(const PoolGeom& pg, const void* x, void* y, int32_t* argmax, int dt,
                       int layout, Stream s) {
  const G g = make(pg);
  const int64_t total = g.N * g.C * g.oD * g.oH * g.oW;
  if (total == 0) return;
  MC_CHECK(g.D * g.H * g.W <= 0x7fffffff, "max_pool3d: plane of ", g.D * g.H * g.W,
           " voxels is too large for the i32 argmax");
  by_type(dt, layout, "max_pool3d", [&](auto t, auto cl) {
    using T = decltype(t);
    maxpool_fwd_kernel<T, decltype(cl)::value><<<grid_for(total), kThreads, 0, s>>>(
        g, static_cast<const T*>(x), static_cast<T*>(y), argmax);
  });
  MC_LAUNCHED("max_pool3d");
}

void maxpool3d_backward(const PoolGeom& pg, const void* dy, const int32_t* argmax, void* dx, int dt,
                        int layout, Stream s) {
  const G g = make(pg);
  const int64_t total = g.N * g.C * g.D * g.H * g.W;
  if (total == 0) return;
  by_type(dt, layout, "max_pool3d backward", [&](auto t, auto cl) {
    using T = decltype(t);
    maxpool_bwd_kernel<T, decltype(cl)::value><<<grid_for(total), kThreads, 0, s>>>(
        g, static_cast<const T*>(dy), argmax, static_cast<T*>(dx));
  });
  MC_LAUNCHED("max_pool3d backward");
}

void avgpool_global_forward(const void* x, void* y, int dt, int64_t N, int64_t C, int64_t S,
                            int layout, Stream s) {
  if (N * C == 0) return;
  MC_CHECK(S > 0, "global_avg_pool: empty spatial extent");
  by_type(dt, layout, "global_avg_pool", [&](auto t, auto cl) {
    using T = decltype(t);
    if constexpr (decltype(cl)::value) {
      MC_CHECK(N <= 65535, "global_avg_pool: batch of ", N, " is too large for the grid");
      gap_fwd_cl_kernel<T><<<dim3(unsigned((C + 31) / 32), unsigned(N)), dim3(32, 8), 0, s>>>(
          static_cast<const T*>(x), static_cast<T*>(y), C, S);
    } else {
      gap_fwd_rows_kernel<T>
          <<<unsigned(N * C), kThreads, 0, s>>>(static_cast<const T*>(x), static_cast<T*>(y), S);
    }
  });
  MC_LAUNCHED("global_avg_pool");
}

void avgpool_global_backward(const void* dy, void* dx, int dt, int64_t N, int64_t C, int64_t S,
                             int layout, Stream s) {
  const int64_t total = N * C * S;
  if (total == 0) return;
  by_type(dt, layout, "global_avg_pool backward", [&](auto t, auto cl) {
    using T = decltype(t);
    gap_bwd_kernel<T, decltype(cl)::value><<<grid_for(total), kThreads, 0, s>>>(
        static_cast<const T*>(dy), static_cast<T*>(dx), C, S, total);
  });
  MC_LAUNCHED("global_avg_pool backward");
}

}  // namespace mc::kernels::cuda
