// Building blocks of classification metrics (engine/metrics.h assembles them).
//
// Inputs: scores N x K row-major double (K classes), labels int64 in [0, K) (validate first),
// predictions int32. After the per-class sort every quantity is an integer count, so each CUDA
// kernel and its CPU twin agree exactly, whatever order ties end up in.
//
// ROC AUC is the tie-aware Mann-Whitney statistic. For class k with P positives, Q negatives and
// 1-based mid-ranks r_i of scores[:, k] (a tie group occupying sorted positions gs..ge gets
// (gs + ge + 2) / 2), 2U = sum_{i positive} 2 r_i - P (P + 1) and AUC = 2U / (2 P Q): ties count
// one half, exactly the trapezoid sklearn integrates.
//
// Bootstrap: resample b draws N indices j = floor(u * N), u = philox_uniform_d(b * N + i, seed)
// (kernels/philox.h), i = 0..N-1. Draws are stored as multiplicities counts[j * B + b] (index
// major: a warp of consecutive resamples reads consecutive words), and every statistic of a
// resample is the count-weighted version of the point statistic over the original sort.
//
// Each CUDA entry point has a CPU twin with the same signature (the CPU ignores the stream).
// Workspaces are raw bytes of the backend's memory the caller allocates (the CPU twins need none
// and ignore them).
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/common.h"
#include "kernels/philox.h"

namespace mc::kernels {

namespace cpu {
// faults[0] = first row with a label outside [0, K), faults[1] = first row with a non-finite
// score; N where there is none. scores may be null (labels only).
void validate(const int64_t* labels, const double* scores, int64_t N, int64_t K, int64_t* faults, Stream s);
// probs[i, k] = softmax(x[i, :] + offset)_k in double (offset: K values, may be null).
// With softmax = false: x + offset.
void offset_softmax(const float* x, const double* offset, int64_t N, int64_t K, bool softmax,
                    double* out, Stream s);
void offset_softmax(const double* x, const double* offset, int64_t N, int64_t K, bool softmax,
                    double* out, Stream s);
// pred[i] = the first k with the largest scores[i, k] (numpy.argmax).
void argmax_rows(const double* scores, int64_t N, int64_t K, int32_t* pred, Stream s);
// cm[t * K + p] = #{i : labels[i] = t, pred[i] = p}.
void confusion_matrix(const int64_t* labels, const int32_t* pred, int64_t N, int64_t K,
                      int64_t* cm, Stream s);
// Per class k (slices [k * N, (k + 1) * N)): order = row indices by ascending scores[:, k],
// sorted = those scores, group_end = 1 at the last position of each run of equal scores.
size_t sort_columns_workspace(int64_t N);
void sort_columns(const double* scores, int64_t N, int64_t K, int32_t* order, double* sorted,
                  uint8_t* group_end, void* work, size_t work_bytes, Stream s);
// Per class k: pos[k] = #{labels = k}, rank2[k] = sum over those rows of 2 * mid-rank.
size_t auc_rank_sums_workspace(int64_t N);
void auc_rank_sums(const int64_t* labels, const int32_t* order, const uint8_t* group_end,
                   int64_t N, int64_t K, int64_t* pos, int64_t* rank2, void* work,
                   size_t work_bytes, Stream s);
// counts[j * B + b] = how often resample (first + b) drew row j, for b in [0, B).
void bootstrap_counts(uint64_t seed, int64_t first, int64_t B, int64_t N, int32_t* counts, Stream s);
// cm[(b * K + t) * K + p]: confusion matrix of resample b.
void bootstrap_confusion(const int32_t* counts, const int64_t* labels, const int32_t* pred,
                         int64_t N, int64_t B, int64_t K, int64_t* cm, Stream s);
// Per resample b and class k (index b * K + k): positive and negative weights and 2U.
size_t bootstrap_auc_workspace(int64_t N, int64_t B, int64_t K);
void bootstrap_auc(const int32_t* counts, const int64_t* labels, const int32_t* order,
                   const uint8_t* group_end, int64_t N, int64_t B, int64_t K, int64_t* pos,
                   int64_t* neg, int64_t* u2, void* work, size_t work_bytes, Stream s);
}  // namespace cpu

namespace cuda {
// Device pointers throughout; outputs are device memory; faults is a device int64[2].
void validate(const int64_t* labels, const double* scores, int64_t N, int64_t K, int64_t* faults,
              Stream s);
void offset_softmax(const float* x, const double* offset, int64_t N, int64_t K, bool softmax,
                    double* out, Stream s);
void offset_softmax(const double* x, const double* offset, int64_t N, int64_t K, bool softmax,
                    double* out, Stream s);
void argmax_rows(const double* scores, int64_t N, int64_t K, int32_t* pred, Stream s);
void confusion_matrix(const int64_t* labels, const int32_t* pred, int64_t N, int64_t K,
                      int64_t* cm, Stream s);
size_t sort_columns_workspace(int64_t N);
void sort_columns(const double* scores, int64_t N, int64_t K, int32_t* order, double* sorted,
                  uint8_t* group_end, void* work, size_t work_bytes, Stream s);
size_t auc_rank_sums_workspace(int64_t N);
void auc_rank_sums(const int64_t* labels, const int32_t* order, const uint8_t* group_end,
                   int64_t N, int64_t K, int64_t* pos, int64_t* rank2, void* work,
                   size_t work_bytes, Stream s);
void bootstrap_counts(uint64_t seed, int64_t first, int64_t B, int64_t N, int32_t* counts,
                      Stream s);
void bootstrap_confusion(const int32_t* counts, const int64_t* labels, const int32_t* pred,
                         int64_t N, int64_t B, int64_t K, int64_t* cm, Stream s);
size_t bootstrap_auc_workspace(int64_t N, int64_t B, int64_t K);
void bootstrap_auc(const int32_t* counts, const int64_t* labels, const int32_t* order,
                   const uint8_t* group_end, int64_t N, int64_t B, int64_t K, int64_t* pos,
                   int64_t* neg, int64_t* u2, void* work, size_t work_bytes, Stream s);
}  // namespace cuda

// The row that resample b draws at position i (shared by both backends, so draws are identical).
MC_HD int64_t bootstrap_draw(uint64_t seed, int64_t b, int64_t i, int64_t N) {
  const double u = philox_uniform_d(uint64_t(b) * uint64_t(N) + uint64_t(i), seed);
  const int64_t j = int64_t(u * double(N));
  return j < N ? j : N - 1;
}

}  // namespace mc::kernels
