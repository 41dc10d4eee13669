// The key of a cached cuDNN convolution plan (engine/cuda/conv.cpp). Header-only and free of
// CUDA types, so the CPU tests check it.
//
// A plan is the algorithm cudnnFind*AlgorithmEx measured fastest on the buffers it was given.
// Some algorithms need aligned buffers (vectorised loads), and parameters live packed, unpadded,
// in one flat block (nn::Module::flatten_parameters), so the same shape can arrive with a 4-byte
// aligned weight one time and a 256-byte aligned one the next: the key holds each operand's
// alignment, so a plan found on aligned buffers is never run on misaligned ones.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>

#include "engine/dtype.h"
#include "kernels/conv3d.h"

namespace mc::cuda {

// The largest power of two, at most 256, that divides the address (256 for null).
inline int alignment_class(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  int c = 1;
  while (c < 256 && (a & uintptr_t(2 * c - 1)) == 0) c *= 2;
  return a == 0 ? 256 : c;
}

enum class ConvDir : uint8_t { Fwd, Data, Filter };

struct ConvPlanKey {
  ConvDir dir;
  DType dt;
  Layout layout;
  int math;  // cudnnMathType_t
  bool det;
  std::array<int64_t, 19> g;    // N C D H W O k[3] stride[3] pad[3] dil[3] groups
  std::array<int, 3> align;     // alignment_class of the direction's three operands
  bool operator==(const ConvPlanKey&) const = default;
};

struct ConvPlanKeyHash {
  size_t operator()(const ConvPlanKey& k) const {
    size_t h = size_t(k.dir) * 31 + size_t(k.dt) * 7 + size_t(k.layout) * 3 +
               size_t(k.math) * 131 + size_t(k.det);
    for (int64_t v : k.g) h = h * 1000003u ^ size_t(v);
    for (int a : k.align) h = h * 1000003u ^ size_t(a);
    return h;
  }
};

// Operands in cuDNN's order for the direction: Fwd (x, w, y), Data (w, dy, dx),
// Filter (x, dy, dw).
inline ConvPlanKey conv_plan_key(ConvDir dir, DType dt, Layout l, int math, bool det,
                                 const kernels::ConvGeom& g, const void* a, const void* b,
                                 const void* c) {
  return {dir,
          dt,
          l,
          math,
          det,
          {g.N, g.C, g.D, g.H, g.W, g.O, g.k[0], g.k[1], g.k[2], g.stride[0], g.stride[1],
           g.stride[2], g.pad[0], g.pad[1], g.pad[2], g.dil[0], g.dil[1], g.dil[2], g.groups},
          {alignment_class(a), alignment_class(b), alignment_class(c)}};
}

}  // namespace mc::cuda
