// Elementwise kernels. CPU twins are templated over float/double where gradients are checked.
#pragma once
#include <cstdint>

#include "kernels/common.h"

namespace mc::kernels {
namespace cpu {
void fill(void* y, int dt, double v, int64_t n);
void cast(const void* x, int xdt, void* y, int ydt, int64_t n);
template <class T> void add(const T* a, const T* b, T* y, int64_t n);            // y = a + b
template <class T> void axpy(T alpha, const T* x, T* y, int64_t n);            // y += alpha x
template <class T> void scale(const T* x, T alpha, T* y, int64_t n);           // y = alpha x
template <class T> void relu_forward(const T* x, T* y, int64_t n);
template <class T> void relu_backward(const T* y, const T* dy, T* dx, int64_t n);  // uses output
}  // namespace cpu
namespace cuda {  // f32 | bf16 (dt) unless noted
void fill(void* y, int dt, double v, int64_t n, Stream s);
void cast(const void* x, int xdt, void* y, int ydt, int64_t n, Stream s);
void add(const void* a, const void* b, void* y, int dt, int64_t n, Stream s);
void mul(const void* a, const void* b, void* y, int dt, int64_t n, Stream s);
void axpy(float alpha, const void* x, void* y, int dt, int64_t n, Stream s);
void scale(const void* x, float alpha, void* y, int dt, int64_t n, Stream s);
void relu_forward(const void* x, void* y, int dt, int64_t n, Stream s);
void relu_backward(const void* y, const void* dy, void* dx, int dt, int64_t n, Stream s);
// y[0] = scale * sum(x), fixed-order (deterministic) double accumulation.
void sum(const void* x, int xdt, int64_t n, double scale, void* y, int ydt, Stream s);
// y[i] = alpha * scalar[0] (device scalar).
void broadcast_scalar(const void* scalar, int sdt, float alpha, void* y, int ydt, int64_t n, Stream s);
// [B, R, Q] -> [B, Q, R] with a dtype change.
void transpose(const void* x, int xdt, void* y, int ydt, int64_t B, int64_t R, int64_t Q, Stream s);
}  // namespace cuda
}  // namespace mc::kernels
