// Shared by kernel families: the stream type (no CUDA headers needed to declare launchers) and
// the dtype codes kernels take (same values as mc::DType; kernels know no engine types).
#pragma once
#include <cstdint>

struct CUstream_st;
namespace mc::kernels {
using Stream = CUstream_st*;  // == cudaStream_t; nullptr is the default stream
enum DT : int { F32 = 0, F64 = 1, BF16 = 2, F16 = 3, I32 = 4, I64 = 5, U8 = 6 };
}  // namespace mc::kernels
