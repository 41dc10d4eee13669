// CPU twins of the metric kernels (contracts in kernels/metrics.h).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "kernels/metrics.h"

namespace mc::kernels::cpu {

void validate(const int64_t* labels, const double* scores, int64_t N, int64_t K, int64_t* faults, Stream) {
  faults[0] = faults[1] = N;
  for (int64_t i = 0; i < N && faults[0] == N; ++i)
    if (labels[i] < 0 || labels[i] >= K) faults[0] = i;
  if (!scores) return;
  for (int64_t i = 0; i < N * K && faults[1] == N; ++i)
    if (!std::isfinite(scores[i])) faults[1] = i / K;
}

template <class T>
static void offset_softmax_impl(const T* x, const double* offset, int64_t N, int64_t K,
                                bool softmax, double* out) {
  for (int64_t i = 0; i < N; ++i) {
    double* o = out + i * K;
    double m = -INFINITY;
    for (int64_t k = 0; k < K; ++k) {
      o[k] = double(x[i * K + k]) + (offset ? offset[k] : 0.0);
      m = std::max(m, o[k]);
    }
    if (!softmax) continue;
    double s = 0;
    for (int64_t k = 0; k < K; ++k) s += (o[k] = std::exp(o[k] - m));
    for (int64_t k = 0; k < K; ++k) o[k] /= s;
  }
}
void offset_softmax(const float* x, const double* offset, int64_t N, int64_t K, bool softmax,
                    double* out, Stream) {
  offset_softmax_impl(x, offset, N, K, softmax, out);
}
void offset_softmax(const double* x, const double* offset, int64_t N, int64_t K, bool softmax,
                    double* out, Stream) {
  offset_softmax_impl(x, offset, N, K, softmax, out);
}

void argmax_rows(const double* scores, int64_t N, int64_t K, int32_t* pred, Stream) {
  for (int64_t i = 0; i < N; ++i) {
    const double* r = scores + i * K;
    int32_t best = 0;
    for (int64_t k = 1; k < K; ++k)
      if (r[k] > r[best]) best = int32_t(k);
    pred[i] = best;
  }
}

void confusion_matrix(const int64_t* labels, const int32_t* pred, int64_t N, int64_t K,
                      int64_t* cm, Stream) {
  std::fill(cm, cm + K * K, 0);
  for (int64_t i = 0; i < N; ++i) ++cm[labels[i] * K + pred[i]];
}

size_t sort_columns_workspace(int64_t) { return 0; }

void sort_columns(const double* scores, int64_t N, int64_t K, int32_t* order, double* sorted,
                  uint8_t* group_end, void*, size_t, Stream) {
  for (int64_t k = 0; k < K; ++k) {
    int32_t* o = order + k * N;
    std::iota(o, o + N, 0);
    std::sort(o, o + N, [&](int32_t a, int32_t b) { return scores[a * K + k] < scores[b * K + k]; });
    double* s = sorted + k * N;
    for (int64_t p = 0; p < N; ++p) s[p] = scores[int64_t(o[p]) * K + k];
    for (int64_t p = 0; p < N; ++p) group_end[k * N + p] = p + 1 == N || s[p] != s[p + 1];
  }
}

size_t auc_rank_sums_workspace(int64_t) { return 0; }

void auc_rank_sums(const int64_t* labels, const int32_t* order, const uint8_t* group_end,
                   int64_t N, int64_t K, int64_t* pos, int64_t* rank2, void*, size_t, Stream) {
  for (int64_t k = 0; k < K; ++k) {
    const int32_t* o = order + k * N;
    const uint8_t* end = group_end + k * N;
    int64_t p_count = 0, r2 = 0;
    for (int64_t gs = 0; gs < N;) {  // one tie group [gs, ge] per iteration
      int64_t ge = gs;
      while (!end[ge]) ++ge;
      int64_t in_group = 0;
      for (int64_t p = gs; p <= ge; ++p) in_group += labels[o[p]] == k;
      p_count += in_group;
      r2 += in_group * (gs + ge + 2);
      gs = ge + 1;
    }
    pos[k] = p_count;
    rank2[k] = r2;
  }
}

void bootstrap_counts(uint64_t seed, int64_t first, int64_t B, int64_t N, int32_t* counts, Stream) {
  std::fill(counts, counts + B * N, 0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < N; ++i) ++counts[bootstrap_draw(seed, first + b, i, N) * B + b];
}

void bootstrap_confusion(const int32_t* counts, const int64_t* labels, const int32_t* pred,
                         int64_t N, int64_t B, int64_t K, int64_t* cm, Stream) {
  std::fill(cm, cm + B * K * K, 0);
  for (int64_t j = 0; j < N; ++j) {
    const int64_t cell = labels[j] * K + pred[j];
    for (int64_t b = 0; b < B; ++b) cm[b * K * K + cell] += counts[j * B + b];
  }
}

size_t bootstrap_auc_workspace(int64_t, int64_t, int64_t) { return 0; }

void bootstrap_auc(const int32_t* counts, const int64_t* labels, const int32_t* order,
                   const uint8_t* group_end, int64_t N, int64_t B, int64_t K, int64_t* pos,
                   int64_t* neg, int64_t* u2, void*, size_t, Stream) {
  const size_t nb = size_t(B);
  for (int64_t k = 0; k < K; ++k) {
    std::vector<int64_t> below(nb, 0), gpos(nb, 0), gneg(nb, 0), u(nb, 0), ptot(nb, 0);
    for (int64_t p = 0; p < N; ++p) {
      const int64_t j = order[k * N + p];
      auto& g = labels[j] == k ? gpos : gneg;
      for (int64_t b = 0; b < B; ++b) g[size_t(b)] += counts[j * B + b];
      if (!group_end[k * N + p]) continue;
      // A positive beats every negative below its tie group and ties with those inside it.
      for (size_t b = 0; b < nb; ++b) {
        u[b] += gpos[b] * (2 * below[b] + gneg[b]);
        below[b] += gneg[b];
        ptot[b] += gpos[b];
        gpos[b] = gneg[b] = 0;
      }
    }
    for (int64_t b = 0; b < B; ++b) {
      pos[b * K + k] = ptot[size_t(b)];
      neg[b * K + k] = below[size_t(b)];
      u2[b * K + k] = u[size_t(b)];
    }
  }
}

}  // namespace mc::kernels::cpu
