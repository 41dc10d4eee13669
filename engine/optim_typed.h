// Private to the optimisers (engine/optim*.cpp): one body for f32 and f64 parameters.
#pragma once
#include <type_traits>

#include "engine/dispatch.h"

// Calls kernels::{cpu,cuda}::fn for f32 (either device), kernels::cpu::fn for f64 (the
// constructor allows f64 on the CPU only). T is the element type inside the body.
// The body is a generic lambda's, so the CUDA call is discarded (not instantiated) for double.
#define MC_OPTIM_TYPED(dtype, ...)                 \
  do {                                             \
    auto mc_body_ = [&](auto mc_tag_) {            \
      using T = decltype(mc_tag_);                 \
      __VA_ARGS__;                                 \
    };                                             \
    if ((dtype) == DType::F64) mc_body_(double{}); \
    else mc_body_(float{});                        \
  } while (0)
#define MC_OPTIM_CALL(fn, ...)                                                     \
  do {                                                                             \
    if constexpr (std::is_same_v<T, float>) MC_DISPATCH(device_, fn, __VA_ARGS__); \
    else kernels::cpu::fn(__VA_ARGS__, kernels::Stream{});                         \
  } while (0)
#define MC_P(x) static_cast<T*>(x)
#define MC_CP(x) static_cast<const T*>(x)

