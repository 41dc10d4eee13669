#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/loss.h"

namespace mc::kernels::cpu {

template <class T>
void cross_entropy_fused(const T* logits, const int64_t* labels, const T* offset, const T* weight,
                         int64_t N, int64_t C, bool mean, T* loss, T* dlogits, T dloss) {
  double total = 0, wsum = 0;
  std::vector<double> z(static_cast<size_t>(C));
  for (int64_t i = 0; i < N; ++i) {  // serial: a fixed summation order (bit-reproducible)
    const T* li = logits + i * C;
    for (int64_t c = 0; c < C; ++c) z[size_t(c)] = double(li[c]) + (offset ? double(offset[c]) : 0.0);
    const double m = *std::max_element(z.begin(), z.end());
    double s = 0;
    for (double v : z) s += std::exp(v - m);
    const double lse = m + std::log(s);
    const int64_t y = labels[i];
    const double w = weight ? double(weight[y]) : 1.0;
    total += w * (lse - z[size_t(y)]);
    wsum += w;
  }
  const double denom = mean ? wsum : 1.0;
  loss[0] = T(total / denom);
  if (!dlogits) return;
  const double scale = double(dloss) / denom;
  for (int64_t i = 0; i < N; ++i) {
    const T* li = logits + i * C;
    T* d = dlogits + i * C;
    for (int64_t c = 0; c < C; ++c) z[size_t(c)] = double(li[c]) + (offset ? double(offset[c]) : 0.0);
    const double m = *std::max_element(z.begin(), z.end());
    double s = 0;
    for (double v : z) s += std::exp(v - m);
    const int64_t y = labels[i];
    const double w = (weight ? double(weight[y]) : 1.0) * scale;
    for (int64_t c = 0; c < C; ++c)
      d[c] = T(w * (std::exp(z[size_t(c)] - m) / s - (c == y ? 1.0 : 0.0)));
  }
}

template void cross_entropy_fused<float>(const float*, const int64_t*, const float*, const float*,
                                         int64_t, int64_t, bool, float*, float*, float);
template void cross_entropy_fused<double>(const double*, const int64_t*, const double*,
                                          const double*, int64_t, int64_t, bool, double*, double*,
                                          double);

}  // namespace mc::kernels::cpu
