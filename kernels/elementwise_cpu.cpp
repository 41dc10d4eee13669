// CPU twins of kernels/elementwise.cu (contract in kernels/elementwise.h).
#include <cstring>
#include <string>

#include "engine/check.h"
#include "kernels/elementwise.h"
#include "kernels/half.h"

namespace mc::kernels {

const char* dt_name(int dt) {
  constexpr const char* names[] = {"f32", "f64", "bf16", "f16", "i32", "i64", "u8"};
  return dt >= 0 && dt <= U8 ? names[dt] : "unknown dtype";
}

namespace cpu {
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

void known(int dt, const char* op) {
  MC_CHECK(dt_size(dt) > 0, "kernels/elementwise_cpu.cpp: ", op, ": unknown dtype code ", dt);
}

template <class T, class Op>
void map(Op op, const T* a, const T* b, T* y, T alpha, int64_t n) {
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) y[i] = op(a[i], b ? b[i] : T(0), alpha);
}

template <class Op>
void map_dt(Op op, const void* a, const void* b, void* y, int dt, double alpha, int64_t n,
            const char* what) {
  if (dt == F32)
    return map(op, static_cast<const float*>(a), static_cast<const float*>(b),
               static_cast<float*>(y), float(alpha), n);
  MC_CHECK(dt == F64, "kernels/elementwise_cpu.cpp: ", what, " takes f32 or f64, got ",
           dt_name(dt));
  map(op, static_cast<const double*>(a), static_cast<const double*>(b), static_cast<double*>(y),
      alpha, n);
}

}  // namespace

void pointwise(Pointwise op, const void* a, const void* b, void* y, int dt, double alpha, int64_t n,
               Stream) {
  if (n <= 0) return;
  MC_CHECK(pointwise_arity(op) == 1 || b, "pointwise ", pointwise_name(op), ": needs two inputs");
  switch (op) {
#define MC_POINTWISE_CPU(name, arity)                                                 \
  case Pointwise::name:                                                               \
    return map_dt(pointwise::name{}, a, arity == 2 ? b : nullptr, y, dt, alpha, n, #name);
    MC_POINTWISE_OPS(MC_POINTWISE_CPU)
#undef MC_POINTWISE_CPU
  }
  MC_FAIL("pointwise: unknown op ", int(op));
}

void fill(void* y, int dt, double v, int64_t n, Stream) {
  known(dt, "fill");
  if (dt == F32) {
    float f = float(v), *p = static_cast<float*>(y);
    for (int64_t i = 0; i < n; ++i) p[i] = f;
    return;
  }
  for (int64_t i = 0; i < n; ++i) store(y, dt, i, v);
}

void cast(const void* x, int xdt, void* y, int ydt, int64_t n, Stream) {
  known(xdt, "cast");
  known(ydt, "cast");
  if (n <= 0) return;
  if (xdt == ydt) {
    std::memcpy(y, x, size_t(n) * dt_size(xdt));
    return;
  }
  // Casting F32 <-> F64 through double is exact; bf16/f16 round from float as the GPU does.
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) store(y, ydt, i, load(x, xdt, i));
}

size_t sum_workspace(int64_t) { return 0; }

void sum(const void* x, int xdt, int64_t n, double scale, void* y, int ydt, void*, size_t,
         Stream) {
  known(xdt, "sum");
  known(ydt, "sum");
  double acc = 0;  // serial: a fixed summation order (bit-reproducible)
  if (xdt == F32) {
    const float* p = static_cast<const float*>(x);
    for (int64_t i = 0; i < n; ++i) acc += p[i];
  } else if (xdt == F64) {
    const double* p = static_cast<const double*>(x);
    for (int64_t i = 0; i < n; ++i) acc += p[i];
  } else {
    for (int64_t i = 0; i < n; ++i) acc += load(x, xdt, i);
  }
  store(y, ydt, 0, scale == 1.0 ? acc : acc * scale);
}

void sum_squares(const void* x, int xdt, int64_t n, void* y, int ydt, void*, size_t, Stream) {
  known(xdt, "sum_squares");
  known(ydt, "sum_squares");
  double acc = 0;  // serial, as sum(): bit-reproducible
  if (xdt == F32) {
    const float* p = static_cast<const float*>(x);
    for (int64_t i = 0; i < n; ++i) acc += double(p[i]) * double(p[i]);
  } else if (xdt == F64) {
    const double* p = static_cast<const double*>(x);
    for (int64_t i = 0; i < n; ++i) acc += p[i] * p[i];
  } else {
    for (int64_t i = 0; i < n; ++i) {
      const double v = load(x, xdt, i);
      acc += v * v;
    }
  }
  store(y, ydt, 0, acc);
}

void broadcast_scalar(const void* scalar, int sdt, double alpha, void* y, int ydt, int64_t n,
                      Stream s) {
  known(sdt, "broadcast_scalar");
  fill(y, ydt, load(scalar, sdt, 0) * alpha, n, s);
}

void transpose(const void* x, int xdt, void* y, int ydt, int64_t B, int64_t R, int64_t Q,
               Stream) {
  known(xdt, "transpose");
  known(ydt, "transpose");
  const size_t xs = dt_size(xdt), ys = dt_size(ydt);
#pragma omp parallel for schedule(static) if (B * R * Q > (1 << 16))
  for (int64_t b = 0; b < B; ++b) {
    const char* xb = static_cast<const char*>(x) + size_t(b * R * Q) * xs;
    char* yb = static_cast<char*>(y) + size_t(b * R * Q) * ys;
    for (int64_t r = 0; r < R; ++r)
      for (int64_t q = 0; q < Q; ++q) store(yb, ydt, q * R + r, load(xb, xdt, r * Q + q));
  }
}

}  // namespace cpu
}  // namespace mc::kernels
