#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/check.h"
#include "kernels/loss.h"

namespace mc::kernels::cpu {
namespace {

template <class T>
void fused(const T* logits, const int64_t* labels, const T* offset, const T* weight, int64_t N,
           int64_t C, bool mean, T* loss, T* dlogits, T dloss, int* bad) {
  double total = 0, wsum = 0;
  std::vector<double> z(static_cast<size_t>(C));
  auto valid = [&](int64_t y) {
    const bool ok = y >= 0 && y < C;
    if (!ok && bad) *bad = 1;
    return ok;
  };
  for (int64_t i = 0; i < N; ++i) {  // serial: a fixed summation order (bit-reproducible)
    const int64_t y = labels[i];
    if (!valid(y)) continue;
    const T* li = logits + i * C;
    for (int64_t c = 0; c < C; ++c) z[size_t(c)] = double(li[c]) + (offset ? double(offset[c]) : 0.0);
    const double m = *std::max_element(z.begin(), z.end());
    double s = 0;
    for (double v : z) s += std::exp(v - m);
    const double lse = m + std::log(s);
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
    const int64_t y = labels[i];
    if (y < 0 || y >= C) {
      std::fill(d, d + C, T(0));
      continue;
    }
    for (int64_t c = 0; c < C; ++c) z[size_t(c)] = double(li[c]) + (offset ? double(offset[c]) : 0.0);
    const double m = *std::max_element(z.begin(), z.end());
    double s = 0;
    for (double v : z) s += std::exp(v - m);
    const double w = (weight ? double(weight[y]) : 1.0) * scale;
    for (int64_t c = 0; c < C; ++c)
      d[c] = T(w * (std::exp(z[size_t(c)] - m) / s - (c == y ? 1.0 : 0.0)));
  }
}

}  // namespace

size_t cross_entropy_workspace(int64_t, int64_t) { return 0; }

void cross_entropy_fused(const void* logits, const int64_t* labels, const void* offset,
                         const void* weight, int dt, int64_t N, int64_t C, bool mean, void* loss,
                         void* dlogits, const void* dloss, int* bad_label, void*, size_t,
                         Stream) {
  MC_CHECK(N > 0 && C > 0, "kernels/loss_cpu.cpp: empty logits (", N, " x ", C, ")");
  MC_CHECK(!dlogits || dloss, "kernels/loss_cpu.cpp: a gradient needs dloss");
  auto run = [&](auto t) {
    using T = decltype(t);
    fused(static_cast<const T*>(logits), labels, static_cast<const T*>(offset),
          static_cast<const T*>(weight), N, C, mean, static_cast<T*>(loss),
          static_cast<T*>(dlogits), dlogits ? *static_cast<const T*>(dloss) : T(0), bad_label);
  };
  if (dt == F32) return run(float{});
  MC_CHECK(dt == F64, "kernels/loss_cpu.cpp: cross_entropy takes f32 or f64, got ", dt_name(dt));
  run(double{});
}

}  // namespace mc::kernels::cpu
