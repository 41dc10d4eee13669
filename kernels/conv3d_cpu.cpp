// CPU reference convolution: vol2col + GEMM per sample and group. 1x1x1 stride-1 unpadded
// convolutions (most of a bottleneck ResNet) skip vol2col and multiply the input directly.
#include <algorithm>
#include <vector>

#include "engine/check.h"
#include "kernels/conv3d.h"
#include "kernels/elementwise.h"
#include "kernels/gemm.h"

namespace mc::kernels::cpu {
namespace {

bool is_pointwise(const ConvGeom& g) {
  for (int a = 0; a < 3; ++a)
    if (g.k[a] != 1 || g.stride[a] != 1 || g.pad[a] != 0) return false;
  return true;
}

// col[(c, a, b, e), (od, oh, ow)] = x[c, od*s - p + a*d, ...] (0 outside the volume)
template <class T>
void vol2col(const ConvGeom& g, int64_t Cg, const T* x, T* col) {
  const int64_t oD = g.oD(), oH = g.oH(), oW = g.oW(), K = g.k[0] * g.k[1] * g.k[2];
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < Cg * K; ++r) {
    const int64_t c = r / K, a = r / (g.k[1] * g.k[2]) % g.k[0], b = r / g.k[2] % g.k[1],
                  e = r % g.k[2];
    const T* xc = x + c * g.D * g.H * g.W;
    T* out = col + r * oD * oH * oW;
    for (int64_t od = 0; od < oD; ++od) {
      const int64_t id = od * g.stride[0] - g.pad[0] + a * g.dil[0];
      for (int64_t oh = 0; oh < oH; ++oh, out += oW) {
        const int64_t ih = oh * g.stride[1] - g.pad[1] + b * g.dil[1];
        if (id < 0 || id >= g.D || ih < 0 || ih >= g.H) {
          std::fill(out, out + oW, T(0));
          continue;
        }
        const T* xr = xc + (id * g.H + ih) * g.W;
        for (int64_t ow = 0; ow < oW; ++ow) {
          const int64_t iw = ow * g.stride[2] - g.pad[2] + e * g.dil[2];
          out[ow] = iw >= 0 && iw < g.W ? xr[iw] : T(0);
        }
      }
    }
  }
}

// dx[c, ...] += col[(c, ...), ...]: the adjoint of vol2col. Parallel over channels only, so
// each thread owns its channel's voxels (no races, deterministic order).
template <class T>
void col2vol(const ConvGeom& g, int64_t Cg, const T* col, T* dx) {
  const int64_t oD = g.oD(), oH = g.oH(), oW = g.oW(), K = g.k[0] * g.k[1] * g.k[2];
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < Cg; ++c) {
    T* xc = dx + c * g.D * g.H * g.W;
    for (int64_t kk = 0; kk < K; ++kk) {
      const int64_t a = kk / (g.k[1] * g.k[2]), b = kk / g.k[2] % g.k[1], e = kk % g.k[2];
      const T* in = col + (c * K + kk) * oD * oH * oW;
      for (int64_t od = 0; od < oD; ++od) {
        const int64_t id = od * g.stride[0] - g.pad[0] + a * g.dil[0];
        for (int64_t oh = 0; oh < oH; ++oh, in += oW) {
          const int64_t ih = oh * g.stride[1] - g.pad[1] + b * g.dil[1];
          if (id < 0 || id >= g.D || ih < 0 || ih >= g.H) continue;
          T* xr = xc + (id * g.H + ih) * g.W;
          for (int64_t ow = 0; ow < oW; ++ow) {
            const int64_t iw = ow * g.stride[2] - g.pad[2] + e * g.dil[2];
            if (iw >= 0 && iw < g.W) xr[iw] += in[ow];
          }
        }
      }
    }
  }
}

// Per-group GEMM sizes: Cg input and Og output channels, K taps, S output and inS input voxels.
struct GroupDims {
  int64_t Cg, Og, K, S, inS;
  bool pw;  // pointwise: the input is its own column matrix
  explicit GroupDims(const ConvGeom& g)
      : Cg(g.C / g.groups), Og(g.O / g.groups), K(g.k[0] * g.k[1] * g.k[2]), S(g.oD() * g.oH() * g.oW()),
        inS(g.D * g.H * g.W), pw(is_pointwise(g)) {}
};

// A group's input as the GEMM's [Cg * K, S] right-hand side: xg itself when pointwise, else its
// vol2col columns in `col`.
template <class T>
const T* columns(const ConvGeom& g, const GroupDims& d, const T* xg, std::vector<T>& col) {
  if (d.pw) return xg;
  col.resize(size_t(d.Cg * d.K * d.S));
  vol2col(g, d.Cg, xg, col.data());
  return col.data();
}

template <class T>
void forward(const ConvGeom& g, const T* x, const T* w, const T* b, T* y) {
  const GroupDims d(g);
  std::vector<T> col;
  for (int64_t n = 0; n < g.N; ++n) {
    for (int64_t gr = 0; gr < g.groups; ++gr)
      gemm<T>(false, false, d.Og, d.S, d.Cg * d.K, T(1), w + gr * d.Og * d.Cg * d.K, d.Cg * d.K,
              columns(g, d, x + (n * g.C + gr * d.Cg) * d.inS, col), d.S, T(0), y + (n * g.O + gr * d.Og) * d.S, d.S);
    if (b) {
      T* yn = y + n * g.O * d.S;
#pragma omp parallel for schedule(static)
      for (int64_t o = 0; o < g.O; ++o)
        for (int64_t s = 0; s < d.S; ++s) yn[o * d.S + s] += b[o];
    }
  }
}

template <class T>
void backward_data(const ConvGeom& g, const T* dy, const T* w, T* dx) {
  const GroupDims d(g);
  std::vector<T> col(d.pw ? 0 : size_t(d.Cg * d.K * d.S));
  for (int64_t n = 0; n < g.N; ++n) {
    for (int64_t gr = 0; gr < g.groups; ++gr) {
      T* dxg = dx + (n * g.C + gr * d.Cg) * d.inS;
      const T* dyg = dy + (n * g.O + gr * d.Og) * d.S;
      const T* wg = w + gr * d.Og * d.Cg * d.K;
      if (d.pw) {
        gemm<T>(true, false, d.Cg, d.S, d.Og, T(1), wg, d.Cg, dyg, d.S, T(0), dxg, d.S);
        continue;
      }
      gemm<T>(true, false, d.Cg * d.K, d.S, d.Og, T(1), wg, d.Cg * d.K, dyg, d.S, T(0), col.data(), d.S);
      std::fill(dxg, dxg + d.Cg * d.inS, T(0));
      col2vol(g, d.Cg, col.data(), dxg);
    }
  }
}

template <class T>
void backward_weight(const ConvGeom& g, const T* x, const T* dy, T* dw, T* db) {
  const GroupDims d(g);
  const int64_t S = d.S;
  std::vector<T> col;
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t gr = 0; gr < g.groups; ++gr)
      gemm<T>(false, true, d.Og, d.Cg * d.K, S, T(1), dy + (n * g.O + gr * d.Og) * S, S,
              columns(g, d, x + (n * g.C + gr * d.Cg) * d.inS, col), S, n == 0 ? T(0) : T(1),
              dw + gr * d.Og * d.Cg * d.K, d.Cg * d.K);
  if (db) {
#pragma omp parallel for schedule(static)
    for (int64_t o = 0; o < g.O; ++o) {
      double acc = 0;
      for (int64_t n = 0; n < g.N; ++n) {
        const T* p = dy + (n * g.O + o) * S;
        for (int64_t s = 0; s < S; ++s) acc += p[s];
      }
      db[o] = T(acc);
    }
  }
}

// An activation [N, C, S] in NCDHW order: `p` itself, or an NCDHW copy of NDHWC data.
struct Ncdhw {
  std::vector<char> buf;
  const void* p;
  Ncdhw(const void* data, int dt, int layout, int64_t N, int64_t C, int64_t S) : p(data) {
    if (layout == NCDHW) return;
    buf.resize(size_t(N * C * S) * dt_size(dt));
    transpose(data, dt, buf.data(), dt, N, S, C, nullptr);  // [N, S, C] -> [N, C, S]
    p = buf.data();
  }
};
// Where an NCDHW result is computed: `out` itself, or scratch transposed into `out` by done().
struct NcdhwOut {
  std::vector<char> buf;
  void* out;
  void* p;
  int dt, layout;
  int64_t N, C, S;
  NcdhwOut(void* o, int dt_, int layout_, int64_t N_, int64_t C_, int64_t S_)
      : out(o), p(o), dt(dt_), layout(layout_), N(N_), C(C_), S(S_) {
    if (layout == NCDHW) return;
    buf.resize(size_t(N * C * S) * dt_size(dt));
    p = buf.data();
  }
  void done() {
    if (layout != NCDHW) transpose(p, dt, out, dt, N, C, S, nullptr);  // [N, C, S] -> [N, S, C]
  }
};

template <class F> void by_type(int dt, int layout, const char* what, F&& f) {
  MC_CHECK(layout == NCDHW || layout == NDHWC, "kernels/conv3d_cpu.cpp: ", what,
           ": unknown layout code ", layout);
  if (dt == F32) return f(float{});
  MC_CHECK(dt == F64, "kernels/conv3d_cpu.cpp: ", what, " takes f32 or f64, got ", dt_name(dt));
  f(double{});
}

}  // namespace

void conv3d_forward(const ConvGeom& g, const void* x, const void* w, const void* b, void* y, int dt,
                    int layout, Stream) {
  by_type(dt, layout, "conv3d", [&](auto t) {
    using T = decltype(t);
    const Ncdhw xi(x, dt, layout, g.N, g.C, g.D * g.H * g.W);
    NcdhwOut yo(y, dt, layout, g.N, g.O, g.oD() * g.oH() * g.oW());
    forward<T>(g, static_cast<const T*>(xi.p), static_cast<const T*>(w),
               static_cast<const T*>(b), static_cast<T*>(yo.p));
    yo.done();
  });
}

void conv3d_backward_data(const ConvGeom& g, const void* dy, const void* w, void* dx, int dt,
                          int layout, Stream) {
  by_type(dt, layout, "conv3d backward", [&](auto t) {
    using T = decltype(t);
    const Ncdhw dyi(dy, dt, layout, g.N, g.O, g.oD() * g.oH() * g.oW());
    NcdhwOut dxo(dx, dt, layout, g.N, g.C, g.D * g.H * g.W);
    backward_data<T>(g, static_cast<const T*>(dyi.p), static_cast<const T*>(w),
                     static_cast<T*>(dxo.p));
    dxo.done();
  });
}

void conv3d_backward_weight(const ConvGeom& g, const void* x, const void* dy, void* dw, void* db,
                            int dt, int layout, Stream) {
  by_type(dt, layout, "conv3d backward", [&](auto t) {
    using T = decltype(t);
    const Ncdhw xi(x, dt, layout, g.N, g.C, g.D * g.H * g.W);
    const Ncdhw dyi(dy, dt, layout, g.N, g.O, g.oD() * g.oH() * g.oW());
    backward_weight<T>(g, static_cast<const T*>(xi.p), static_cast<const T*>(dyi.p),
                       static_cast<T*>(dw), static_cast<T*>(db));
  });
}

}  // namespace mc::kernels::cpu
