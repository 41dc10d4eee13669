// The voxel grid and its affine, independent of the file format: affine helpers, Volume's
// methods and the orientation maths (nibabel's io_orientation / as_closest_canonical), shared by
// the NIfTI and DICOM readers. Declared in io/nifti.h.
#include <algorithm>
#include <array>
#include <cmath>
#include <sstream>
#include <string>

#include "engine/check.h"
#include "io/nifti.h"

namespace mc::io {

// ---------------------------------------------------------------- affine helpers

Affine identity_affine() {
  Affine a{};
  for (int i = 0; i < 4; ++i) a[i][i] = 1;
  return a;
}

Affine matmul(const Affine& a, const Affine& b) {
  Affine c{};
  for (int r = 0; r < 4; ++r)
    for (int k = 0; k < 4; ++k)
      for (int col = 0; col < 4; ++col) c[r][col] += a[r][k] * b[k][col];
  return c;
}

std::array<double, 3> apply_affine(const Affine& a, double i, double j, double k) {
  std::array<double, 3> w;
  for (int r = 0; r < 3; ++r) w[r] = a[r][0] * i + a[r][1] * j + a[r][2] * k + a[r][3];
  return w;
}

std::string affine_str(const Affine& a) {
  std::ostringstream s;
  s << "[";
  for (int r = 0; r < 3; ++r) {
    s << (r ? "; " : "");
    for (int c = 0; c < 4; ++c) s << (c ? " " : "") << a[r][c];
  }
  return s.str() + "]";
}

// ---------------------------------------------------------------- Volume

int64_t Volume::numel() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

std::array<double, 3> Volume::spacing() const {
  std::array<double, 3> s;
  for (int c = 0; c < 3; ++c)
    s[c] = std::sqrt(affine[0][c] * affine[0][c] + affine[1][c] * affine[1][c] +
                     affine[2][c] * affine[2][c]);
  return s;
}

double Volume::voxel_volume_mm3() const {
  const auto& a = affine;
  return std::abs(a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) -
                  a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0]) +
                  a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]));
}

std::string Volume::name() const { return path.empty() ? "<memory>" : path; }

Volume make_volume(int64_t nx, int64_t ny, int64_t nz, const Affine& affine) {
  Volume v;
  v.dims = {nx, ny, nz};
  v.data = Tensor::zeros({nz, ny, nx});
  v.affine = affine;
  return v;
}

// ---------------------------------------------------------------- orientation

namespace {

using M3 = std::array<std::array<double, 3>, 3>;

double det3(const M3& a) {
  return a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) -
         a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0]) +
         a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]);
}

// The orthogonal factor of the polar decomposition (nibabel gets it from an SVD: P @ Qs),
// by Newton's iteration X <- (X + X^-T) / 2.
M3 closest_rotation(M3 x) {
  for (int it = 0; it < 100; ++it) {
    const double d = det3(x);
    MC_CHECK(std::abs(d) > 1e-12, "affine is singular; cannot find its orientation");
    M3 inv_t;  // (X^-1)^T = cofactor(X) / det
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 3; ++c) {
        const int r1 = (r + 1) % 3, r2 = (r + 2) % 3, c1 = (c + 1) % 3, c2 = (c + 2) % 3;
        inv_t[r][c] = (x[r1][c1] * x[r2][c2] - x[r1][c2] * x[r2][c1]) / d;
      }
    double change = 0;
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 3; ++c) {
        const double n = 0.5 * (x[r][c] + inv_t[r][c]);
        change = std::max(change, std::abs(n - x[r][c]));
        x[r][c] = n;
      }
    if (change < 1e-14) break;
  }
  return x;
}

// nibabel's io_orientation: for each voxel axis in turn, the world axis it moves along most.
void io_orientation(const Affine& a, std::array<int, 3>& world_axis, std::array<int, 3>& sign) {
  M3 rs;
  for (int c = 0; c < 3; ++c) {
    double zoom = std::sqrt(a[0][c] * a[0][c] + a[1][c] * a[1][c] + a[2][c] * a[2][c]);
    if (zoom == 0) zoom = 1;
    for (int r = 0; r < 3; ++r) rs[r][c] = a[r][c] / zoom;
  }
  M3 r = closest_rotation(rs);
  for (int in = 0; in < 3; ++in) {
    int best = 0;
    for (int w = 1; w < 3; ++w)
      if (std::abs(r[w][in]) > std::abs(r[best][in])) best = w;
    world_axis[in] = best;
    sign[in] = r[best][in] < 0 ? -1 : 1;
    for (int c = 0; c < 3; ++c) r[best][c] = 0;
  }
}

}  // namespace

bool AxisMap::identity() const {
  return src == std::array<int, 3>{0, 1, 2} && !flip[0] && !flip[1] && !flip[2];
}

AxisMap canonical_axes(const Affine& affine) {
  std::array<int, 3> world, sign;
  io_orientation(affine, world, sign);
  AxisMap m;
  for (int in = 0; in < 3; ++in) {
    m.src[world[in]] = in;
    m.flip[world[in]] = sign[in] < 0;
  }
  return m;
}

std::string axcodes(const Affine& affine) {
  std::array<int, 3> world, sign;
  io_orientation(affine, world, sign);
  static const char* labels[3] = {"LR", "PA", "IS"};
  std::string s;
  for (int in = 0; in < 3; ++in) s += labels[world[in]][sign[in] > 0];
  return s;
}

Volume reorient(const Volume& v, const AxisMap& map) {
  MC_CHECK(v.dims.size() == 3, v.name(), ": reorientation needs a 3-D volume");
  if (map.identity()) return v;
  const std::array<int64_t, 3> n{v.nx(), v.ny(), v.nz()};
  const std::array<int64_t, 3> stride{1, n[0], n[0] * n[1]};
  Volume out = v;
  std::array<int64_t, 3> on, step;
  int64_t base = 0;
  Affine t{};  // output index -> input index
  t[3][3] = 1;
  for (int a = 0; a < 3; ++a) {
    const int s = map.src[a];
    on[a] = n[s];
    step[a] = map.flip[a] ? -stride[s] : stride[s];
    if (map.flip[a]) base += (n[s] - 1) * stride[s];
    t[s][a] = map.flip[a] ? -1 : 1;
    t[s][3] = map.flip[a] ? double(n[s] - 1) : 0.0;
  }
  out.dims = {on[0], on[1], on[2]};
  out.data = Tensor::empty({on[2], on[1], on[0]});
  out.affine = matmul(v.affine, t);
  const float* src = v.ptr();
  float* dst = out.ptr();
  for (int64_t k = 0; k < on[2]; ++k)
    for (int64_t j = 0; j < on[1]; ++j) {
      const float* s = src + base + k * step[2] + j * step[1];
      float* d = dst + (k * on[1] + j) * on[0];
      for (int64_t i = 0; i < on[0]; ++i) d[i] = s[i * step[0]];
    }
  return out;
}

Volume to_canonical(const Volume& v) { return reorient(v, canonical_axes(v.affine)); }

}  // namespace mc::io
