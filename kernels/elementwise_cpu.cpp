#include <cstring>

#include "kernels/elementwise.h"
#include "kernels/half.h"

namespace mc::kernels::cpu {

namespace {
double load(const void* p, int dt, int64_t i) {
  switch (dt) {
    case F32: return static_cast<const float*>(p)[i];
    case F64: return static_cast<const double*>(p)[i];
    case BF16: return bf16_to_float(static_cast<const uint16_t*>(p)[i]);
    case F16: return f16_to_float(static_cast<const uint16_t*>(p)[i]);
    case I32: return static_cast<const int32_t*>(p)[i];
    case I64: return double(static_cast<const int64_t*>(p)[i]);
    default: return static_cast<const uint8_t*>(p)[i];
  }
}
void store(void* p, int dt, int64_t i, double v) {
  switch (dt) {
    case F32: static_cast<float*>(p)[i] = float(v); break;
    case F64: static_cast<double*>(p)[i] = v; break;
    case BF16: static_cast<uint16_t*>(p)[i] = float_to_bf16(float(v)); break;
    case F16: static_cast<uint16_t*>(p)[i] = float_to_f16(float(v)); break;
    case I32: static_cast<int32_t*>(p)[i] = int32_t(v); break;
    case I64: static_cast<int64_t*>(p)[i] = int64_t(v); break;
    default: static_cast<uint8_t*>(p)[i] = uint8_t(v); break;
  }
}
}  // namespace

void fill(void* y, int dt, double v, int64_t n) {
  if (dt == F32) {
    float f = float(v), *p = static_cast<float*>(y);
    for (int64_t i = 0; i < n; ++i) p[i] = f;
    return;
  }
  for (int64_t i = 0; i < n; ++i) store(y, dt, i, v);
}

void cast(const void* x, int xdt, void* y, int ydt, int64_t n) {
  if (xdt == ydt) {
    static const int sz[] = {4, 8, 2, 2, 4, 8, 1};
    std::memcpy(y, x, size_t(n) * size_t(sz[xdt]));
    return;
  }
  // Casting F32 <-> F64 through double is exact; bf16/f16 round from float as the GPU does.
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) store(y, ydt, i, load(x, xdt, i));
}

template <class T> void add(const T* a, const T* b, T* y, int64_t n) {
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}
template <class T> void axpy(T alpha, const T* x, T* y, int64_t n) {
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}
template <class T> void scale(const T* x, T alpha, T* y, int64_t n) {
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) y[i] = alpha * x[i];
}
template <class T> void relu_forward(const T* x, T* y, int64_t n) {
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] > T(0) ? x[i] : T(0);
}
template <class T> void relu_backward(const T* y, const T* dy, T* dx, int64_t n) {
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) dx[i] = y[i] > T(0) ? dy[i] : T(0);
}

#define MC_INST(T)                                              \
  template void add<T>(const T*, const T*, T*, int64_t);        \
  template void axpy<T>(T, const T*, T*, int64_t);              \
  template void scale<T>(const T*, T, T*, int64_t);             \
  template void relu_forward<T>(const T*, T*, int64_t);         \
  template void relu_backward<T>(const T*, const T*, T*, int64_t);
MC_INST(float)
MC_INST(double)
#undef MC_INST

}  // namespace mc::kernels::cpu
