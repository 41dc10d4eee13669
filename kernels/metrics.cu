// CUDA metric kernels (contracts in kernels/metrics.h). Counting uses integer atomics only, so
// every output is exact and independent of scheduling; sorting is CUB's radix sort.
#include <cuda_runtime.h>

#include <cub/cub.cuh>

#include "kernels/cuda_common.cuh"
#include "kernels/metrics.h"

namespace mc::kernels::cuda {
namespace {

using ull = unsigned long long;
constexpr int kMaxGrid = 4096;  // counting kernels: fewer blocks, less atomic contention
// Positions per segment of the bootstrap AUC walk (segments start on tie-group boundaries).
constexpr int64_t kSegment = 2048;
// Confusion matrices up to this many cells are counted in shared memory first.
constexpr int64_t kSharedCells = 1024;

int grid(int64_t n) { return grid_for(n, 1, kMaxGrid); }

#define MC_LAUNCHED(what) MC_KERNEL_LAUNCHED("kernels/metrics.cu", what)

#define MC_GRID_STRIDE(i, n) \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += int64_t(gridDim.x) * blockDim.x)

// Carves aligned sub-buffers out of one workspace; with base == nullptr it only measures.
struct Carve {
  char* base;
  size_t used = 0;
  template <class T>
  T* take(size_t n) {
    used = (used + 255) & ~size_t(255);
    T* p = base ? reinterpret_cast<T*>(base + used) : nullptr;
    used += n * sizeof(T);
    return p;
  }
};

struct MaxOp {
  __device__ __forceinline__ int32_t operator()(int32_t a, int32_t b) const { return a > b ? a : b; }
};

__global__ void set_faults(int64_t* faults, int64_t N) { faults[0] = faults[1] = N; }

__global__ void validate_kernel(const int64_t* labels, const double* scores, int64_t N, int64_t K,
                                int64_t* faults) {
  MC_GRID_STRIDE(i, N) {
    if (labels[i] < 0 || labels[i] >= K) atomicMin(reinterpret_cast<ull*>(faults), ull(i));
  }
  if (!scores) return;
  MC_GRID_STRIDE(e, N * K) {
    if (!isfinite(scores[e])) atomicMin(reinterpret_cast<ull*>(faults + 1), ull(e / K));
  }
}

template <class T>
__global__ void offset_softmax_kernel(const T* x, const double* offset, int64_t N, int64_t K,
                                      bool softmax, double* out) {
  MC_GRID_STRIDE(i, N) {
    double* o = out + i * K;
    double m = -INFINITY;
    for (int64_t k = 0; k < K; ++k) {
      o[k] = double(x[i * K + k]) + (offset ? offset[k] : 0.0);
      m = fmax(m, o[k]);
    }
    if (!softmax) continue;
    double s = 0;
    for (int64_t k = 0; k < K; ++k) s += (o[k] = exp(o[k] - m));
    for (int64_t k = 0; k < K; ++k) o[k] /= s;
  }
}

__global__ void argmax_kernel(const double* scores, int64_t N, int64_t K, int32_t* pred) {
  MC_GRID_STRIDE(i, N) {
    const double* r = scores + i * K;
    int32_t best = 0;
    for (int64_t k = 1; k < K; ++k)
      if (r[k] > r[best]) best = int32_t(k);
    pred[i] = best;
  }
}

__global__ void confusion_shared(const int64_t* labels, const int32_t* pred, int64_t N, int64_t K,
                                 int64_t* cm) {
  extern __shared__ unsigned int hist[];
  for (int64_t c = threadIdx.x; c < K * K; c += blockDim.x) hist[c] = 0;
  __syncthreads();
  MC_GRID_STRIDE(i, N) atomicAdd(&hist[labels[i] * K + pred[i]], 1u);
  __syncthreads();
  for (int64_t c = threadIdx.x; c < K * K; c += blockDim.x)
    if (hist[c]) atomicAdd(reinterpret_cast<ull*>(cm + c), ull(hist[c]));
}

__global__ void confusion_global(const int64_t* labels, const int32_t* pred, int64_t N, int64_t K,
                                 int64_t* cm) {
  MC_GRID_STRIDE(i, N) atomicAdd(reinterpret_cast<ull*>(cm + labels[i] * K + pred[i]), 1ull);
}

__global__ void gather_column(const double* scores, int64_t N, int64_t K, int64_t k, double* keys,
                              int32_t* rows) {
  MC_GRID_STRIDE(i, N) {
    keys[i] = scores[i * K + k];
    rows[i] = int32_t(i);
  }
}

__global__ void mark_group_ends(const double* sorted, int64_t N, int64_t K, uint8_t* group_end) {
  MC_GRID_STRIDE(e, N * K) {
    const int64_t p = e % N;
    group_end[e] = p + 1 == N || sorted[e] != sorted[e + 1];
  }
}

// heads[p] = p at a group start (else 0); rtails[N-1-p] = N-1-p at a group end (else 0). Max-scans
// of both give each position's group start and (mirrored) group end. Position 0 always starts a
// group and N-1 always ends one, so 0 is a safe "nothing" value.
__global__ void mark_heads_tails(const uint8_t* group_end, int64_t N, int32_t* heads,
                                 int32_t* rtails) {
  MC_GRID_STRIDE(p, N) {
    heads[p] = (p == 0 || group_end[p - 1]) ? int32_t(p) : 0;
    rtails[N - 1 - p] = group_end[p] ? int32_t(N - 1 - p) : 0;
  }
}

__device__ __forceinline__ ull block_sum(ull v, ull* smem) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  if ((threadIdx.x & 31) == 0) smem[threadIdx.x >> 5] = v;
  __syncthreads();
  v = threadIdx.x < blockDim.x / 32 ? smem[threadIdx.x] : 0ull;
  if (threadIdx.x < 32)
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  __syncthreads();
  return v;
}

// The tie-aware rank kernel: 2 * mid-rank = group start + group end + 2 (1-based ranks).
__global__ void rank_sum_kernel(const int64_t* labels, const int32_t* order, const int32_t* gs,
                                const int32_t* rge, int64_t N, int64_t k, int64_t* pos,
                                int64_t* rank2) {
  __shared__ ull smem[kThreads / 32];
  ull count = 0, r2 = 0;
  MC_GRID_STRIDE(p, N) {
    if (labels[order[p]] == k) {
      ++count;
      r2 += ull(gs[p]) + ull(N - 1 - rge[N - 1 - p]) + 2ull;
    }
  }
  count = block_sum(count, smem);
  r2 = block_sum(r2, smem);
  if (threadIdx.x == 0) {
    atomicAdd(reinterpret_cast<ull*>(pos + k), count);
    atomicAdd(reinterpret_cast<ull*>(rank2 + k), r2);
  }
}

__global__ void bootstrap_counts_kernel(uint64_t seed, int64_t first, int64_t B, int64_t N,
                                        int32_t* counts) {
  MC_GRID_STRIDE(t, B * N) {
    const int64_t b = t / N, i = t % N;
    atomicAdd(counts + bootstrap_draw(seed, first + b, i, N) * B + b, 1);
  }
}

// Threads run over (row chunk, resample), resample fastest: a warp reads 32 adjacent counts.
__global__ void bootstrap_confusion_kernel(const int32_t* counts, const int64_t* labels,
                                           const int32_t* pred, int64_t N, int64_t B, int64_t K,
                                           int64_t rows_per_chunk, int64_t* cm) {
  const int64_t chunks = (N + rows_per_chunk - 1) / rows_per_chunk;
  MC_GRID_STRIDE(t, chunks * B) {
    const int64_t b = t % B, c = t / B;
    const int64_t end = min(N, (c + 1) * rows_per_chunk);
    for (int64_t j = c * rows_per_chunk; j < end; ++j) {
      const int32_t m = counts[j * B + b];
      if (m) atomicAdd(reinterpret_cast<ull*>(cm + (b * K + labels[j]) * K + pred[j]), ull(m));
    }
  }
}

// Segment s of class k starts at the first group start at or after s * kSegment.
__global__ void segment_starts(const uint8_t* group_end, int64_t N, int64_t K, int64_t S,
                               int64_t* seg) {
  MC_GRID_STRIDE(t, K * (S + 1)) {
    const int64_t k = t / (S + 1), s = t % (S + 1);
    const uint8_t* end = group_end + k * N;
    int64_t p = s * kSegment < N ? s * kSegment : N;
    while (p > 0 && p < N && !end[p - 1]) ++p;
    seg[t] = p;
  }
}

// One thread per (class, segment, resample): the walk of the CPU twin over one segment, with
// "negatives below" counted from the segment's start; auc_combine adds what lies before it.
__global__ void auc_segments(const int32_t* counts, const int64_t* labels, const int32_t* order,
                             const uint8_t* group_end, int64_t N, int64_t B, int64_t K, int64_t S,
                             const int64_t* seg, int64_t* part) {
  MC_GRID_STRIDE(t, K * S * B) {
    const int64_t b = t % B, s = (t / B) % S, k = t / (B * S);
    const int64_t* sk = seg + k * (S + 1);
    int64_t below = 0, gpos = 0, gneg = 0, u = 0, ptot = 0;
    for (int64_t p = sk[s]; p < sk[s + 1]; ++p) {
      const int32_t j = order[k * N + p];
      const int64_t m = counts[int64_t(j) * B + b];
      if (labels[j] == k) gpos += m;
      else gneg += m;
      if (group_end[k * N + p]) {
        u += gpos * (2 * below + gneg);
        below += gneg;
        ptot += gpos;
        gpos = gneg = 0;
      }
    }
    part[3 * t] = u;
    part[3 * t + 1] = ptot;
    part[3 * t + 2] = below;
  }
}

__global__ void auc_combine(const int64_t* part, int64_t B, int64_t K, int64_t S, int64_t* pos,
                            int64_t* neg, int64_t* u2) {
  MC_GRID_STRIDE(t, K * B) {
    const int64_t b = t % B, k = t / B;
    int64_t u = 0, ptot = 0, before = 0;
    for (int64_t s = 0; s < S; ++s) {
      const int64_t* q = part + 3 * ((k * S + s) * B + b);
      u += q[0] + 2 * q[1] * before;
      ptot += q[1];
      before += q[2];
    }
    pos[b * K + k] = ptot;
    neg[b * K + k] = before;
    u2[b * K + k] = u;
  }
}

size_t cub_sort_bytes(int64_t N) {
  size_t bytes = 0;
  MC_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, bytes, static_cast<const double*>(nullptr),
                                        static_cast<double*>(nullptr),
                                        static_cast<const int32_t*>(nullptr),
                                        static_cast<int32_t*>(nullptr), N));
  return bytes;
}

size_t cub_scan_bytes(int64_t N) {
  size_t bytes = 0;
  MC_CUDA_CHECK(cub::DeviceScan::InclusiveScan(nullptr, bytes, static_cast<const int32_t*>(nullptr),
                                       static_cast<int32_t*>(nullptr), MaxOp{}, N));
  return bytes;
}

size_t sort_carve(Carve& c, int64_t N, double** keys, int32_t** rows, void** tmp) {
  *keys = c.take<double>(size_t(N));
  *rows = c.take<int32_t>(size_t(N));
  const size_t bytes = cub_sort_bytes(N);
  *tmp = c.take<char>(bytes);
  return bytes;
}

size_t rank_carve(Carve& c, int64_t N, int32_t** bufs, void** tmp) {
  for (int i = 0; i < 4; ++i) bufs[i] = c.take<int32_t>(size_t(N));
  const size_t bytes = cub_scan_bytes(N);
  *tmp = c.take<char>(bytes);
  return bytes;
}

size_t auc_carve(Carve& c, int64_t N, int64_t B, int64_t K, int64_t** seg, int64_t** part) {
  const int64_t S = (N + kSegment - 1) / kSegment;
  *seg = c.take<int64_t>(size_t(K * (S + 1)));
  *part = c.take<int64_t>(size_t(3 * K * S * B));
  return size_t(S);
}

void need(size_t have, size_t want, const char* what) {
  MC_CHECK(have >= want, "kernels/metrics.cu: ", what, " workspace of ", have, " bytes, needs ",
           want);
}

}  // namespace

void validate(const int64_t* labels, const double* scores, int64_t N, int64_t K, int64_t* faults,
              Stream s) {
  set_faults<<<1, 1, 0, s>>>(faults, N);
  validate_kernel<<<grid(N * (scores ? K : 1)), kThreads, 0, s>>>(labels, scores, N, K, faults);
  MC_LAUNCHED("validate");
}

void offset_softmax(const float* x, const double* offset, int64_t N, int64_t K, bool softmax,
                    double* out, Stream s) {
  offset_softmax_kernel<<<grid(N), kThreads, 0, s>>>(x, offset, N, K, softmax, out);
  MC_LAUNCHED("offset_softmax");
}

void offset_softmax(const double* x, const double* offset, int64_t N, int64_t K, bool softmax,
                    double* out, Stream s) {
  offset_softmax_kernel<<<grid(N), kThreads, 0, s>>>(x, offset, N, K, softmax, out);
  MC_LAUNCHED("offset_softmax");
}

void argmax_rows(const double* scores, int64_t N, int64_t K, int32_t* pred, Stream s) {
  argmax_kernel<<<grid(N), kThreads, 0, s>>>(scores, N, K, pred);
  MC_LAUNCHED("argmax_rows");
}

void confusion_matrix(const int64_t* labels, const int32_t* pred, int64_t N, int64_t K,
                      int64_t* cm, Stream s) {
  MC_CUDA_CHECK(cudaMemsetAsync(cm, 0, size_t(K * K) * sizeof(int64_t), s));
  if (K * K <= kSharedCells)
    confusion_shared<<<grid(N), kThreads, size_t(K * K) * sizeof(unsigned), s>>>(labels, pred,
                                                                                    N, K, cm);
  else
    confusion_global<<<grid(N), kThreads, 0, s>>>(labels, pred, N, K, cm);
  MC_LAUNCHED("confusion_matrix");
}

size_t sort_columns_workspace(int64_t N) {
  Carve c{nullptr};
  double* keys;
  int32_t* rows;
  void* tmp;
  sort_carve(c, N, &keys, &rows, &tmp);
  return c.used;
}

void sort_columns(const double* scores, int64_t N, int64_t K, int32_t* order, double* sorted,
                  uint8_t* group_end, void* work, size_t work_bytes, Stream s) {
  need(work_bytes, sort_columns_workspace(N), "sort_columns");
  Carve c{static_cast<char*>(work)};
  double* keys;
  int32_t* rows;
  void* tmp;
  size_t tmp_bytes = sort_carve(c, N, &keys, &rows, &tmp);
  for (int64_t k = 0; k < K; ++k) {
    gather_column<<<grid(N), kThreads, 0, s>>>(scores, N, K, k, keys, rows);
    MC_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(tmp, tmp_bytes, keys, sorted + k * N, rows,
                                          order + k * N, N, 0, int(sizeof(double) * 8), s));
  }
  mark_group_ends<<<grid(N * K), kThreads, 0, s>>>(sorted, N, K, group_end);
  MC_LAUNCHED("sort_columns");
}

size_t auc_rank_sums_workspace(int64_t N) {
  Carve c{nullptr};
  int32_t* bufs[4];
  void* tmp;
  rank_carve(c, N, bufs, &tmp);
  return c.used;
}

void auc_rank_sums(const int64_t* labels, const int32_t* order, const uint8_t* group_end,
                   int64_t N, int64_t K, int64_t* pos, int64_t* rank2, void* work,
                   size_t work_bytes, Stream s) {
  need(work_bytes, auc_rank_sums_workspace(N), "auc_rank_sums");
  Carve c{static_cast<char*>(work)};
  int32_t* b[4];  // heads, group starts, mirrored tails, mirrored group ends
  void* tmp;
  size_t tmp_bytes = rank_carve(c, N, b, &tmp);
  MC_CUDA_CHECK(cudaMemsetAsync(pos, 0, size_t(K) * sizeof(int64_t), s));
  MC_CUDA_CHECK(cudaMemsetAsync(rank2, 0, size_t(K) * sizeof(int64_t), s));
  for (int64_t k = 0; k < K; ++k) {
    mark_heads_tails<<<grid(N), kThreads, 0, s>>>(group_end + k * N, N, b[0], b[2]);
    MC_CUDA_CHECK(cub::DeviceScan::InclusiveScan(tmp, tmp_bytes, b[0], b[1], MaxOp{}, N, s));
    MC_CUDA_CHECK(cub::DeviceScan::InclusiveScan(tmp, tmp_bytes, b[2], b[3], MaxOp{}, N, s));
    rank_sum_kernel<<<grid(N), kThreads, 0, s>>>(labels, order + k * N, b[1], b[3], N, k, pos,
                                                      rank2);
  }
  MC_LAUNCHED("auc_rank_sums");
}

void bootstrap_counts(uint64_t seed, int64_t first, int64_t B, int64_t N, int32_t* counts,
                      Stream s) {
  MC_CUDA_CHECK(cudaMemsetAsync(counts, 0, size_t(B * N) * sizeof(int32_t), s));
  bootstrap_counts_kernel<<<grid(B * N), kThreads, 0, s>>>(seed, first, B, N, counts);
  MC_LAUNCHED("bootstrap_counts");
}

void bootstrap_confusion(const int32_t* counts, const int64_t* labels, const int32_t* pred,
                         int64_t N, int64_t B, int64_t K, int64_t* cm, Stream s) {
  MC_CUDA_CHECK(cudaMemsetAsync(cm, 0, size_t(B * K * K) * sizeof(int64_t), s));
  const int64_t rows = 256, chunks = (N + rows - 1) / rows;
  bootstrap_confusion_kernel<<<grid(chunks * B), kThreads, 0, s>>>(counts, labels, pred, N, B,
                                                                       K, rows, cm);
  MC_LAUNCHED("bootstrap_confusion");
}

size_t bootstrap_auc_workspace(int64_t N, int64_t B, int64_t K) {
  Carve c{nullptr};
  int64_t *seg, *part;
  auc_carve(c, N, B, K, &seg, &part);
  return c.used;
}

void bootstrap_auc(const int32_t* counts, const int64_t* labels, const int32_t* order,
                   const uint8_t* group_end, int64_t N, int64_t B, int64_t K, int64_t* pos,
                   int64_t* neg, int64_t* u2, void* work, size_t work_bytes, Stream s) {
  need(work_bytes, bootstrap_auc_workspace(N, B, K), "bootstrap_auc");
  Carve c{static_cast<char*>(work)};
  int64_t *seg, *part;
  const int64_t S = int64_t(auc_carve(c, N, B, K, &seg, &part));
  segment_starts<<<grid(K * (S + 1)), kThreads, 0, s>>>(group_end, N, K, S, seg);
  auc_segments<<<grid(K * S * B), kThreads, 0, s>>>(counts, labels, order, group_end, N, B, K,
                                                        S, seg, part);
  auc_combine<<<grid(K * B), kThreads, 0, s>>>(part, B, K, S, pos, neg, u2);
  MC_LAUNCHED("bootstrap_auc");
}

}  // namespace mc::kernels::cuda
