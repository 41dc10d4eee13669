// Shared by kernel families: the stream type (no CUDA headers needed to declare launchers), the
// dtype and layout codes kernels take (same values as mc::DType and mc::Layout; kernels know no
// engine types), and what host and device code share.
//
// The contract of a family (DESIGN: "One op table"): its header declares each entry point twice,
// in kernels::cpu and kernels::cuda, with one signature: raw pointers, dtype code, explicit
// layout code, sizes, and a stream last (the CPU twin ignores it). engine/dispatch.h picks the
// twin from the tensors' device. Errors are mc::Error (engine/check.h is header-only).
#pragma once
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "engine/check.h"

#ifdef __CUDACC__
#define MC_HD __host__ __device__ __forceinline__
#else
#define MC_HD inline
#endif

struct CUstream_st;
namespace mc::kernels {

using Stream = CUstream_st*;  // == cudaStream_t; nullptr is the default stream
enum DT : int { F32 = 0, F64 = 1, BF16 = 2, F16 = 3, I32 = 4, I64 = 5, U8 = 6 };
// Memory order of a 5-D activation [N, C, D, H, W]: NCDHW, or NDHWC (channels last).
enum LY : int { NCDHW = 0, NDHWC = 1 };

inline size_t dt_size(int dt) {
  constexpr size_t sz[] = {4, 8, 2, 2, 4, 8, 1};
  return dt >= 0 && dt <= U8 ? sz[dt] : 0;
}
const char* dt_name(int dt);  // "f32", ... (kernels/elementwise_cpu.cpp)

// The dtype code of an element type (bf16's: kernels/cuda_common.cuh).
template <class T> struct dt_of;
template <> struct dt_of<float> { static constexpr int value = F32; };
template <> struct dt_of<double> { static constexpr int value = F64; };

// The one dtype x layout switch of the families that take two float types: runs
// f(A{} or B{}, std::bool_constant<channels last>{}); any other dtype or layout code is an
// mc::Error naming the kernel file (`where`) and the op (`what`).
template <class A, class B, class F>
void by_type(int dt, int layout, const char* where, const char* what, F&& f) {
  MC_CHECK(layout == NCDHW || layout == NDHWC, where, ": ", what, ": unknown layout code ", layout);
  MC_CHECK(dt == dt_of<A>::value || dt == dt_of<B>::value, where, ": ", what, " takes ",
           dt_name(dt_of<A>::value), " or ", dt_name(dt_of<B>::value), ", got ", dt_name(dt));
  const bool cl = layout == NDHWC;
  if (dt == dt_of<A>::value)
    cl ? f(A{}, std::true_type{}) : f(A{}, std::false_type{});
  else
    cl ? f(B{}, std::true_type{}) : f(B{}, std::false_type{});
}

// One rounding per operation on both backends: on the device these stop nvcc from contracting
// a * b + c into an FMA (the CPU rounds each step), so f32 results agree bit for bit.
MC_HD float add_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
MC_HD float mul_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
MC_HD double add_rn(double a, double b) { return a + b; }
MC_HD double mul_rn(double a, double b) { return a * b; }

}  // namespace mc::kernels
