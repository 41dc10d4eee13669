#include "pipeline/saliency.h"

#include <algorithm>
#include <cmath>

#include "engine/check.h"

namespace mc::pipeline {

io::Affine invert_affine(const io::Affine& a) {
  // [R t; 0 1]^-1 = [R^-1, -R^-1 t; 0 1], R^-1 by the adjugate.
  const auto& m = a;
  const double det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
                     m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
                     m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
  MC_CHECK(std::isfinite(det) && std::abs(det) > 1e-12, "affine is singular:\n", io::affine_str(a));
  io::Affine r = io::identity_affine();
  r[0][0] = (m[1][1] * m[2][2] - m[1][2] * m[2][1]) / det;
  r[0][1] = (m[0][2] * m[2][1] - m[0][1] * m[2][2]) / det;
  r[0][2] = (m[0][1] * m[1][2] - m[0][2] * m[1][1]) / det;
  r[1][0] = (m[1][2] * m[2][0] - m[1][0] * m[2][2]) / det;
  r[1][1] = (m[0][0] * m[2][2] - m[0][2] * m[2][0]) / det;
  r[1][2] = (m[0][2] * m[1][0] - m[0][0] * m[1][2]) / det;
  r[2][0] = (m[1][0] * m[2][1] - m[1][1] * m[2][0]) / det;
  r[2][1] = (m[0][1] * m[2][0] - m[0][0] * m[2][1]) / det;
  r[2][2] = (m[0][0] * m[1][1] - m[0][1] * m[1][0]) / det;
  for (int i = 0; i < 3; ++i) r[size_t(i)][3] = -(r[size_t(i)][0] * m[0][3] + r[size_t(i)][1] * m[1][3] + r[size_t(i)][2] * m[2][3]);
  return r;
}

io::Volume map_to_grid(const Tensor& cube_map, const io::Affine& cube_affine, const io::Volume& ref) {
  MC_CHECK(cube_map.dim() == 3 && cube_map.dtype() == DType::F32 && cube_map.device().is_cpu(),
           "map_to_grid: a [D, H, W] f32 CPU map expected, got ", cube_map.str());
  io::Volume out = io::make_volume(ref.nx(), ref.ny(), ref.nz(), ref.affine);
  const int64_t D = cube_map.size(0), H = cube_map.size(1), W = cube_map.size(2);
  const float* c = cube_map.data<float>();
  // scan voxel -> cube voxel (u along W, v along H, w along D)
  const io::Affine to_cube = io::matmul(invert_affine(cube_affine), ref.affine);
  // Only the scan voxels whose cube position can be inside: the box around the cube's corners.
  const io::Affine to_scan = invert_affine(to_cube);
  std::array<double, 3> lo{1e300, 1e300, 1e300}, hi{-1e300, -1e300, -1e300};
  for (int corner = 0; corner < 8; ++corner) {
    const auto p = io::apply_affine(to_scan, corner & 1 ? double(W) - 0.5 : -0.5, corner & 2 ? double(H) - 0.5 : -0.5,
                                corner & 4 ? double(D) - 0.5 : -0.5);
    for (int a = 0; a < 3; ++a) lo[size_t(a)] = std::min(lo[size_t(a)], p[size_t(a)]), hi[size_t(a)] = std::max(hi[size_t(a)], p[size_t(a)]);
  }
  const int64_t dims[3] = {ref.nx(), ref.ny(), ref.nz()};
  int64_t b0[3], b1[3];
  for (int a = 0; a < 3; ++a) {
    b0[a] = std::clamp<int64_t>(int64_t(std::floor(lo[size_t(a)])), 0, dims[a]);
    b1[a] = std::clamp<int64_t>(int64_t(std::ceil(hi[size_t(a)])) + 1, 0, dims[a]);
  }
  float* o = out.ptr();
  auto at = [&](int64_t w, int64_t v, int64_t u) { return double(c[(w * H + v) * W + u]); };
  for (int64_t k = b0[2]; k < b1[2]; ++k)
    for (int64_t j = b0[1]; j < b1[1]; ++j)
      for (int64_t i = b0[0]; i < b1[0]; ++i) {
        const auto p = io::apply_affine(to_cube, double(i), double(j), double(k));
        const double x = p[0], y = p[1], z = p[2];
        if (x < -0.5 || y < -0.5 || z < -0.5 || x > double(W) - 0.5 || y > double(H) - 0.5 || z > double(D) - 0.5)
          continue;
        // Within half a voxel of the edge: the edge value (as io/preprocess.h's resample).
        const double cx = std::clamp(x, 0.0, double(W - 1)), cy = std::clamp(y, 0.0, double(H - 1)),
                     cz = std::clamp(z, 0.0, double(D - 1));
        const int64_t x0 = std::min<int64_t>(int64_t(cx), W - 1), y0 = std::min<int64_t>(int64_t(cy), H - 1),
                      z0 = std::min<int64_t>(int64_t(cz), D - 1);
        const int64_t x1 = std::min(x0 + 1, W - 1), y1 = std::min(y0 + 1, H - 1), z1 = std::min(z0 + 1, D - 1);
        const double fx = cx - double(x0), fy = cy - double(y0), fz = cz - double(z0);
        auto plane = [&](int64_t zz) {
          return (1 - fy) * ((1 - fx) * at(zz, y0, x0) + fx * at(zz, y0, x1)) +
                 fy * ((1 - fx) * at(zz, y1, x0) + fx * at(zz, y1, x1));
        };
        o[(k * ref.ny() + j) * ref.nx() + i] = float((1 - fz) * plane(z0) + fz * plane(z1));
      }
  return out;
}

namespace {

// A heat scale (black -> purple -> red -> orange -> pale yellow, like matplotlib's inferno).
std::array<double, 3> heat(double t) {
  static const double stops[5][3] = {{0, 0, 4}, {87, 16, 110}, {188, 55, 84}, {249, 142, 9}, {252, 255, 164}};
  t = std::clamp(t, 0.0, 1.0) * 4;
  const int i = std::min(int(t), 3);
  const double f = t - i;
  return {stops[i][0] + f * (stops[i + 1][0] - stops[i][0]), stops[i][1] + f * (stops[i + 1][1] - stops[i][1]),
          stops[i][2] + f * (stops[i + 1][2] - stops[i][2])};
}

}  // namespace

io::RgbImage overlay_slices(const Tensor& ct, const Tensor& map, const std::array<int64_t, 3>& at, int scale) {
  MC_CHECK(ct.dim() == 3 && map.shape() == ct.shape() && ct.size(0) == ct.size(1) && ct.size(1) == ct.size(2),
           "overlay: CT and map must be the same [V, V, V] cube, got ", ct.str(), " and ", map.str());
  MC_CHECK(scale >= 1, "overlay: scale must be >= 1");
  const int64_t V = ct.size(0), gap = 4, P = V * scale;
  const float* pc = ct.data<float>();
  const float* pm = map.data<float>();
  io::RgbImage img(3 * P + 2 * gap, 2 * P + gap, 255);  // top row: the CT alone; bottom row: with the map
  // panel p, pixel (row r, col c) of the V x V slice -> cube voxel {d, h, w}
  auto voxel = [&](int p, int64_t r, int64_t c) -> std::array<int64_t, 3> {
    if (p == 0) return {at[0], V - 1 - r, V - 1 - c};  // axial: anterior up, radiological
    if (p == 1) return {V - 1 - r, at[1], V - 1 - c};  // coronal: superior up, radiological
    return {V - 1 - r, V - 1 - c, at[2]};              // sagittal: superior up, anterior left
  };
  for (int p = 0; p < 3; ++p)
    for (int64_t r = 0; r < V; ++r)
      for (int64_t c = 0; c < V; ++c) {
        const auto v = voxel(p, r, c);
        const size_t idx = size_t((v[0] * V + v[1]) * V + v[2]);
        const double g = 255 * std::clamp(double(pc[idx]), 0.0, 1.0), m = std::clamp(double(pm[idx]), 0.0, 1.0);
        const double alpha = m < 0.2 ? 0.0 : 0.6 * m;  // faint values leave the CT visible
        const auto h = heat(m);
        uint8_t rgb[3];
        for (int ch = 0; ch < 3; ++ch) rgb[ch] = uint8_t(std::lround((1 - alpha) * g + alpha * h[size_t(ch)]));
        const uint8_t grey = uint8_t(std::lround(g));
        for (int64_t y = 0; y < scale; ++y)
          for (int64_t x = 0; x < scale; ++x) {
            uint8_t* top = img.at(p * (P + gap) + c * scale + x, r * scale + y);
            top[0] = top[1] = top[2] = grey;
            uint8_t* px = img.at(p * (P + gap) + c * scale + x, P + gap + r * scale + y);
            px[0] = rgb[0], px[1] = rgb[1], px[2] = rgb[2];
          }
      }
  return img;
}

std::string saliency_png_path(const std::string& nifti_path) {
  for (const char* ext : {".nii.gz", ".nii"})
    if (nifti_path.ends_with(ext)) return nifti_path.substr(0, nifti_path.size() - std::string(ext).size()) + ".png";
  return nifti_path + ".png";
}

Saliency write_saliency(LoadedModel& m, const ScanInput& in, const io::PreprocessOptions& opts, int64_t cls,
                        const std::string& nifti_path, const std::string& png_path, int stage) {
  auto* resnet = dynamic_cast<models::ResNet3d*>(m.model.get());
  MC_CHECK(resnet, "--saliency: Grad-CAM needs a ResNet-3D model (its last convolutional stage); this model is not one");
  const io::Preprocessed p = preprocess_input(in, opts);
  const Tensor x = cube_model_input(p.cube);
  MC_CHECK(x.size(1) == m.in_chans, "subject '", in.id, "': the preprocessed volume has ", x.size(1),
           " channel(s) but the model takes ", m.in_chans, " (model.in_chans)");
  Saliency s;
  MC_CHECK(stage >= 0 && stage <= 4, "--saliency-stage: ", stage, " is not a stage (1..4, 0 = automatic)");
  const Tensor xin = model_input(x, m.device);
  s.stage = stage ? stage : 4;
  s.cam = models::grad_cam(*resnet, xin, cls, s.stage);
  auto coarse = [](const Tensor& map) { return map.size(0) < 2 || map.size(1) < 2 || map.size(2) < 2; };
  while (!stage && s.stage > 1 && coarse(s.cam.map)) s.cam = models::grad_cam(*resnet, xin, cls, --s.stage);
  const int64_t V = p.cube.size(1);
  s.cube_map = models::upsample_trilinear(s.cam.map, {V, p.cube.size(2), p.cube.size(3)});
  float* c = s.cube_map.data<float>();
  const int64_t n = s.cube_map.numel();
  const int64_t top = int64_t(std::max_element(c, c + n) - c);
  const float peak = c[top];
  if (peak > 0)
    for (int64_t i = 0; i < n; ++i) c[i] /= peak;
  s.peak = {top / (p.cube.size(2) * p.cube.size(3)), (top / p.cube.size(3)) % p.cube.size(2), top % p.cube.size(3)};
  // The scan's own grid, as preprocessing read it (a NIfTI file or a DICOM series): not read again.
  io::Volume ref;
  ref.dims = p.scan_dims;
  ref.affine = p.scan_affine;
  io::Volume out = map_to_grid(s.cube_map, p.cube_affine, ref);
  out.path = nifti_path;
  io::write_nifti(nifti_path, out);
  s.nifti = nifti_path;
  if (!png_path.empty()) {
    const Tensor cube = p.cube.to(DType::F32);
    Tensor ct = Tensor::zeros({p.cube.size(1), p.cube.size(2), p.cube.size(3)});
    std::copy_n(cube.data<float>(), ct.numel(), ct.data<float>());  // channel 0: the first HU window
    io::write_png(png_path, overlay_slices(ct, s.cube_map, s.peak, int(std::max<int64_t>(1, 256 / V))));
    s.png = png_path;
  }
  return s;
}

}  // namespace mc::pipeline
