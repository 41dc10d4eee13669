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
namespace cuda {
void fill(void* y, int dt, double v, int64_t n, Stream s);
void cast(const void* x, int xdt, void* y, int ydt, int64_t n, Stream s);
void add(const float* a, const float* b, float* y, int64_t n, Stream s);
void axpy(float alpha, const float* x, float* y, int64_t n, Stream s);
void scale(const float* x, float alpha, float* y, int64_t n, Stream s);
void relu_forward(const float* x, float* y, int64_t n, Stream s);
void relu_backward(const float* y, const float* dy, float* dx, int64_t n, Stream s);
}  // namespace cuda
}  // namespace mc::kernels
