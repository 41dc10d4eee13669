// CUDA twins of kernels/elementwise_cpu.cpp, plus dtype-generic (f32 | bf16) versions of the
// arithmetic, a deterministic sum and the NCDHW <-> NDHWC transpose that the engine needs
// (declared at the end of kernels/elementwise.h's cuda:: section once that header grows them;
// until then engine/cuda_elementwise_cuda.cpp declares them).
//
// Arithmetic is done in float with explicitly rounded operations (__fmul_rn, __fadd_rn) where
// the CPU twin rounds each step: nvcc would otherwise contract a*b+c into an FMA and the f32
// results would differ from the CPU reference in the last bit.
// bf16 data is loaded to float, computed in float and rounded once (round to nearest even).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/cuda_common.cuh"
#include "kernels/elementwise.h"
#include "kernels/half.h"

namespace mc::kernels::cuda {
namespace {

constexpr int kThreads = 256;

void check(const char* what) { check_launch("kernels/elementwise.cu", what); }

int grid_for(int64_t n, int per_thread = 1) {
  const int64_t b = (n + int64_t(kThreads) * per_thread - 1) / (int64_t(kThreads) * per_thread);
  return int(b < 1 ? 1 : (b > (1 << 16) ? (1 << 16) : b));  // grid-stride beyond 16M threads
}


// ---- elementwise maps: y[i] = op(a[i]) or op(a[i], b[i]), vectorised by 16 bytes ----

struct Add {
  __device__ float operator()(float a, float b) const { return __fadd_rn(a, b); }
};
struct Mul {
  __device__ float operator()(float a, float b) const { return __fmul_rn(a, b); }
};
struct Axpy {  // a = x, b = y: y + alpha x, rounded as the CPU's y += alpha * x
  float alpha;
  __device__ float operator()(float x, float y) const { return __fadd_rn(y, __fmul_rn(alpha, x)); }
};
struct ReluBwd {  // a = y (forward output), b = dy
  __device__ float operator()(float y, float dy) const { return y > 0.f ? dy : 0.f; }
};
struct Scale {
  float alpha;
  __device__ float operator()(float x) const { return __fmul_rn(alpha, x); }
};
struct Relu {
  __device__ float operator()(float x) const { return x > 0.f ? x : 0.f; }
};

template <class T, int V> struct alignas(sizeof(T) * V) Pack { T v[V]; };

template <class T, int V, class Op>
__global__ void map2_kernel(Op op, const T* __restrict__ a, const T* __restrict__ b,
                            T* __restrict__ y, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t nv = n / V;
  for (int64_t i = first; i < nv; i += stride) {
    const Pack<T, V> pa = reinterpret_cast<const Pack<T, V>*>(a)[i];
    const Pack<T, V> pb = reinterpret_cast<const Pack<T, V>*>(b)[i];
    Pack<T, V> out;
#pragma unroll
    for (int k = 0; k < V; ++k) out.v[k] = from_f<T>(op(to_f(pa.v[k]), to_f(pb.v[k])));
    reinterpret_cast<Pack<T, V>*>(y)[i] = out;
  }
  for (int64_t i = nv * V + first; i < n; i += stride) y[i] = from_f<T>(op(to_f(a[i]), to_f(b[i])));
}

template <class T, int V, class Op>
__global__ void map1_kernel(Op op, const T* __restrict__ a, T* __restrict__ y, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t nv = n / V;
  for (int64_t i = first; i < nv; i += stride) {
    const Pack<T, V> pa = reinterpret_cast<const Pack<T, V>*>(a)[i];
    Pack<T, V> out;
#pragma unroll
    for (int k = 0; k < V; ++k) out.v[k] = from_f<T>(op(to_f(pa.v[k])));
    reinterpret_cast<Pack<T, V>*>(y)[i] = out;
  }
  for (int64_t i = nv * V + first; i < n; i += stride) y[i] = from_f<T>(op(to_f(a[i])));
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

template <class T, class Op>
void map2(Op op, const void* a, const void* b, void* y, int64_t n, Stream s, const char* what) {
  if (n <= 0) return;
  constexpr int V = 16 / sizeof(T);
  auto* pa = static_cast<const T*>(a);
  auto* pb = static_cast<const T*>(b);
  auto* py = static_cast<T*>(y);
  if (aligned16(a) && aligned16(b) && aligned16(y))
    map2_kernel<T, V><<<grid_for(n, V), kThreads, 0, s>>>(op, pa, pb, py, n);
  else
    map2_kernel<T, 1><<<grid_for(n), kThreads, 0, s>>>(op, pa, pb, py, n);
  check(what);
}

template <class T, class Op>
void map1(Op op, const void* a, void* y, int64_t n, Stream s, const char* what) {
  if (n <= 0) return;
  constexpr int V = 16 / sizeof(T);
  auto* pa = static_cast<const T*>(a);
  auto* py = static_cast<T*>(y);
  if (aligned16(a) && aligned16(y))
    map1_kernel<T, V><<<grid_for(n, V), kThreads, 0, s>>>(op, pa, py, n);
  else
    map1_kernel<T, 1><<<grid_for(n), kThreads, 0, s>>>(op, pa, py, n);
  check(what);
}

// Dispatch on the dtype code: F32 or BF16 only.
template <class Op>
void map2_dt(int dt, Op op, const void* a, const void* b, void* y, int64_t n, Stream s,
             const char* what) {
  if (dt == F32) return map2<float>(op, a, b, y, n, s, what);
  if (dt == BF16) return map2<bf16>(op, a, b, y, n, s, what);
  throw std::invalid_argument(std::string("kernels/elementwise.cu: ") + what +
                              " takes f32 or bf16");
}
template <class Op>
void map1_dt(int dt, Op op, const void* a, void* y, int64_t n, Stream s, const char* what) {
  if (dt == F32) return map1<float>(op, a, y, n, s, what);
  if (dt == BF16) return map1<bf16>(op, a, y, n, s, what);
  throw std::invalid_argument(std::string("kernels/elementwise.cu: ") + what +
                              " takes f32 or bf16");
}

// ---- fill and cast over all seven dtypes ----

template <class T> __global__ void fill_kernel(T* y, T v, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) y[i] = v;
}

template <class T> void fill_as(void* y, T v, int64_t n, Stream s) {
  fill_kernel<T><<<grid_for(n), kThreads, 0, s>>>(static_cast<T*>(y), v, n);
  check("fill");
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
  throw std::invalid_argument("kernels/elementwise.cu: unknown dtype code " + std::to_string(dt));
}

size_t size_of(int dt) {
  static const size_t sz[] = {4, 8, 2, 2, 4, 8, 1};
  return sz[dt];
}

// ---- deterministic sum: fixed grid, one double partial per block, summed in index order ----

constexpr int kSumBlocks = 1024;
__device__ double g_sum_partial[kSumBlocks];

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

template <class T> __global__ void sum_partial_kernel(const T* x, int64_t n) {
  double acc = 0;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    acc += double(to_f(x[i]));
  acc = block_sum(acc);
  if (threadIdx.x == 0) g_sum_partial[blockIdx.x] = acc;
}

template <class Y> __global__ void sum_final_kernel(int blocks, double scale, Y* y) {
  double acc = 0;
  for (int i = threadIdx.x; i < blocks; i += blockDim.x) acc += g_sum_partial[i];
  acc = block_sum(acc);
  if (threadIdx.x == 0) y[0] = from_f<Y>(float(acc * scale));
}

// ---- y[i] = alpha * s[0], s a device scalar (autograd's broadcast of d(sum) without a sync) ----

template <class S, class Y>
__global__ void broadcast_kernel(const S* s, float alpha, Y* y, int64_t n) {
  const Y v = from_f<Y>(__fmul_rn(alpha, to_f(s[0])));
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

template <class X, class Y>
void transpose_as(const void* x, void* y, int64_t B, int64_t R, int64_t Q, Stream s) {
  const int64_t tiles_q = (Q + kTile - 1) / kTile, tiles = (R + kTile - 1) / kTile * tiles_q;
  if (B > 65535 || tiles > 0x7fffffff) throw std::invalid_argument("transpose: too large a grid");
  transpose_kernel<X, Y><<<dim3(unsigned(tiles), unsigned(B)), dim3(kTile, 8), 0, s>>>(
      static_cast<const X*>(x), static_cast<Y*>(y), R, Q, tiles_q);
  check("transpose");
}

}  // namespace

// ---------------- declared in kernels/elementwise.h ----------------

void fill(void* y, int dt, double v, int64_t n, Stream s) {
  if (n <= 0) return;
  switch (dt) {
    case F32: return fill_as<float>(y, float(v), n, s);
    case F64: return fill_as<double>(y, v, n, s);
    case BF16: return fill_as<uint16_t>(y, float_to_bf16(float(v)), n, s);
    case F16: return fill_as<uint16_t>(y, float_to_f16(float(v)), n, s);
    case I32: return fill_as<int32_t>(y, int32_t(v), n, s);
    case I64: return fill_as<int64_t>(y, int64_t(v), n, s);
    case U8: return fill_as<uint8_t>(y, uint8_t(v), n, s);
  }
  throw std::invalid_argument("kernels/elementwise.cu: fill: unknown dtype code " +
                              std::to_string(dt));
}

void cast(const void* x, int xdt, void* y, int ydt, int64_t n, Stream s) {
  if (n <= 0) return;
  if (xdt == ydt) {
    const cudaError_t e =
        cudaMemcpyAsync(y, x, size_t(n) * size_of(xdt), cudaMemcpyDeviceToDevice, s);
    if (e != cudaSuccess) throw std::runtime_error(std::string("cast: ") + cudaGetErrorString(e));
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
  check("cast");
}

void add(const float* a, const float* b, float* y, int64_t n, Stream s) {
  map2<float>(Add{}, a, b, y, n, s, "add");
}
void axpy(float alpha, const float* x, float* y, int64_t n, Stream s) {
  map2<float>(Axpy{alpha}, x, y, y, n, s, "axpy");
}
void scale(const float* x, float alpha, float* y, int64_t n, Stream s) {
  map1<float>(Scale{alpha}, x, y, n, s, "scale");
}
void relu_forward(const float* x, float* y, int64_t n, Stream s) {
  map1<float>(Relu{}, x, y, n, s, "relu");
}
void relu_backward(const float* y, const float* dy, float* dx, int64_t n, Stream s) {
  map2<float>(ReluBwd{}, y, dy, dx, n, s, "relu backward");
}

// ---------------- dtype-generic (F32 | BF16) ----------------

void add(const void* a, const void* b, void* y, int dt, int64_t n, Stream s) {
  map2_dt(dt, Add{}, a, b, y, n, s, "add");
}
void mul(const void* a, const void* b, void* y, int dt, int64_t n, Stream s) {
  map2_dt(dt, Mul{}, a, b, y, n, s, "mul");
}
void axpy(float alpha, const void* x, void* y, int dt, int64_t n, Stream s) {
  map2_dt(dt, Axpy{alpha}, x, y, y, n, s, "axpy");
}
void scale(const void* x, float alpha, void* y, int dt, int64_t n, Stream s) {
  map1_dt(dt, Scale{alpha}, x, y, n, s, "scale");
}
void relu_forward(const void* x, void* y, int dt, int64_t n, Stream s) {
  map1_dt(dt, Relu{}, x, y, n, s, "relu");
}
void relu_backward(const void* y, const void* dy, void* dx, int dt, int64_t n, Stream s) {
  map2_dt(dt, ReluBwd{}, y, dy, dx, n, s, "relu backward");
}

void sum(const void* x, int xdt, int64_t n, double scale, void* y, int ydt, Stream s) {
  const int blocks = grid_for(n) < kSumBlocks ? grid_for(n) : kSumBlocks;
  if (xdt == F32)
    sum_partial_kernel<float><<<blocks, kThreads, 0, s>>>(static_cast<const float*>(x), n);
  else if (xdt == BF16)
    sum_partial_kernel<bf16><<<blocks, kThreads, 0, s>>>(static_cast<const bf16*>(x), n);
  else
    throw std::invalid_argument("kernels/elementwise.cu: sum takes f32 or bf16");
  check("sum");
  if (ydt == F32)
    sum_final_kernel<float><<<1, kThreads, 0, s>>>(blocks, scale, static_cast<float*>(y));
  else if (ydt == BF16)
    sum_final_kernel<bf16><<<1, kThreads, 0, s>>>(blocks, scale, static_cast<bf16*>(y));
  else
    throw std::invalid_argument("kernels/elementwise.cu: sum writes f32 or bf16");
  check("sum");
}

void broadcast_scalar(const void* scalar, int sdt, float alpha, void* y, int ydt, int64_t n,
                      Stream s) {
  if (n <= 0) return;
  const int g = grid_for(n);
  if (sdt == F32 && ydt == F32)
    broadcast_kernel<<<g, kThreads, 0, s>>>(static_cast<const float*>(scalar), alpha,
                                            static_cast<float*>(y), n);
  else if (sdt == F32 && ydt == BF16)
    broadcast_kernel<<<g, kThreads, 0, s>>>(static_cast<const float*>(scalar), alpha,
                                            static_cast<bf16*>(y), n);
  else if (sdt == BF16 && ydt == BF16)
    broadcast_kernel<<<g, kThreads, 0, s>>>(static_cast<const bf16*>(scalar), alpha,
                                            static_cast<bf16*>(y), n);
  else if (sdt == BF16 && ydt == F32)
    broadcast_kernel<<<g, kThreads, 0, s>>>(static_cast<const bf16*>(scalar), alpha,
                                            static_cast<float*>(y), n);
  else
    throw std::invalid_argument("kernels/elementwise.cu: broadcast_scalar takes f32 or bf16");
  check("broadcast_scalar");
}

void transpose(const void* x, int xdt, void* y, int ydt, int64_t B, int64_t R, int64_t Q,
               Stream s) {
  if (B * R * Q == 0) return;
  auto bad = [] {
    throw std::invalid_argument("kernels/elementwise.cu: transpose takes f32 or bf16");
  };
  if (xdt == F32 && ydt == F32)
    transpose_as<float, float>(x, y, B, R, Q, s);
  else if (xdt == F32 && ydt == BF16)
    transpose_as<float, bf16>(x, y, B, R, Q, s);
  else if (xdt == BF16 && ydt == F32)
    transpose_as<bf16, float>(x, y, B, R, Q, s);
  else if (xdt == BF16 && ydt == BF16)
    transpose_as<bf16, bf16>(x, y, B, R, Q, s);
  else
    bad();
}

}  // namespace mc::kernels::cuda
