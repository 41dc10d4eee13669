#include "io/preprocess.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <tuple>

#include "io/ct_source.h"
#include "io/text.h"

namespace mc::io {
namespace {

std::string dims_str(const std::vector<int64_t>& d) {
  std::string s;
  for (size_t i = 0; i < d.size(); ++i) s += (i ? "x" : "") + std::to_string(d[i]);
  return s;
}

// Per output index along one axis: the two neighbours, the weight of the second, and whether
// the sample lies inside the volume at all.
struct Tap {
  int64_t i0 = 0, i1 = 0;
  float w = 0;
  bool inside = false;
};

std::vector<Tap> taps(int64_t n_in, int64_t n_out, double origin, double step, Interp interp) {
  std::vector<Tap> t(static_cast<size_t>(n_out));
  for (int64_t k = 0; k < n_out; ++k) {
    const double x = origin + step * double(k);
    Tap& tap = t[size_t(k)];
    tap.inside = x >= -0.5 - 1e-6 && x <= double(n_in) - 0.5 + 1e-6;
    if (!tap.inside) continue;
    const double xc = std::clamp(x, 0.0, double(n_in - 1));
    if (interp == Interp::Nearest) {
      tap.i0 = tap.i1 = std::min(n_in - 1, int64_t(std::floor(xc + 0.5)));
    } else {
      tap.i0 = int64_t(std::floor(xc));
      tap.i1 = std::min(tap.i0 + 1, n_in - 1);
      tap.w = float(xc - double(tap.i0));
    }
  }
  return t;
}

// Statistics and bounding box of the voxels whose segmentation value matches `label` (any
// non-zero value when label < 0; every voxel when seg is null), in one pass over the original
// grid and without a full-size mask copy: CT volumes can hold hundreds of millions of voxels.
std::pair<SubjectStats, Box> masked_stats(const Volume& ct, const float* seg, int64_t label) {
  std::vector<float> values;
  double sum = 0;
  Box b;
  b.lo = {ct.nx(), ct.ny(), ct.nz()};
  const float* h = ct.ptr();
  const float want = float(label);
  for (int64_t k = 0, at = 0; k < ct.nz(); ++k)
    for (int64_t j = 0; j < ct.ny(); ++j)
      for (int64_t i = 0; i < ct.nx(); ++i, ++at) {
        if (seg && (label >= 0 ? seg[at] != want : seg[at] == 0)) continue;
        // A NaN would make the median's ordering undefined and the cube garbage.
        if (!std::isfinite(h[at]))
          MC_FAIL(ct.name(), ": non-finite value ", h[at], " at voxel (", i, ", ", j, ", ", k,
                  ") inside the L1 mask: the scan is damaged");
        values.push_back(h[at]);
        sum += h[at];
        const std::array<int64_t, 3> x{i, j, k};
        for (size_t a = 0; a < 3; ++a) {
          b.lo[a] = std::min(b.lo[a], x[a]);
          b.hi[a] = std::max(b.hi[a], x[a] + 1);
        }
      }
  SubjectStats s;
  s.voxels = int64_t(values.size());
  if (values.empty()) return {s, Box{}};
  s.volume_ml = double(s.voxels) * ct.voxel_volume_mm3() / 1000.0;
  s.mean_hu = sum / double(s.voxels);
  const size_t half = values.size() / 2;
  std::nth_element(values.begin(), values.begin() + long(half), values.end());
  s.median_hu = values[half];
  if (values.size() % 2 == 0)  // numpy's median: mean of the two middle values
    s.median_hu = 0.5 * (s.median_hu + *std::max_element(values.begin(), values.begin() + long(half)));
  return {s, b};
}

}  // namespace

const char* resize_mode_name(ResizeMode m) {
  switch (m) {
    case ResizeMode::Pad: return "pad";
    case ResizeMode::Fit: return "fit";
    case ResizeMode::Stretch: return "stretch";
  }
  return "?";
}

ResizeMode parse_resize_mode(const std::string& s) {
  for (ResizeMode m : {ResizeMode::Pad, ResizeMode::Fit, ResizeMode::Stretch})
    if (s == resize_mode_name(m)) return m;
  MC_FAIL("resize mode \"", s, "\": expected pad, fit or stretch");
}

HUWindow parse_window(const std::string& s) {
  const auto v = parse_numbers(s);
  MC_CHECK(v && v->size() == 2 && std::isfinite((*v)[0]) && (*v)[1] > 0 && std::isfinite((*v)[1]), "HU window \"", s,
           "\": expected LEVEL,WIDTH with WIDTH > 0 (e.g. 400,2000)");
  return HUWindow{(*v)[0], (*v)[1]};
}

Volume select_label(const Volume& seg, int64_t label) {
  Volume m = seg;
  m.data = Tensor::empty(seg.data.shape());
  const float* s = seg.ptr();
  float* d = m.ptr();
  const float want = float(label);
  for (int64_t i = 0, n = seg.numel(); i < n; ++i)
    d[i] = (label >= 0 ? s[i] == want : s[i] != 0) ? 1.f : 0.f;
  return m;
}

Box bounding_box(const Volume& mask) {
  Box b;
  b.lo = {mask.nx(), mask.ny(), mask.nz()};
  const float* p = mask.ptr();
  for (int64_t k = 0; k < mask.nz(); ++k)
    for (int64_t j = 0; j < mask.ny(); ++j)
      for (int64_t i = 0; i < mask.nx(); ++i) {
        if (*p++ == 0) continue;
        const std::array<int64_t, 3> x{i, j, k};
        for (size_t a = 0; a < 3; ++a) {
          b.lo[a] = std::min(b.lo[a], x[a]);
          b.hi[a] = std::max(b.hi[a], x[a] + 1);
        }
      }
  if (b.empty()) b = Box{};
  return b;
}

Box expand_box(const Box& b, double margin_mm, const std::array<double, 3>& spacing,
               const std::vector<int64_t>& dims) {
  Box e = b;
  for (size_t a = 0; a < 3; ++a) {
    const int64_t m = int64_t(std::ceil(margin_mm / spacing[a] - 1e-9));
    e.lo[a] = std::max<int64_t>(0, b.lo[a] - m);
    e.hi[a] = std::min<int64_t>(dims[a], b.hi[a] + m);
  }
  return e;
}

Volume crop(const Volume& v, const Box& b) {
  MC_CHECK(!b.empty() && b.hi[0] <= v.nx() && b.hi[1] <= v.ny() && b.hi[2] <= v.nz(), v.name(),
           ": crop box outside the volume");
  Volume c = make_volume(b.size(0), b.size(1), b.size(2), v.affine);
  c.path = v.path;
  const auto origin = apply_affine(v.affine, double(b.lo[0]), double(b.lo[1]), double(b.lo[2]));
  for (int r = 0; r < 3; ++r) c.affine[size_t(r)][3] = origin[size_t(r)];
  float* d = c.ptr();
  for (int64_t k = b.lo[2]; k < b.hi[2]; ++k)
    for (int64_t j = b.lo[1]; j < b.hi[1]; ++j) {
      const float* s = v.ptr() + (k * v.ny() + j) * v.nx() + b.lo[0];
      d = std::copy(s, s + b.size(0), d);
    }
  return c;
}

void check_same_grid(const Volume& a, const Volume& b, double tol_mm) {
  double worst = 0;
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 4; ++c)
      worst = std::max(worst, std::abs(a.affine[size_t(r)][size_t(c)] - b.affine[size_t(r)][size_t(c)]));
  if (a.dims == b.dims && worst <= tol_mm) return;
  MC_FAIL("CT ", a.name(), " and mask ", b.name(), " are not on the same grid: dims ",
          dims_str(a.dims), " vs ", dims_str(b.dims), ", affine ", affine_str(a.affine), " vs ",
          affine_str(b.affine), " (largest difference ", worst, ", tolerance ", tol_mm, " mm)");
}

SubjectStats mask_stats(const Volume& ct, const Volume& mask) {
  MC_CHECK(ct.numel() == mask.numel(), ct.name(), ": mask size differs");
  return masked_stats(ct, mask.ptr(), -1).first;
}

Volume resample(const Volume& v, const std::array<int64_t, 3>& out_dims,
                const std::array<double, 3>& origin, const std::array<double, 3>& step,
                Interp interp, double fill) {
  MC_CHECK(v.dims.size() == 3, v.name(), ": resample needs a 3-D volume");
  Affine to_in{};  // output index -> input index
  for (int a = 0; a < 3; ++a) {
    to_in[size_t(a)][size_t(a)] = step[size_t(a)];
    to_in[size_t(a)][3] = origin[size_t(a)];
  }
  to_in[3][3] = 1;
  Volume out = make_volume(out_dims[0], out_dims[1], out_dims[2], matmul(v.affine, to_in));
  out.path = v.path;
  const auto tx = taps(v.nx(), out_dims[0], origin[0], step[0], interp);
  const auto ty = taps(v.ny(), out_dims[1], origin[1], step[1], interp);
  const auto tz = taps(v.nz(), out_dims[2], origin[2], step[2], interp);
  const int64_t sx = 1, sy = v.nx(), sz = v.nx() * v.ny();
  const float* src = v.ptr();
  float* dst = out.ptr();
  for (const Tap& z : tz)
    for (const Tap& y : ty)
      for (const Tap& x : tx) {
        if (!(x.inside && y.inside && z.inside)) {
          *dst++ = float(fill);
          continue;
        }
        auto at = [&](int64_t i, int64_t j, int64_t k) { return src[i * sx + j * sy + k * sz]; };
        const float c00 = at(x.i0, y.i0, z.i0) + x.w * (at(x.i1, y.i0, z.i0) - at(x.i0, y.i0, z.i0));
        const float c10 = at(x.i0, y.i1, z.i0) + x.w * (at(x.i1, y.i1, z.i0) - at(x.i0, y.i1, z.i0));
        const float c01 = at(x.i0, y.i0, z.i1) + x.w * (at(x.i1, y.i0, z.i1) - at(x.i0, y.i0, z.i1));
        const float c11 = at(x.i0, y.i1, z.i1) + x.w * (at(x.i1, y.i1, z.i1) - at(x.i0, y.i1, z.i1));
        const float c0 = c00 + y.w * (c10 - c00), c1 = c01 + y.w * (c11 - c01);
        *dst++ = c0 + z.w * (c1 - c0);
      }
  return out;
}

Volume resample_to_spacing(const Volume& v, double spacing, Interp interp) {
  MC_CHECK(spacing > 0, "resample: spacing must be positive, got ", spacing);
  const auto sp = v.spacing();
  std::array<int64_t, 3> n;
  std::array<double, 3> step, origin{0, 0, 0};
  for (size_t a = 0; a < 3; ++a) {
    step[a] = spacing / sp[a];
    n[a] = int64_t(std::floor(double(v.dims[a] - 1) / step[a] + 1e-6)) + 1;
  }
  return resample(v, n, origin, step, interp, 0.0);
}

void gaussian_blur(Volume& v, const std::array<double, 3>& sigma) {
  const std::array<int64_t, 3> n{v.nx(), v.ny(), v.nz()};
  const std::array<int64_t, 3> stride{1, n[0], n[0] * n[1]};
  float* p = v.ptr();
  for (size_t a = 0; a < 3; ++a) {
    if (sigma[a] <= 0 || n[a] < 2) continue;
    const int64_t r = int64_t(std::ceil(3 * sigma[a]));
    std::vector<float> kernel(size_t(2 * r + 1));
    double total = 0;
    for (int64_t d = -r; d <= r; ++d)
      total += kernel[size_t(d + r)] = float(std::exp(-0.5 * double(d * d) / (sigma[a] * sigma[a])));
    for (float& w : kernel) w = float(w / total);
    std::vector<float> line(static_cast<size_t>(n[a]));
    const size_t b = (a + 1) % 3, c = (a + 2) % 3;  // the two other axes
    for (int64_t u = 0; u < n[b]; ++u)
      for (int64_t w = 0; w < n[c]; ++w) {
        float* base = p + u * stride[b] + w * stride[c];
        for (int64_t i = 0; i < n[a]; ++i) line[size_t(i)] = base[i * stride[a]];
        for (int64_t i = 0; i < n[a]; ++i) {
          float acc = 0;
          for (int64_t d = -r; d <= r; ++d)  // edge values repeat beyond the border
            acc += kernel[size_t(d + r)] * line[size_t(std::clamp<int64_t>(i + d, 0, n[a] - 1))];
          base[i * stride[a]] = acc;
        }
      }
  }
}

Tensor apply_windows(const Volume& hu, const std::vector<HUWindow>& windows) {
  MC_CHECK(!windows.empty(), "at least one HU window is needed");
  const int64_t n = hu.numel();
  Tensor out = Tensor::empty({int64_t(windows.size()), hu.nz(), hu.ny(), hu.nx()});
  float* d = out.data<float>();
  const float* s = hu.ptr();
  for (const HUWindow& w : windows) {
    MC_CHECK(w.width > 0, "HU window width must be positive, got ", w.width);
    const double lo = w.level - w.width / 2;
    for (int64_t i = 0; i < n; ++i) *d++ = float(std::clamp((double(s[i]) - lo) / w.width, 0.0, 1.0));
  }
  return out;
}

Preprocessed preprocess(const Volume& ct, const Volume* seg, const PreprocessOptions& o) {
  MC_CHECK(o.volume >= 1 && o.spacing_mm > 0 && o.margin_mm >= 0, "preprocess: volume (", o.volume,
           ") must be >= 1, spacing (", o.spacing_mm, ") > 0, margin (", o.margin_mm, ") >= 0");
  MC_CHECK(ct.dims.size() == 3, ct.name(), ": a 3-D CT volume is needed");
  const auto ct_sp = ct.spacing();
  for (size_t a = 0; a < 3; ++a) {
    if (!(ct_sp[a] >= o.spacing_range_mm[0] && ct_sp[a] <= o.spacing_range_mm[1]))
      MC_FAIL(ct.name(), ": voxel spacing ", ct_sp[a], " mm along axis ", "ijk"[a], " is outside ",
              o.spacing_range_mm[0], "..", o.spacing_range_mm[1],
              " mm (data.spacing_range_mm): a header in metres or microns, or a broken affine");
    const double fov = ct_sp[a] * double(ct.dims[a]);
    if (fov < o.min_fov_mm)
      MC_FAIL(ct.name(), ": field of view ", fov, " mm along axis ", "ijk"[a], " (", ct.dims[a],
              " voxels of ", ct_sp[a], " mm) cannot hold a vertebra (data.min_fov_mm ", o.min_fov_mm, ")");
  }
  if (!o.precropped) {
    MC_CHECK(seg, ct.name(), ": no segmentation given (and not marked pre-cropped)");
    check_same_grid(ct, *seg, o.grid_tol_mm);
  }
  Preprocessed r;
  r.scan_dims = ct.dims;
  r.scan_affine = ct.affine;
  Box found;
  std::tie(r.stats, found) = masked_stats(ct, o.precropped ? nullptr : seg->ptr(), o.label_id);
  if (r.stats.voxels == 0) {
    if (o.label_id >= 0) MC_FAIL(seg->name(), ": empty mask: no voxel has label ", o.label_id);
    MC_FAIL(seg->name(), ": empty mask: no non-zero voxel");
  }

  // Crop in the stored orientation, then reorient only the crop (same result, far less memory).
  const Box box = expand_box(found, o.margin_mm, ct.spacing(), ct.dims);
  const AxisMap axes = canonical_axes(ct.affine);
  Volume crop_ct = reorient(crop(ct, box), axes);
  {  // the margin around the mask goes into the cube too (and the blur spreads a NaN)
    const float* c = crop_ct.ptr();
    for (int64_t i = 0; i < crop_ct.numel(); ++i)
      if (!std::isfinite(c[i]))
        MC_FAIL(ct.name(), ": non-finite value ", c[i], " inside the L1 crop (mask box + ", o.margin_mm,
                " mm): the scan is damaged");
  }
  Volume crop_mask = crop_ct;
  if (o.precropped) crop_mask.data = Tensor::full(crop_ct.data.shape(), 1.0);
  else crop_mask = reorient(select_label(crop(*seg, box), o.label_id), axes);
  const Box tight = bounding_box(crop_mask);  // the vertebra inside the crop

  const auto sp = crop_ct.spacing();
  const int64_t V = o.volume;
  std::array<double, 3> step, centre, origin;
  double longest_mm = 0;
  for (size_t a = 0; a < 3; ++a) longest_mm = std::max(longest_mm, double(crop_ct.dims[a]) * sp[a]);
  for (size_t a = 0; a < 3; ++a) {
    const double n = double(crop_ct.dims[a]);
    centre[a] = (n - 1) / 2;
    switch (o.resize) {
      case ResizeMode::Pad:
        step[a] = o.spacing_mm / sp[a];
        // centred on the vertebra itself, even where the margin was clipped by the scan's edge
        centre[a] = double(tight.lo[a] + tight.hi[a] - 1) / 2;
        if (n * sp[a] > double(V) * o.spacing_mm + 1e-6) {
          std::ostringstream s;
          s << (r.note.empty() ? "" : "; ") << "crop " << n * sp[a] << " mm > field "
            << double(V) * o.spacing_mm << " mm along axis " << "xyz"[a] << ": centre-cropped";
          r.note += s.str();
        }
        break;
      case ResizeMode::Fit: step[a] = longest_mm / double(V) / sp[a]; break;
      case ResizeMode::Stretch: step[a] = n / double(V); break;
    }
    origin[a] = centre[a] - step[a] * double(V - 1) / 2;
  }
  if (o.antialias) {
    std::array<double, 3> sigma;
    for (size_t a = 0; a < 3; ++a) sigma[a] = std::max(0.0, (step[a] - 1) / 2);
    gaussian_blur(crop_ct, sigma);
  }
  const Volume hu = resample(crop_ct, {V, V, V}, origin, step, Interp::Linear, o.pad_hu);
  r.cube = apply_windows(hu, o.windows);
  r.cube_affine = hu.affine;
  if (o.mask_outside) {
    const Volume m = resample(crop_mask, {V, V, V}, origin, step, Interp::Nearest, 0.0);
    const int64_t n = m.numel();
    float* c = r.cube.data<float>();
    for (size_t w = 0; w < o.windows.size(); ++w, c += n)
      for (int64_t i = 0; i < n; ++i) c[i] *= m.ptr()[i];
  }
  return r;
}

Volume read_ct_for(const std::string& ct_path, const PreprocessOptions& opts, std::string* summary) {
  DicomOptions d;
  d.series_uid = opts.dicom_series;
  d.series_key = "data.raw.dicom_series";
  CtSourceInfo info;
  Volume ct = read_ct(ct_path, d, &info);
  if (summary) *summary = info.summary;
  return ct;
}

Volume read_on_grid(const std::string& path, const Volume& ct, const PreprocessOptions& opts) {
  Volume v = read_volume(path);
  try {
    check_same_grid(ct, v, opts.grid_tol_mm);
    return v;
  } catch (const Error& same_grid) {
    // The same voxels stored in another axis order / direction are put onto the CT's grid;
    // anything else keeps the plain "not on the same grid" error, which names both files.
    try {
      return conform_to(v, ct, opts.grid_tol_mm);
    } catch (const Error&) {
      throw same_grid;
    }
  }
}

Preprocessed preprocess_files(const std::string& ct_path, const std::string& seg_path,
                              const PreprocessOptions& opts) {
  const Volume ct = read_ct_for(ct_path, opts);
  if (opts.precropped) return preprocess(ct, nullptr, opts);
  const Volume seg = read_on_grid(seg_path, ct, opts);
  return preprocess(ct, &seg, opts);
}

}  // namespace mc::io
