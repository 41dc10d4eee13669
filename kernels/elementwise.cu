// CUDA twins of kernels/elementwise_cpu.cpp (contract in kernels/elementwise.h): the pointwise
// functors of the header applied by one vectorised map kernel, fill and cast over all seven
// dtypes, a deterministic sum, the broadcast of a device scalar, and the NCDHW <-> NDHWC
// transpose.
//
// The functors round each operation explicitly (add_rn, mul_rn), so f32 results equal the CPU
// twin's bit for bit. bf16 data is loaded to float, computed in float and rounded once (round to
// nearest even).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda_common.cuh"
#include "kernels/elementwise.h"
#include "kernels/half.h"

namespace mc::kernels::cuda {
namespace {

#define MC_LAUNCHED(what) MC_KERNEL_LAUNCHED("kernels/elementwise.cu", what)

// ---- pointwise maps: y[i] = op(a[i], b[i], alpha), vectorised by 16 bytes ----

template <class T, int V> struct alignas(sizeof(T) * V) Pack { T v[V]; };

// No __restrict__: y may alias a or b (axpy writes into its second input).
template <class T, int V, class Op>
__global__ void map_kernel(Op op, const T* a, const T* b, T* y, float alpha, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t nv = n / V;
  for (int64_t i = first; i < nv; i += stride) {
    const Pack<T, V> pa = reinterpret_cast<const Pack<T, V>*>(a)[i];
    Pack<T, V> pb{};
    if (b) pb = reinterpret_cast<const Pack<T, V>*>(b)[i];
    Pack<T, V> out;
#pragma unroll
    for (int k = 0; k < V; ++k)
      out.v[k] = from_f<T>(op(to_f(pa.v[k]), b ? to_f(pb.v[k]) : 0.f, alpha));
    reinterpret_cast<Pack<T, V>*>(y)[i] = out;
  }
  for (int64_t i = nv * V + first; i < n; i += stride)
    y[i] = from_f<T>(op(to_f(a[i]), b ? to_f(b[i]) : 0.f, alpha));
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

template <class T, class Op>
void map(Op op, const void* a, const void* b, void* y, float alpha, int64_t n, Stream s) {
  constexpr int V = 16 / sizeof(T);
  auto* pa = static_cast<const T*>(a);
  auto* pb = static_cast<const T*>(b);
  auto* py = static_cast<T*>(y);
  if (aligned16(a) && (!b || aligned16(b)) && aligned16(y))
    map_kernel<T, V><<<grid_for(n, V), kThreads, 0, s>>>(op, pa, pb, py, alpha, n);
  else
    map_kernel<T, 1><<<grid_for(n), kThreads, 0, s>>>(op, pa, pb, py, alpha, n);
}

template <class Op>
void map_dt(Op op, const void* a, const void* b, void* y, int dt, double alpha, int64_t n,
            Stream s, const char* what) {
  if (dt == F32) return map<float>(op, a, b, y, float(alpha), n, s);
  MC_CHECK(dt == BF16, "kernels/elementwise.cu: ", what, " takes f32 or bf16, got ", dt_name(dt));
  map<bf16>(op, a, b, y, float(alpha), n, s);
}

// ---- fill and cast over all seven dtypes ----

template <class T> __global__ void fill_kernel(T* y, T v, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) y[i] = v;
}

template <class T> void fill_as(void* y, T v, int64_t n, Stream s) {
  fill_kernel<T><<<grid_for(n), kThreads, 0, s>>>(static_cast<T*>(y), v, n);
}

// Loads as double and stores as the CPU twin does (bf16/f16 round from float).
template <class T> struct Io;
template <> struct Io<float> {
  static __device__ double ld(const float* p, int64_t i) { return p[i]; }
  static __device__ void st(float* p, int64_t i, double v) { p[i] = float(v); }
};
template <> struct Io<double> {
  static __device__ double ld(const double* p, int64_t i) { return p[i]; }
  static __device__ void st(double* p, int64_t i, double v) { p[i] = v; }
};
template <> struct Io<bf16> {
  static __device__ double ld(const bf16* p, int64_t i) { return __bfloat162float(p[i]); }
  static __device__ void st(bf16* p, int64_t i, double v) { p[i] = __float2bfloat16_rn(float(v)); }
};
template <> struct Io<__half> {
  static __device__ double ld(const __half* p, int64_t i) { return __half2float(p[i]); }
  static __device__ void st(__half* p, int64_t i, double v) { p[i] = __float2half_rn(float(v)); }
};
template <> struct Io<int32_t> {
  static __device__ double ld(const int32_t* p, int64_t i) { return p[i]; }
  static __device__ void st(int32_t* p, int64_t i, double v) { p[i] = int32_t(v); }
};
template <> struct Io<int64_t> {
  static __device__ double ld(const int64_t* p, int64_t i) { return double(p[i]); }
  static __device__ void st(int64_t* p, int64_t i, double v) { p[i] = int64_t(v); }
};
template <> struct Io<uint8_t> {
  static __device__ double ld(const uint8_t* p, int64_t i) { return p[i]; }
  static __device__ void st(uint8_t* p, int64_t i, double v) { p[i] = uint8_t(v); }
};

template <class X, class Y> __global__ void cast_kernel(const X* x, Y* y, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    Io<Y>::st(y, i, Io<X>::ld(x, i));
}

template <class F> void with_type(int dt, F&& f) {
  switch (dt) {
    case F32: return f(float{});
    case F64: return f(double{});
    case BF16: return f(bf16{});
    case F16: return f(__half{});
    case I32: return f(int32_t{});
    case I64: return f(int64_t{});
    case U8: return f(uint8_t{});
  }
  MC_FAIL("kernels/elementwise.cu: unknown dtype code ", dt);
}

// f32 or bf16 only (what the layout and reduction kernels compute on).
template <class F> void f32_or_bf16(int dt, const char* what, F&& f) {
  if (dt == F32) return f(float{});
  MC_CHECK(dt == BF16, "kernels/elementwise.cu: ", what, " takes f32 or bf16, got ", dt_name(dt));
  f(bf16{});
}

// ---- deterministic sum: fixed grid, one double partial per block, summed in index order ----

constexpr int kSumBlocks = 1024;

__device__ double block_sum(double v) {
  __shared__ double smem[kThreads / 32];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  v = threadIdx.x < kThreads / 32 ? smem[threadIdx.x] : 0.0;
  if (warp == 0)
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;  // valid in thread 0
}

// Square: sum of x[i]^2 (sum_squares), each square formed in double (exact for f32 / bf16).
template <class T, bool Square = false>
__global__ void sum_partial_kernel(const T* x, int64_t n, double* partial) {
  double acc = 0;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const double v = double(to_f(x[i]));
    acc += Square ? v * v : v;
  }
  acc = block_sum(acc);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

template <class Y>
__global__ void sum_final_kernel(const double* partial, int blocks, double scale, Y* y) {
  double acc = 0;
  for (int i = threadIdx.x; i < blocks; i += blockDim.x) acc += partial[i];
  acc = block_sum(acc);
  if (threadIdx.x == 0) y[0] = from_f<Y>(float(acc * scale));
}

// ---- y[i] = alpha * s[0], s a device scalar (autograd's broadcast of d(sum) without a sync) ----

template <class S, class Y>
__global__ void broadcast_kernel(const S* s, double alpha, Y* y, int64_t n) {
  const Y v = from_f<Y>(float(double(to_f(s[0])) * alpha));  // as the CPU twin: double, then once
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) y[i] = v;
}

// ---- batched transpose [B, R, Q] -> [B, Q, R] with a dtype change, 32x32 tiles ----

constexpr int kTile = 32;
template <class X, class Y>
__global__ void transpose_kernel(const X* __restrict__ x, Y* __restrict__ y, int64_t R, int64_t Q,
                                 int64_t tiles_q) {
  __shared__ float tile[kTile][kTile + 1];  // +1: no bank conflicts on the transposed read
  const int64_t b = blockIdx.y;
  const int64_t r0 = int64_t(blockIdx.x) / tiles_q * kTile,
                q0 = int64_t(blockIdx.x) % tiles_q * kTile;
  const X* xb = x + b * R * Q;
  Y* yb = y + b * R * Q;
  for (int i = threadIdx.y; i < kTile; i += blockDim.y) {
    const int64_t r = r0 + i, q = q0 + threadIdx.x;
    if (r < R && q < Q) tile[i][threadIdx.x] = to_f(xb[r * Q + q]);
  }
  __syncthreads();
  for (int i = threadIdx.y; i < kTile; i += blockDim.y) {
    const int64_t q = q0 + i, r = r0 + threadIdx.x;
    if (r < R && q < Q) yb[q * R + r] = from_f<Y>(tile[threadIdx.x][i]);
  }
}

}  // namespace

// ---------------- declared in kernels/elementwise.h ----------------

void pointwise(Pointwise op, const void* a, const void* b, void* y, int dt, double alpha, int64_t n,
               Stream s) {
  if (n <= 0) return;
  MC_CHECK(pointwise_arity(op) == 1 || b, "pointwise ", pointwise_name(op), ": needs two inputs");
  switch (op) {
#define MC_POINTWISE_CUDA(name, arity)                                                    \
  case Pointwise::name:                                                                   \
    map_dt(pointwise::name{}, a, arity == 2 ? b : nullptr, y, dt, alpha, n, s, #name);    \
    break;
    MC_POINTWISE_OPS(MC_POINTWISE_CUDA)
#undef MC_POINTWISE_CUDA
    default: MC_FAIL("pointwise: unknown op ", int(op));
  }
  MC_LAUNCHED("pointwise");
}

void fill(void* y, int dt, double v, int64_t n, Stream s) {
  if (n <= 0) return;
  switch (dt) {
    case F32: fill_as<float>(y, float(v), n, s); break;
    case F64: fill_as<double>(y, v, n, s); break;
    case BF16: fill_as<uint16_t>(y, float_to_bf16(float(v)), n, s); break;
    case F16: fill_as<uint16_t>(y, float_to_f16(float(v)), n, s); break;
    case I32: fill_as<int32_t>(y, int32_t(v), n, s); break;
    case I64: fill_as<int64_t>(y, int64_t(v), n, s); break;
    case U8: fill_as<uint8_t>(y, uint8_t(v), n, s); break;
    default: MC_FAIL("kernels/elementwise.cu: fill: unknown dtype code ", dt);
  }
  MC_LAUNCHED("fill");
}

void cast(const void* x, int xdt, void* y, int ydt, int64_t n, Stream s) {
  if (n <= 0) return;
  if (xdt == ydt) {
    MC_CUDA_CHECK(cudaMemcpyAsync(y, x, size_t(n) * dt_size(xdt), cudaMemcpyDeviceToDevice, s));
    return;
  }
  with_type(xdt, [&](auto xt) {
    with_type(ydt, [&](auto yt) {
      using X = decltype(xt);
      using Y = decltype(yt);
      cast_kernel<X, Y>
          <<<grid_for(n), kThreads, 0, s>>>(static_cast<const X*>(x), static_cast<Y*>(y), n);
    });
  });
  MC_LAUNCHED("cast");
}

size_t sum_workspace(int64_t) { return sizeof(double) * kSumBlocks; }

namespace {

// The two-pass deterministic reduction behind sum and sum_squares (Square: each value squared
// in double before it is added). The caller checks the launch (MC_LAUNCHED takes a literal).
template <bool Square>
void reduce_sum(const char* what, const void* x, int xdt, int64_t n, double scale, void* y, int ydt,
                void* work, size_t work_bytes, Stream s) {
  MC_CHECK(work && work_bytes >= sum_workspace(n), "kernels/elementwise.cu: ", what, " needs ",
           sum_workspace(n), " bytes of workspace, got ", work_bytes);
  const int blocks = grid_for(n, 1, kSumBlocks);
  auto* partial = static_cast<double*>(work);
  f32_or_bf16(xdt, what, [&](auto xt) {
    using X = decltype(xt);
    sum_partial_kernel<X, Square><<<blocks, kThreads, 0, s>>>(static_cast<const X*>(x), n, partial);
  });
  f32_or_bf16(ydt, what, [&](auto yt) {
    using Y = decltype(yt);
    sum_final_kernel<Y><<<1, kThreads, 0, s>>>(partial, blocks, scale, static_cast<Y*>(y));
  });
}

}  // namespace

void sum(const void* x, int xdt, int64_t n, double scale, void* y, int ydt, void* work,
         size_t work_bytes, Stream s) {
  reduce_sum<false>("sum", x, xdt, n, scale, y, ydt, work, work_bytes, s);
  MC_LAUNCHED("sum");
}

void sum_squares(const void* x, int xdt, int64_t n, void* y, int ydt, void* work,
                 size_t work_bytes, Stream s) {
  reduce_sum<true>("sum_squares", x, xdt, n, 1.0, y, ydt, work, work_bytes, s);
  MC_LAUNCHED("sum_squares");
}

void broadcast_scalar(const void* scalar, int sdt, double alpha, void* y, int ydt, int64_t n,
                      Stream s) {
  if (n <= 0) return;
  f32_or_bf16(sdt, "broadcast_scalar", [&](auto st) {
    f32_or_bf16(ydt, "broadcast_scalar", [&](auto yt) {
      using S = decltype(st);
      using Y = decltype(yt);
      broadcast_kernel<<<grid_for(n), kThreads, 0, s>>>(static_cast<const S*>(scalar), alpha,
                                                        static_cast<Y*>(y), n);
    });
  });
  MC_LAUNCHED("broadcast_scalar");
}

void transpose(const void* x, int xdt, void* y, int ydt, int64_t B, int64_t R, int64_t Q,
               Stream s) {
  if (B * R * Q == 0) return;
  const int64_t tiles_q = (Q + kTile - 1) / kTile, tiles = (R + kTile - 1) / kTile * tiles_q;
  MC_CHECK(B <= 65535 && tiles <= 0x7fffffff, "kernels/elementwise.cu: transpose of ", B, " x ",
           R, " x ", Q, " is too large a grid");
  f32_or_bf16(xdt, "transpose", [&](auto xt) {
    f32_or_bf16(ydt, "transpose", [&](auto yt) {
      using X = decltype(xt);
      using Y = decltype(yt);
      transpose_kernel<X, Y><<<dim3(unsigned(tiles), unsigned(B)), dim3(kTile, 8), 0, s>>>(
          static_cast<const X*>(x), static_cast<Y*>(y), R, Q, tiles_q);
    });
  });
  MC_LAUNCHED("transpose");
}

}  // namespace mc::kernels::cuda
