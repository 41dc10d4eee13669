#include "io/morphology.h"

#include <algorithm>
#include <limits>

#include "engine/check.h"

namespace mc::io {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// One axis of the transform: d[p] = min_q f[q] + (s (p - q))^2 over n samples `stride` apart
// (lower envelope of parabolas; Felzenszwalb & Huttenlocher 2012). Infinite f[q] take no part.
void transform_line(double* d, int64_t n, int64_t stride, double s, std::vector<double>& f,
                    std::vector<int64_t>& v, std::vector<double>& z) {
  const double s2 = s * s;
  for (int64_t q = 0; q < n; ++q) f[size_t(q)] = d[q * stride];
  int64_t k = -1;
  for (int64_t q = 0; q < n; ++q) {
    if (f[size_t(q)] == kInf) continue;
    double x = -kInf;
    while (k >= 0) {
      const int64_t p = v[size_t(k)];
      // Where the parabola from q overtakes the one from p.
      x = ((f[size_t(q)] + s2 * double(q) * double(q)) - (f[size_t(p)] + s2 * double(p) * double(p))) /
          (2 * s2 * double(q - p));
      if (x > z[size_t(k)]) break;
      --k;
    }
    ++k;
    v[size_t(k)] = q;
    z[size_t(k)] = k == 0 ? -kInf : x;
  }
  if (k < 0) {  // no finite sample on this line
    for (int64_t p = 0; p < n; ++p) d[p * stride] = kInf;
    return;
  }
  int64_t j = 0;
  for (int64_t p = 0; p < n; ++p) {
    while (j < k && z[size_t(j + 1)] < double(p)) ++j;
    const int64_t q = v[size_t(j)];
    const double dq = s * double(p - q);
    d[p * stride] = f[size_t(q)] + dq * dq;
  }
}

}  // namespace

int64_t Mask::count() const {
  int64_t n = 0;
  for (uint8_t x : v) n += x != 0;
  return n;
}

std::vector<double> distance_squared_to_background(const Mask& m,
                                                   const std::array<double, 3>& spacing) {
  MC_CHECK(int64_t(m.v.size()) == m.size(), "mask holds ", m.v.size(), " voxels, dims say ", m.size());
  for (double s : spacing) MC_CHECK(s > 0, "voxel spacing must be positive, got ", s);
  std::vector<double> d(m.v.size());
  for (size_t i = 0; i < d.size(); ++i) d[i] = m.v[i] ? kInf : 0.0;
  const auto& n = m.dims;
  const int64_t longest = std::max({n[0], n[1], n[2]});
  std::vector<double> f(static_cast<size_t>(longest)), z(static_cast<size_t>(longest) + 1);
  std::vector<int64_t> v(static_cast<size_t>(longest));
  for (int64_t k = 0; k < n[2]; ++k)
    for (int64_t j = 0; j < n[1]; ++j) transform_line(&d[size_t(m.index(0, j, k))], n[0], 1, spacing[0], f, v, z);
  for (int64_t k = 0; k < n[2]; ++k)
    for (int64_t i = 0; i < n[0]; ++i) transform_line(&d[size_t(m.index(i, 0, k))], n[1], n[0], spacing[1], f, v, z);
  for (int64_t j = 0; j < n[1]; ++j)
    for (int64_t i = 0; i < n[0]; ++i)
      transform_line(&d[size_t(m.index(i, j, 0))], n[2], n[0] * n[1], spacing[2], f, v, z);
  return d;
}

Mask erode_ball(const Mask& m, const std::array<double, 3>& spacing, double r_mm) {
  MC_CHECK(r_mm >= 0, "erosion radius must be >= 0 mm, got ", r_mm);
  const auto d = distance_squared_to_background(m, spacing);
  Mask out(m.dims);
  const double r2 = r_mm * r_mm;
  for (size_t i = 0; i < d.size(); ++i) out.v[i] = m.v[i] && d[i] > r2;
  return out;
}

Mask dilate_ball(const Mask& m, const std::array<double, 3>& spacing, double r_mm) {
  MC_CHECK(r_mm >= 0, "dilation radius must be >= 0 mm, got ", r_mm);
  Mask inv(m.dims);
  for (size_t i = 0; i < inv.v.size(); ++i) inv.v[i] = !m.v[i];
  const auto d = distance_squared_to_background(inv, spacing);  // to the nearest mask voxel
  Mask out(m.dims);
  const double r2 = r_mm * r_mm;
  for (size_t i = 0; i < d.size(); ++i) out.v[i] = d[i] <= r2;
  return out;
}

Mask open_ball(const Mask& m, const std::array<double, 3>& spacing, double r_mm) {
  Mask out = dilate_ball(erode_ball(m, spacing, r_mm), spacing, r_mm);
  for (size_t i = 0; i < out.v.size(); ++i) out.v[i] = out.v[i] && m.v[i];
  return out;
}

Mask largest_component(const Mask& m) {
  const auto& n = m.dims;
  std::vector<int32_t> label(m.v.size(), 0);
  std::vector<int64_t> sizes{0};
  std::vector<int64_t> stack;
  for (int64_t start = 0; start < m.size(); ++start) {
    if (!m.v[size_t(start)] || label[size_t(start)]) continue;
    const int32_t id = int32_t(sizes.size());
    int64_t count = 0;
    stack.push_back(start);
    label[size_t(start)] = id;
    while (!stack.empty()) {
      const int64_t at = stack.back();
      stack.pop_back();
      ++count;
      const int64_t i = at % n[0], j = (at / n[0]) % n[1], k = at / (n[0] * n[1]);
      const int64_t nb[6][3] = {{i - 1, j, k}, {i + 1, j, k}, {i, j - 1, k},
                                {i, j + 1, k}, {i, j, k - 1}, {i, j, k + 1}};
      for (const auto& p : nb) {
        if (p[0] < 0 || p[1] < 0 || p[2] < 0 || p[0] >= n[0] || p[1] >= n[1] || p[2] >= n[2]) continue;
        const int64_t q = m.index(p[0], p[1], p[2]);
        if (m.v[size_t(q)] && !label[size_t(q)]) {
          label[size_t(q)] = id;
          stack.push_back(q);
        }
      }
    }
    sizes.push_back(count);
  }
  Mask out(m.dims);
  if (sizes.size() == 1) return out;
  int32_t best = 1;
  for (int32_t id = 2; id < int32_t(sizes.size()); ++id)
    if (sizes[size_t(id)] > sizes[size_t(best)]) best = id;
  for (size_t i = 0; i < out.v.size(); ++i) out.v[i] = label[i] == best;
  return out;
}

}  // namespace mc::io
