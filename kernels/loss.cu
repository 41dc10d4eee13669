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
// The partials live in the caller's workspace (the engine takes it from the stream-ordered
// caching allocator), so the launcher allocates nothing, is capturable in a CUDA graph, and two
// launches on two streams never share scratch.
#include <cuda_runtime.h>

#include <cmath>

#include "kernels/cuda_common.cuh"
#include "kernels/loss.h"

namespace mc::kernels::cuda {
namespace {

constexpr int kWarps = kThreads / 32;
constexpr int kPartBlocks = 1024;  // at most this many blocks write a partial
constexpr int kThreadRowMaxC = 16;

// The workspace: per-block partial loss and weight sums, and the total weight (sum of w[y] over
// valid labels, for the gradient's scale).
struct Parts {
  double* loss;
  double* weight;
  double* weight_sum;
};
Parts parts_of(void* work) {
  auto* d = static_cast<double*>(work);
  return {d, d + kPartBlocks, d + 2 * kPartBlocks};
}

int blocks_for(int64_t rows, int rows_per_block) {
  const int64_t b = (rows + rows_per_block - 1) / rows_per_block;
  return int(b < 1 ? 1 : (b > kPartBlocks ? kPartBlocks : b));
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
__global__ void weight_partials(const int64_t* labels, const float* weight, int64_t N, int64_t C,
                                Parts parts) {
  __shared__ double smem[kWarps];
  double acc = 0;
  for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < N;
       i += int64_t(gridDim.x) * kThreads) {
    const int64_t y = labels[i];
    if (y >= 0 && y < C) acc += weight ? double(weight[y]) : 1.0;
  }
  acc = block_sum(acc, smem);
  if (threadIdx.x == 0) parts.weight[blockIdx.x] = acc;
}

// One block: sums the partials in index order. Writes the loss (and/or the weight total).
__global__ void finalize(Parts parts, int count, bool with_loss, bool mean, float* loss) {
  __shared__ double smem[kWarps];
  double l = 0, w = 0;
  for (int b = threadIdx.x; b < count; b += kThreads) {
    if (with_loss) l += parts.loss[b];
    w += parts.weight[b];
  }
  w = block_sum(w, smem);
  if (with_loss) l = block_sum(l, smem);
  if (threadIdx.x != 0) return;
  if (with_loss) *loss = float(mean ? l / w : l);  // 0/0 = NaN when no label counts, as PyTorch
  else *parts.weight_sum = w;
}

// d(loss)/dz scale: dloss / sum(w) for the mean, dloss for the sum.
__device__ __forceinline__ float grad_scale(bool mean, const float* dloss, const Parts& parts) {
  return mean ? float(double(*dloss) / *parts.weight_sum) : *dloss;
}

template <bool kGrad>
__global__ void ce_thread_rows(const float* logits, const int64_t* labels, const float* offset,
                               const float* weight, int64_t N, int C, bool mean, float* dlogits,
                               const float* dloss, int* bad, Parts parts) {
  __shared__ float s_off[kThreadRowMaxC], s_w[kThreadRowMaxC];
  __shared__ double smem[kWarps];
  if (threadIdx.x < C) {
    s_off[threadIdx.x] = offset ? offset[threadIdx.x] : 0.f;
    s_w[threadIdx.x] = weight ? weight[threadIdx.x] : 1.f;
  }
  __syncthreads();
  const float scale = kGrad ? grad_scale(mean, dloss, parts) : 0.f;
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
    parts.loss[blockIdx.x] = acc_l;
    parts.weight[blockIdx.x] = acc_w;
  }
}

template <bool kGrad>
__global__ void ce_warp_rows(const float* logits, const int64_t* labels, const float* offset,
                             const float* weight, int64_t N, int64_t C, bool mean, float* dlogits,
                             const float* dloss, int* bad, Parts parts) {
  __shared__ double smem[kWarps];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const float scale = kGrad ? grad_scale(mean, dloss, parts) : 0.f;
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
    parts.loss[blockIdx.x] = acc_l;
    parts.weight[blockIdx.x] = acc_w;
  }
}

}  // namespace

size_t cross_entropy_workspace(int64_t, int64_t) { return sizeof(double) * (2 * kPartBlocks + 1); }

void cross_entropy_fused(const void* logits_v, const int64_t* labels, const void* offset_v,
                         const void* weight_v, int dt, int64_t N, int64_t C, bool mean, void* loss_v,
                         void* dlogits_v, const void* dloss_v, int* bad_label, void* work,
                         size_t work_bytes, Stream s) {
  MC_CHECK(N > 0 && C > 0, "kernels/loss.cu: empty logits (", N, " x ", C, ")");
  MC_CHECK(dt == F32, "kernels/loss.cu: cross_entropy computes in f32, got ", dt_name(dt));
  MC_CHECK(!dlogits_v || dloss_v, "kernels/loss.cu: a gradient needs dloss");
  MC_CHECK(work && work_bytes >= cross_entropy_workspace(N, C), "kernels/loss.cu: needs ",
           cross_entropy_workspace(N, C), " bytes of workspace, got ", work_bytes);
  const auto* logits = static_cast<const float*>(logits_v);
  const auto* offset = static_cast<const float*>(offset_v);
  const auto* weight = static_cast<const float*>(weight_v);
  auto* loss = static_cast<float*>(loss_v);
  auto* dlogits = static_cast<float*>(dlogits_v);
  const auto* dloss = static_cast<const float*>(dloss_v);
  const Parts parts = parts_of(work);
  const bool per_thread = C <= kThreadRowMaxC;
  const int blocks = blocks_for(N, per_thread ? kThreads : kWarps);
  if (dlogits && mean) {  // the gradient's scale needs sum(w) before any row is written
    const int wb = blocks_for(N, kThreads);
    weight_partials<<<wb, kThreads, 0, s>>>(labels, weight, N, C, parts);
    finalize<<<1, kThreads, 0, s>>>(parts, wb, false, mean, nullptr);
  }
  if (per_thread) {
    if (dlogits)
      ce_thread_rows<true><<<blocks, kThreads, 0, s>>>(logits, labels, offset, weight, N, int(C),
                                                       mean, dlogits, dloss, bad_label, parts);
    else
      ce_thread_rows<false><<<blocks, kThreads, 0, s>>>(logits, labels, offset, weight, N, int(C),
                                                        mean, nullptr, nullptr, bad_label, parts);
  } else {
    if (dlogits)
      ce_warp_rows<true><<<blocks, kThreads, 0, s>>>(logits, labels, offset, weight, N, C, mean,
                                                     dlogits, dloss, bad_label, parts);
    else
      ce_warp_rows<false><<<blocks, kThreads, 0, s>>>(logits, labels, offset, weight, N, C, mean,
                                                      nullptr, nullptr, bad_label, parts);
  }
  finalize<<<1, kThreads, 0, s>>>(parts, blocks, true, mean, loss);
  MC_KERNEL_LAUNCHED("kernels/loss.cu", "cross_entropy_fused");
}

}  // namespace mc::kernels::cuda
