// The dense layer y [N, out] = x [N, in] w [out, in]^T + b on the CPU (f32, f64; GEMM through
// CBLAS). The CUDA path is cuBLAS (engine/cuda/linear.cpp).
#pragma once
#include <cstdint>

#include "kernels/common.h"

namespace mc::kernels::cpu {
// b may be null.
void linear_forward(const void* x, const void* w, const void* b, void* y, int dt, int64_t N,
                    int64_t In, int64_t Out, Stream s);
// dx [N, in], dw [out, in], db [out]: each written when non-null (db summed in double).
void linear_backward(const void* x, const void* w, const void* dy, void* dx, void* dw, void* db,
                     int dt, int64_t N, int64_t In, int64_t Out, Stream s);
}  // namespace mc::kernels::cpu
