// CUDA twins of kernels/optim_cpu.cpp: one launch over a flat run of parameters (the engine
// keeps parameters, gradients and moments in flat blocks, so a whole model is one launch).
// Every step is rounded as the CPU twin rounds it (__fmul_rn & co. stop nvcc from fusing into
// FMAs, sqrt and division are IEEE), so GPU and CPU updates agree bit for bit.
// Vectorised by float4 where all four arrays are 16-byte aligned.
#include <cuda_runtime.h>

#include <cmath>

#include "kernels/cuda_common.cuh"
#include "kernels/optim.h"

namespace mc::kernels::cuda {
namespace {

struct AdamW {
  float step_size, bc2_sqrt, decay, w1, b2, w2, eps;
  __device__ __forceinline__ void operator()(float& p, float g, float& m, float& v) const {
    p = __fmul_rn(p, decay);
    m = __fadd_rn(m, __fmul_rn(w1, __fsub_rn(g, m)));
    v = __fadd_rn(__fmul_rn(v, b2), __fmul_rn(__fmul_rn(w2, g), g));
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(v), bc2_sqrt), eps);
    p = __fsub_rn(p, __fmul_rn(step_size, __fdiv_rn(m, denom)));
  }
};

struct Sgd {
  float lr, mom, damp, wd;
  bool nesterov, first, has_buf;
  __device__ __forceinline__ void operator()(float& p, float g, float& buf, float&) const {
    float d = g;
    if (wd != 0.f) d = __fadd_rn(d, __fmul_rn(wd, p));
    if (has_buf) {
      buf = first ? d : __fadd_rn(__fmul_rn(buf, mom), __fmul_rn(damp, d));
      d = nesterov ? __fadd_rn(d, __fmul_rn(mom, buf)) : buf;
    }
    p = __fsub_rn(p, __fmul_rn(lr, d));
  }
};

// torch.lerp's formula, rounded as the CPU twin rounds it.
__device__ __forceinline__ float lerp_rn(float a, float b, float w) {
  return w < 0.5f ? __fadd_rn(a, __fmul_rn(w, __fsub_rn(b, a)))
                  : __fsub_rn(b, __fmul_rn(__fsub_rn(b, a), __fsub_rn(1.f, w)));
}

// m = old copy of p; the scale is computed from the device-side squared norm by every thread
// (one cached load), so the step needs no host sync.
struct SamPerturb {
  const float* sumsq;
  float rho;
  __device__ __forceinline__ void operator()(float& p, float g, float& old, float&) const {
    const float scale = __fdiv_rn(rho, __fadd_rn(__fsqrt_rn(*sumsq), 1e-12f));
    old = p;
    p = __fadd_rn(p, __fmul_rn(g, scale));
  }
};

struct ScheduleFree {
  float b2, w2, bc2, eps, wd, ckp1, y_lr, lr;
  __device__ __forceinline__ void operator()(float& y, float g, float& z, float& v) const {
    v = __fadd_rn(__fmul_rn(v, b2), __fmul_rn(__fmul_rn(w2, g), g));
    const float denom = __fadd_rn(__fsqrt_rn(__fdiv_rn(v, bc2)), eps);
    float u = __fdiv_rn(g, denom);
    if (wd != 0.f) u = __fadd_rn(u, __fmul_rn(wd, y));
    y = lerp_rn(y, z, ckp1);
    y = __fadd_rn(y, __fmul_rn(y_lr, u));
    z = __fsub_rn(z, __fmul_rn(lr, u));
  }
};

// g is z here: p moves towards it.
struct LerpTo {
  float w;
  __device__ __forceinline__ void operator()(float& p, float z, float&, float&) const { p = lerp_rn(p, z, w); }
};

// m, v may be null (SGD without momentum): a dummy stands in.
template <class Op, bool Vec>
__global__ void step_kernel(Op op, float* __restrict__ p, const float* __restrict__ g,
                            float* __restrict__ m, float* __restrict__ v, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t done = 0;
  if constexpr (Vec) {
    const int64_t nv = n / 4;
    for (int64_t i = first; i < nv; i += stride) {
      float4 pp = reinterpret_cast<float4*>(p)[i];
      const float4 gg = reinterpret_cast<const float4*>(g)[i];
      float4 mm = m ? reinterpret_cast<float4*>(m)[i] : float4{};
      float4 vv = v ? reinterpret_cast<float4*>(v)[i] : float4{};
      op(pp.x, gg.x, mm.x, vv.x);
      op(pp.y, gg.y, mm.y, vv.y);
      op(pp.z, gg.z, mm.z, vv.z);
      op(pp.w, gg.w, mm.w, vv.w);
      reinterpret_cast<float4*>(p)[i] = pp;
      if (m) reinterpret_cast<float4*>(m)[i] = mm;
      if (v) reinterpret_cast<float4*>(v)[i] = vv;
    }
    done = nv * 4;
  }
  for (int64_t i = done + first; i < n; i += stride) {
    float mm = m ? m[i] : 0.f, vv = v ? v[i] : 0.f;
    op(p[i], g[i], mm, vv);
    if (m) m[i] = mm;
    if (v) v[i] = vv;
  }
}

bool aligned16(const void* q) { return (reinterpret_cast<uintptr_t>(q) & 15) == 0; }

template <class Op>
void launch(const Op& op, float* p, const float* g, float* m, float* v, int64_t n, Stream s,
            const char* what) {
  if (n <= 0) return;
  const bool vec = aligned16(p) && aligned16(g) && (!m || aligned16(m)) && (!v || aligned16(v));
  const int blocks = grid_for(n, vec ? 4 : 1, 4096);
  if (vec)
    step_kernel<Op, true><<<blocks, kThreads, 0, s>>>(op, p, g, m, v, n);
  else
    step_kernel<Op, false><<<blocks, kThreads, 0, s>>>(op, p, g, m, v, n);
  MC_CUDA_LAUNCHED(what);
}

}  // namespace

void sam_perturb(float* p, const float* g, float* old, const float* sumsq, double rho, int64_t n, Stream s) {
  launch(SamPerturb{sumsq, float(rho)}, p, g, old, nullptr, n, s, "kernels/optim.cu: sam_perturb");
}

void schedulefree_step(float* y, const float* g, float* z, float* v, int64_t n, const ScheduleFreeArgs& a,
                       Stream s) {
  const ScheduleFree op{float(a.beta2), float(1.0 - a.beta2), float(a.bc2),  float(a.eps),
                        float(a.weight_decay), float(a.ckp1), float(a.y_lr), float(a.lr)};
  launch(op, y, g, z, v, n, s, "kernels/optim.cu: schedulefree_step");
}

void lerp_to(float* p, const float* z, double w, int64_t n, Stream s) {
  launch(LerpTo{float(w)}, p, z, nullptr, nullptr, n, s, "kernels/optim.cu: lerp_to");
}

void adamw_step(float* p, const float* g, float* m, float* v, int64_t n, const AdamWArgs& a,
                Stream s) {
  // Scalars exactly as the CPU twin derives them (double, then float).
  const double bc1 = 1.0 - std::pow(a.beta1, double(a.step));
  const double bc2 = 1.0 - std::pow(a.beta2, double(a.step));
  const AdamW op{float(a.lr / bc1),    float(std::sqrt(bc2)), float(1.0 - a.lr * a.weight_decay),
                 float(1.0 - a.beta1), float(a.beta2),        float(1.0 - a.beta2),
                 float(a.eps)};
  launch(op, p, g, m, v, n, s, "kernels/optim.cu: adamw_step");
}

void sgd_step(float* p, const float* g, float* buf, int64_t n, const SGDArgs& a, Stream s) {
  const Sgd op{float(a.lr), float(a.momentum), float(1.0 - a.dampening), float(a.weight_decay),
               a.nesterov,  a.first_step,      a.momentum != 0 && buf};
  launch(op, p, g, op.has_buf ? buf : nullptr, nullptr, n, s, "kernels/optim.cu: sgd_step");
}

}  // namespace mc::kernels::cuda
