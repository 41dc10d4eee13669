// Elementwise kernels: pointwise maps, fill and cast, a deterministic sum, the broadcast of a
// scalar and the batched transpose that changes a 5-D activation's memory layout.
//
// A pointwise op is one functor below, applied by both backends (so they round alike), plus one
// line in MC_POINTWISE_OPS: the CPU and CUDA launchers expand that list, nothing else changes.
// Functors take (a, b, alpha) in float (bf16 data is loaded to float and rounded once on the way
// out) or double (the CPU's f64, for gradient checks); one-input ops ignore b.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/common.h"

namespace mc::kernels {

namespace pointwise {
struct Relu {
  template <class T> MC_HD T operator()(T x, T, T) const { return x > T(0) ? x : T(0); }
};
struct ReluBackward {  // a = y (the forward's output), b = dy
  template <class T> MC_HD T operator()(T y, T dy, T) const { return y > T(0) ? dy : T(0); }
};
struct Add {
  template <class T> MC_HD T operator()(T a, T b, T) const { return add_rn(a, b); }
};
struct Mul {
  template <class T> MC_HD T operator()(T a, T b, T) const { return mul_rn(a, b); }
};
struct Scale {
  template <class T> MC_HD T operator()(T x, T, T alpha) const { return mul_rn(alpha, x); }
};
struct Axpy {  // a = x, b = y: y + alpha x (as the CPU's y += alpha * x rounds it)
  template <class T> MC_HD T operator()(T x, T y, T alpha) const {
    return add_rn(y, mul_rn(alpha, x));
  }
};
// Regression losses on a residual x (alpha = delta): Huber is 0.5 x^2 within |x| <= delta and
// delta (|x| - 0.5 delta) beyond (PyTorch's HuberLoss); Square is x^2 (MSE).
struct Huber {
  template <class T> MC_HD T operator()(T x, T, T d) const {
    const T a = x < T(0) ? -x : x;
    return a <= d ? mul_rn(T(0.5), mul_rn(x, x)) : mul_rn(d, add_rn(a, -mul_rn(T(0.5), d)));
  }
};
struct HuberBackward {  // a = x, b = dy: clamp(x, -delta, delta) dy
  template <class T> MC_HD T operator()(T x, T dy, T d) const {
    return mul_rn(x > d ? d : x < -d ? -d : x, dy);
  }
};
struct Square {
  template <class T> MC_HD T operator()(T x, T, T) const { return mul_rn(x, x); }
};
struct SquareBackward {  // a = x, b = dy: 2 x dy
  template <class T> MC_HD T operator()(T x, T dy, T) const { return mul_rn(mul_rn(T(2), x), dy); }
};
// The activations of the Table II networks (MobileNetV2: ReLU6; EfficientNet: SiLU and the
// squeeze-and-excitation sigmoid gate), as PyTorch computes them: sigmoid(x) = 1 / (1 + e^-x).
MC_HD float exp_of(float x) { return expf(x); }
MC_HD double exp_of(double x) { return exp(x); }
template <class T> MC_HD T sigmoid_of(T x) { return T(1) / (T(1) + exp_of(-x)); }
struct Relu6 {
  template <class T> MC_HD T operator()(T x, T, T) const {
    return x > T(0) ? (x < T(6) ? x : T(6)) : T(0);
  }
};
struct Relu6Backward {  // a = x, b = dy: hardtanh's rule, zero at and beyond both kinks
  template <class T> MC_HD T operator()(T x, T dy, T) const {
    return x > T(0) && x < T(6) ? dy : T(0);
  }
};
struct Silu {
  template <class T> MC_HD T operator()(T x, T, T) const { return x * sigmoid_of(x); }
};
struct SiluBackward {  // a = x, b = dy: dy * s * (1 + x (1 - s)), s = sigmoid(x)
  template <class T> MC_HD T operator()(T x, T dy, T) const {
    const T s = sigmoid_of(x);
    return dy * (s * (T(1) + x * (T(1) - s)));
  }
};
struct Sigmoid {
  template <class T> MC_HD T operator()(T x, T, T) const { return sigmoid_of(x); }
};
struct SigmoidBackward {  // a = y (the forward's output), b = dy
  template <class T> MC_HD T operator()(T y, T dy, T) const { return dy * (y * (T(1) - y)); }
};
}  // namespace pointwise

// X(functor, number of inputs)
#define MC_POINTWISE_OPS(X) \
  X(Relu, 1)                \
  X(ReluBackward, 2)        \
  X(Add, 2)                 \
  X(Mul, 2)                 \
  X(Scale, 1)               \
  X(Axpy, 2)                \
  X(Huber, 1)               \
  X(HuberBackward, 2)       \
  X(Square, 1)              \
  X(SquareBackward, 2)       \
  X(Relu6, 1)               \
  X(Relu6Backward, 2)       \
  X(Silu, 1)                \
  X(SiluBackward, 2)        \
  X(Sigmoid, 1)             \
  X(SigmoidBackward, 2)

enum class Pointwise : int {
#define MC_POINTWISE_ENUM(name, arity) name,
  MC_POINTWISE_OPS(MC_POINTWISE_ENUM)
#undef MC_POINTWISE_ENUM
};
inline int pointwise_arity(Pointwise op) {
  switch (op) {
#define MC_POINTWISE_ARITY(name, arity) \
  case Pointwise::name: return arity;
    MC_POINTWISE_OPS(MC_POINTWISE_ARITY)
#undef MC_POINTWISE_ARITY
  }
  return 0;
}
inline const char* pointwise_name(Pointwise op) {
  switch (op) {
#define MC_POINTWISE_NAME(name, arity) \
  case Pointwise::name: return #name;
    MC_POINTWISE_OPS(MC_POINTWISE_NAME)
#undef MC_POINTWISE_NAME
  }
  return "?";
}

// CPU: f32 and f64 unless noted. CUDA: f32 and bf16 unless noted.
namespace cpu {
// y[i] = op(a[i], b[i], alpha) for i < n; b may be null for one-input ops; y may alias a or b.
void pointwise(Pointwise op, const void* a, const void* b, void* y, int dt, double alpha, int64_t n,
               Stream s);
void fill(void* y, int dt, double v, int64_t n, Stream s);                   // every dtype
void cast(const void* x, int xdt, void* y, int ydt, int64_t n, Stream s);    // every dtype
// y[0] = scale * sum(x) in double, in a fixed order (deterministic); `work` holds
// sum_workspace(n) bytes (the CPU needs none).
size_t sum_workspace(int64_t n);
void sum(const void* x, int xdt, int64_t n, double scale, void* y, int ydt, void* work,
         size_t work_bytes, Stream s);
// y[i] = alpha * scalar[0] (scalar: one element in this backend's memory).
void broadcast_scalar(const void* scalar, int sdt, double alpha, void* y, int ydt, int64_t n,
                      Stream s);
// [B, R, Q] -> [B, Q, R] with a dtype change (NCDHW <-> NDHWC with R, Q = C, D*H*W).
void transpose(const void* x, int xdt, void* y, int ydt, int64_t B, int64_t R, int64_t Q, Stream s);
}  // namespace cpu
namespace cuda {
void pointwise(Pointwise op, const void* a, const void* b, void* y, int dt, double alpha, int64_t n,
               Stream s);
void fill(void* y, int dt, double v, int64_t n, Stream s);
void cast(const void* x, int xdt, void* y, int ydt, int64_t n, Stream s);
size_t sum_workspace(int64_t n);
void sum(const void* x, int xdt, int64_t n, double scale, void* y, int ydt, void* work,
         size_t work_bytes, Stream s);
void broadcast_scalar(const void* scalar, int sdt, double alpha, void* y, int ydt, int64_t n,
                      Stream s);
void transpose(const void* x, int xdt, void* y, int ydt, int64_t B, int64_t R, int64_t Q, Stream s);
}  // namespace cuda
}  // namespace mc::kernels
