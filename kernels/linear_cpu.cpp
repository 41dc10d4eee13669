#include "engine/check.h"
#include "kernels/gemm.h"
#include "kernels/linear.h"

namespace mc::kernels::cpu {
namespace {

template <class T>
void forward(const T* x, const T* w, const T* b, T* y, int64_t N, int64_t In, int64_t Out) {
  if (b)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t o = 0; o < Out; ++o) y[n * Out + o] = b[o];
  gemm<T>(false, true, N, Out, In, T(1), x, In, w, In, b ? T(1) : T(0), y, Out);
}

template <class T>
void backward(const T* x, const T* w, const T* dy, T* dx, T* dw, T* db, int64_t N, int64_t In,
              int64_t Out) {
  if (dx) gemm<T>(false, false, N, In, Out, T(1), dy, Out, w, In, T(0), dx, In);
  if (dw) gemm<T>(true, false, Out, In, N, T(1), dy, Out, x, In, T(0), dw, In);
  if (db)
    for (int64_t o = 0; o < Out; ++o) {
      double acc = 0;
      for (int64_t n = 0; n < N; ++n) acc += dy[n * Out + o];
      db[o] = T(acc);
    }
}

template <class F> void on_fp(int dt, const char* what, F&& f) {
  if (dt == F32) return f(float{});
  MC_CHECK(dt == F64, "kernels/linear_cpu.cpp: ", what, " takes f32 or f64, got ", dt_name(dt));
  f(double{});
}

}  // namespace

void linear_forward(const void* x, const void* w, const void* b, void* y, int dt, int64_t N,
                    int64_t In, int64_t Out, Stream) {
  on_fp(dt, "linear", [&](auto t) {
    using T = decltype(t);
    forward(static_cast<const T*>(x), static_cast<const T*>(w), static_cast<const T*>(b),
            static_cast<T*>(y), N, In, Out);
  });
}

void linear_backward(const void* x, const void* w, const void* dy, void* dx, void* dw, void* db,
                     int dt, int64_t N, int64_t In, int64_t Out, Stream) {
  on_fp(dt, "linear backward", [&](auto t) {
    using T = decltype(t);
    backward(static_cast<const T*>(x), static_cast<const T*>(w), static_cast<const T*>(dy),
             static_cast<T*>(dx), static_cast<T*>(dw), static_cast<T*>(db), N, In, Out);
  });
}

}  // namespace mc::kernels::cpu
