// CUDA twin of kernels::cpu::cross_entropy_fused (contract in kernels/loss.h).
//
// Shape of the work:
//   * C <= kThreadRowMaxC: one thread per row (N = 1M x C = 3: a warp reads 32 adjacent rows).
//   * larger C: one warp per row, lanes striding over classes (N = 64K x C = 1000), with an
//     online max/sum so the row is read twice (softmax statistics, then the gradient).
// Determinism: every launch uses a grid that depends only on N and C; each thread walks a fixed
// set of rows in a fixed order, blocks reduce with a fixed shuffle tree and write one partial
// each, and a one-block kernel sums the partials in index order. No float atomics anywhere.
//
// The partials live in module-level device arrays (one copy per device), so the launcher
// allocates nothing and is capturable in a CUDA graph. The price: two cross-entropy launches
// on different streams of one device must not overlap (the engine uses one stream per device).
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "kernels/loss.h"

namespace mc::kernels::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxBlocks = 1024;
constexpr int kThreadRowMaxC = 16;

__device__ double g_part_loss[kMaxBlocks];
__device__ double g_part_weight[kMaxBlocks];
__device__ double g_weight_sum;  // sum of w[y] over valid labels, for the gradient's scale

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("kernels/loss.cu: ") + what + ": " + cudaGetErrorString(e));
}

int blocks_for(int64_t rows, int rows_per_block) {
  const int64_t b = (rows + rows_per_block - 1) / rows_per_block;
  return int(b < 1 ? 1 : (b > kMaxBlocks ? kMaxBlocks : b));
}

__device__ __forceinline__ double warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}

// Block sum in a fixed order; the result is valid in thread 0.
__device__ double block_sum(double v, double* smem) {
  v = warp_sum(v);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  v = threadIdx.x < kWarps ? smem[threadIdx.x] : 0.0;
  if (warp == 0) v = warp_sum(v);
  __syncthreads();
  return v;
}

__device__ __forceinline__ bool valid_label(int64_t y, int64_t C, int* bad) {
  const bool ok = y >= 0 && y < C;
  if (!ok && bad) *bad = 1;  // every writer stores 1: a benign race
  return ok;
}

// Pass 0 (mean reduction with a gradient only): sum of w[y] so the gradient pass knows its scale.
__global__ void weight_partials(const int64_t* labels, const float* weight, int64_t N, int64_t C) {
  __shared__ double smem[kWarps];
  double acc = 0;
  for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < N;
       i += int64_t(gridDim.x) * kThreads) {
    const int64_t y = labels[i];
    if (y >= 0 && y < C) acc += weight ? double(weight[y]) : 1.0;
  }
  acc = block_sum(acc, smem);
  if (threadIdx.x == 0) g_part_weight[blockIdx.x] = acc;
}

// One block: sums the partials in index order. Writes the loss (and/or the weight total).
__global__ void finalize(int parts, bool with_loss, bool mean, float* loss) {
  __shared__ double smem[kWarps];
  double l = 0, w = 0;
  for (int b = threadIdx.x; b < parts; b += kThreads) {
    if (with_loss) l += g_part_loss[b];
    w += g_part_weight[b];
  }
  w = block_sum(w, smem);
  if (with_loss) l = block_sum(l, smem);
  if (threadIdx.x != 0) return;
  if (with_loss) *loss = float(mean ? l / w : l);  // 0/0 = NaN when no label counts, as PyTorch
  else g_weight_sum = w;
}

// d(loss)/dz scale: dloss / sum(w) for the mean, dloss for the sum.
__device__ __forceinline__ float grad_scale(bool mean, const float* dloss) {
  return mean ? float(double(*dloss) / g_weight_sum) : *dloss;
}

template <bool kGrad>
__global__ void ce_thread_rows(const float* logits, const int64_t* labels, const float* offset,
                               const float* weight, int64_t N, int C, bool mean, float* dlogits,
                               const float* dloss, int* bad) {
  __shared__ float s_off[kThreadRowMaxC], s_w[kThreadRowMaxC];
  __shared__ double smem[kWarps];
  if (threadIdx.x < C) {
    s_off[threadIdx.x] = offset ? offset[threadIdx.x] : 0.f;
    s_w[threadIdx.x] = weight ? weight[threadIdx.x] : 1.f;
  }
  __syncthreads();
  const float scale = kGrad ? grad_scale(mean, dloss) : 0.f;
  double acc_l = 0, acc_w = 0;
  for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < N;
       i += int64_t(gridDim.x) * kThreads) {
    const float* z = logits + i * C;
    const int64_t y = labels[i];
    const bool ok = valid_label(y, C, bad);
    float m = -INFINITY;
    for (int c = 0; c < C; ++c) m = fmaxf(m, z[c] + s_off[c]);
    float s = 0.f;
    for (int c = 0; c < C; ++c) s += expf(z[c] + s_off[c] - m);
    if (ok) {
      const float w = s_w[y];
      // (m - z_y) + log(s): no cancellation between two large terms when the loss is small.
      acc_l += double(w) * (double(m - (z[y] + s_off[y])) + double(logf(s)));
      acc_w += w;
    }
    if (kGrad) {
      float* d = dlogits + i * C;
      const float ws = ok ? s_w[y] * scale : 0.f;
      const float inv = 1.f / s;
      for (int c = 0; c < C; ++c)
        d[c] = ws * (expf(z[c] + s_off[c] - m) * inv - (c == y ? 1.f : 0.f));
    }
  }
  acc_l = block_sum(acc_l, smem);
  acc_w = block_sum(acc_w, smem);
  if (threadIdx.x == 0) {
    g_part_loss[blockIdx.x] = acc_l;
    g_part_weight[blockIdx.x] = acc_w;
  }
}

template <bool kGrad>
__global__ void ce_warp_rows(const float* logits, const int64_t* labels, const float* offset,
                             const float* weight, int64_t N, int64_t C, bool mean, float* dlogits,
                             const float* dloss, int* bad) {
  __shared__ double smem[kWarps];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const float scale = kGrad ? grad_scale(mean, dloss) : 0.f;
  double acc_l = 0, acc_w = 0;  // meaningful in lane 0
  for (int64_t i = int64_t(blockIdx.x) * kWarps + warp; i < N; i += int64_t(gridDim.x) * kWarps) {
    const float* z = logits + i * C;
    const int64_t y = labels[i];
    const bool ok = valid_label(y, C, bad);
    // Online softmax statistics per lane, then merged across the warp in a fixed tree.
    float m = -INFINITY, s = 0.f;
    for (int64_t c = lane; c < C; c += 32) {
      const float v = z[c] + (offset ? offset[c] : 0.f);
      if (v > m) {
        s = s * expf(m - v) + 1.f;
        m = v;
      } else {
        s += expf(v - m);
      }
    }
    for (int o = 16; o > 0; o >>= 1) {
      const float m2 = __shfl_xor_sync(0xffffffffu, m, o);
      const float s2 = __shfl_xor_sync(0xffffffffu, s, o);
      const float mm = fmaxf(m, m2);
      s = (m == -INFINITY ? 0.f : s * expf(m - mm)) + (m2 == -INFINITY ? 0.f : s2 * expf(m2 - mm));
      m = mm;
    }
    if (ok && lane == 0) {
      const float w = weight ? weight[y] : 1.f;
      const float zy = z[y] + (offset ? offset[y] : 0.f);
      acc_l += double(w) * (double(m - zy) + double(logf(s)));
      acc_w += w;
    }
    if (kGrad) {
      float* d = dlogits + i * C;
      const float ws = ok ? (weight ? weight[y] : 1.f) * scale : 0.f;
      const float inv = 1.f / s;
      for (int64_t c = lane; c < C; c += 32) {
        const float v = z[c] + (offset ? offset[c] : 0.f);
        d[c] = ws * (expf(v - m) * inv - (c == y ? 1.f : 0.f));
      }
    }
  }
  acc_l = block_sum(acc_l, smem);
  acc_w = block_sum(acc_w, smem);
  if (threadIdx.x == 0) {
    g_part_loss[blockIdx.x] = acc_l;
    g_part_weight[blockIdx.x] = acc_w;
  }
}

}  // namespace

void cross_entropy_fused(const float* logits, const int64_t* labels, const float* offset,
                         const float* weight, int64_t N, int64_t C, bool mean, float* loss,
                         float* dlogits, const float* dloss, int* bad_label, Stream s) {
  if (N <= 0 || C <= 0) throw std::runtime_error("kernels/loss.cu: empty logits");
  if (dlogits && !dloss) throw std::runtime_error("kernels/loss.cu: gradient without dloss");
  const bool per_thread = C <= kThreadRowMaxC;
  const int blocks = blocks_for(N, per_thread ? kThreads : kWarps);
  if (dlogits && mean) {  // the gradient's scale needs sum(w) before any row is written
    weight_partials<<<blocks_for(N, kThreads), kThreads, 0, s>>>(labels, weight, N, C);
    finalize<<<1, kThreads, 0, s>>>(blocks_for(N, kThreads), false, mean, nullptr);
  }
  if (per_thread) {
    if (dlogits)
      ce_thread_rows<true><<<blocks, kThreads, 0, s>>>(logits, labels, offset, weight, N, int(C),
                                                       mean, dlogits, dloss, bad_label);
    else
      ce_thread_rows<false><<<blocks, kThreads, 0, s>>>(logits, labels, offset, weight, N, int(C),
                                                        mean, nullptr, nullptr, bad_label);
  } else {
    if (dlogits)
      ce_warp_rows<true><<<blocks, kThreads, 0, s>>>(logits, labels, offset, weight, N, C, mean,
                                                     dlogits, dloss, bad_label);
    else
      ce_warp_rows<false><<<blocks, kThreads, 0, s>>>(logits, labels, offset, weight, N, C, mean,
                                                      nullptr, nullptr, bad_label);
  }
  finalize<<<1, kThreads, 0, s>>>(blocks, true, mean, loss);
  check(cudaGetLastError(), "cross_entropy_fused launch");
}

}  // namespace mc::kernels::cuda
