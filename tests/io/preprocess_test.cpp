// Preprocessing steps against hand-computed values, and the whole pipeline on small phantoms
// and on the real TotalSegmentator example.
#include <yaml-cpp/yaml.h>

#include <cmath>

#include "io/preprocess.h"
#include "test_util.h"

namespace mc::io {
namespace {
using test::expect_error;

Affine diag_affine(double sx, double sy, double sz, double ox = 0, double oy = 0, double oz = 0) {
  Affine a = identity_affine();
  a[0][0] = sx, a[1][1] = sy, a[2][2] = sz;
  a[0][3] = ox, a[1][3] = oy, a[2][3] = oz;
  return a;
}

template <class F>
Volume filled(int64_t nx, int64_t ny, int64_t nz, const Affine& a, F f) {
  Volume v = make_volume(nx, ny, nz, a);
  for (int64_t k = 0; k < nz; ++k)
    for (int64_t j = 0; j < ny; ++j)
      for (int64_t i = 0; i < nx; ++i) v.ptr()[(k * ny + j) * nx + i] = float(f(i, j, k));
  return v;
}

// A phantom: soft tissue 40 HU, a "vertebra" box [8,14)x[6,12)x[4,9) of 300 HU labelled 31, and
// a brighter box of 900 HU labelled 32 above it.
struct Phantom {
  Volume ct, seg;
};
Phantom phantom(const Affine& a) {
  auto in = [](int64_t i, int64_t j, int64_t k, int k0, int k1) {
    return i >= 8 && i < 14 && j >= 6 && j < 12 && k >= k0 && k < k1;
  };
  Phantom p;
  p.ct = filled(20, 18, 16, a, [&](auto i, auto j, auto k) {
    return in(i, j, k, 4, 9) ? 300.0 : in(i, j, k, 10, 14) ? 900.0 : 40.0;
  });
  p.seg = filled(20, 18, 16, a, [&](auto i, auto j, auto k) {
    return in(i, j, k, 4, 9) ? 31.0 : in(i, j, k, 10, 14) ? 32.0 : 0.0;
  });
  p.ct.path = "ct.nii.gz", p.seg.path = "seg.nii.gz";
  return p;
}

TEST(PreprocessSteps, BoundingBoxAndMarginInMillimetres) {
  Volume m = make_volume(30, 20, 10, diag_affine(2.0, 2.5, 1.0));
  m.ptr()[(3 * 20 + 5) * 30 + 10] = 1;  // (i, j, k) = (10, 5, 3)
  m.ptr()[(4 * 20 + 7) * 30 + 12] = 1;  // (12, 7, 4)
  const Box b = bounding_box(m);
  EXPECT_EQ(b.lo, (std::array<int64_t, 3>{10, 5, 3}));
  EXPECT_EQ(b.hi, (std::array<int64_t, 3>{13, 8, 5}));
  // 5 mm = 2.5 -> 3 voxels of 2 mm, 2 voxels of 2.5 mm, 5 voxels of 1 mm (clamped at k = 0)
  const Box e = expand_box(b, 5.0, m.spacing(), m.dims);
  EXPECT_EQ(e.lo, (std::array<int64_t, 3>{7, 3, 0}));
  EXPECT_EQ(e.hi, (std::array<int64_t, 3>{16, 10, 10}));
  EXPECT_TRUE(bounding_box(make_volume(3, 3, 3)).empty());
}

TEST(PreprocessSteps, CropKeepsWorldPositions) {
  const Volume v = filled(10, 8, 6, diag_affine(-0.5, 0.7, 2.0, 10, 20, 30),
                          [](auto i, auto j, auto k) { return i + 10 * j + 100 * k; });
  Box b;
  b.lo = {2, 3, 1}, b.hi = {7, 8, 4};
  const Volume c = crop(v, b);
  EXPECT_EQ(c.dims, (std::vector<int64_t>{5, 5, 3}));
  EXPECT_EQ(c.at(0, 0, 0), v.at(2, 3, 1));
  EXPECT_EQ(c.at(4, 4, 2), v.at(6, 7, 3));
  const auto w0 = apply_affine(c.affine, 1, 2, 1), w1 = apply_affine(v.affine, 3, 5, 2);
  for (size_t r = 0; r < 3; ++r) EXPECT_NEAR(w0[r], w1[r], 1e-12);
}

TEST(PreprocessSteps, TrilinearResampleOfALinearRampIsExact) {
  auto f = [](double i, double j, double k) { return 2 * i + 3 * j - k + 5; };
  const Volume v = filled(9, 7, 6, diag_affine(1.5, 1, 2), f);
  const std::array<double, 3> origin{0.3, 1.2, 0.5}, step{0.7, 0.45, 1.3};
  const Volume r = resample(v, {10, 9, 4}, origin, step, Interp::Linear, -99);
  for (int64_t k = 0; k < 4; ++k)
    for (int64_t j = 0; j < 9; ++j)
      for (int64_t i = 0; i < 10; ++i)
        ASSERT_NEAR(r.at(i, j, k), f(origin[0] + step[0] * double(i), origin[1] + step[1] * double(j),
                                     origin[2] + step[2] * double(k)), 1e-4)
            << i << " " << j << " " << k;
  // the new affine maps output voxels where the samples came from
  const auto w = apply_affine(r.affine, 2, 3, 1);
  const auto w_in = apply_affine(v.affine, 0.3 + 1.4, 1.2 + 1.35, 1.8);
  for (size_t a = 0; a < 3; ++a) EXPECT_NEAR(w[a], w_in[a], 1e-12);
  // beyond half a voxel outside: the fill value; within half a voxel: the edge value
  const Volume out = resample(v, {3, 1, 1}, {-0.6, 0, 0}, {4.5, 1, 1}, Interp::Linear, -99);
  EXPECT_EQ(out.at(0, 0, 0), -99.f);
  EXPECT_NEAR(out.at(1, 0, 0), f(3.9, 0, 0), 1e-4);
  EXPECT_NEAR(out.at(2, 0, 0), f(8, 0, 0), 1e-4);  // x = 8.4: clamped to the last voxel
}

TEST(PreprocessSteps, ResampleToSpacingAndNearestForMasks) {
  const Volume v = filled(4, 3, 2, diag_affine(3, 3, 3), [](auto i, auto j, auto k) { return i + 4 * j + 12 * k; });
  const Volume r = resample_to_spacing(v, 1.0, Interp::Linear);
  EXPECT_EQ(r.dims, (std::vector<int64_t>{10, 7, 4}));
  for (size_t a = 0; a < 3; ++a) EXPECT_NEAR(r.spacing()[a], 1.0, 1e-12);
  EXPECT_NEAR(r.at(4, 2, 1), 4.0 / 3 + 4 * 2.0 / 3 + 12 * 1.0 / 3, 1e-5);

  Volume mask = make_volume(4, 1, 1, diag_affine(3, 3, 3));
  mask.ptr()[1] = 1, mask.ptr()[2] = 1;
  const Volume m = resample_to_spacing(mask, 1.0, Interp::Nearest);
  // output x = 0..9 -> input 0, .33, .67, 1, 1.33, 1.67, 2, 2.33, 2.67, 3: round half up
  const float want[10] = {0, 0, 1, 1, 1, 1, 1, 1, 0, 0};
  for (int64_t i = 0; i < 10; ++i) EXPECT_EQ(m.at(i, 0, 0), want[i]) << i;
}

TEST(PreprocessSteps, GaussianBlurKeepsARampAwayFromTheEdges) {
  Volume v = filled(30, 5, 5, identity_affine(), [](auto i, auto, auto) { return 3.0 * double(i); });
  gaussian_blur(v, {1.5, 0, 0});
  for (int64_t i = 6; i < 24; ++i) EXPECT_NEAR(v.at(i, 2, 2), 3.0 * double(i), 1e-4);
  Volume spike = make_volume(21, 1, 1);
  spike.ptr()[10] = 1;
  gaussian_blur(spike, {2, 0, 0});
  double sum = 0;
  for (int64_t i = 0; i < 21; ++i) sum += spike.ptr()[i];
  EXPECT_NEAR(sum, 1.0, 1e-6);
  EXPECT_NEAR(spike.ptr()[10] / spike.ptr()[12], std::exp(0.5), 1e-5);
}

TEST(PreprocessSteps, WindowsScaleToUnitRange) {
  const Volume hu = filled(5, 1, 1, identity_affine(), [](auto i, auto, auto) {
    const double v[5] = {-1000, -160, 40, 240, 1000};
    return v[i];
  });
  const Tensor t = apply_windows(hu, {HUWindow{40, 400}, HUWindow{400, 2000}});
  ASSERT_EQ(t.shape(), (Shape{2, 1, 1, 5}));
  const auto x = t.to_vector<float>();
  const float want[10] = {0, 0, 0.5f, 1, 1, 0, 0.22f, 0.32f, 0.42f, 0.8f};
  for (int i = 0; i < 10; ++i) EXPECT_NEAR(x[size_t(i)], want[i], 1e-6) << i;
  EXPECT_EQ(parse_window("400,2000").level, 400);
  EXPECT_EQ(parse_window("-600, 1500").width, 1500);
  expect_error([] { parse_window("400"); }, {"400", "LEVEL,WIDTH"});
}

TEST(PreprocessSteps, MaskStatisticsHandComputed) {
  const Volume ct = filled(4, 1, 1, diag_affine(2, 2, 2.5), [](auto i, auto, auto) { return 10.0 * double(i * i); });
  Volume m = make_volume(4, 1, 1, ct.affine);
  m.ptr()[1] = m.ptr()[2] = m.ptr()[3] = 1;  // 10, 40, 90
  SubjectStats s = mask_stats(ct, m);
  EXPECT_EQ(s.voxels, 3);
  EXPECT_NEAR(s.volume_ml, 3 * 10.0 / 1000, 1e-12);
  EXPECT_NEAR(s.mean_hu, 140.0 / 3, 1e-12);
  EXPECT_EQ(s.median_hu, 40);
  m.ptr()[0] = 1;  // 0, 10, 40, 90: numpy's median averages the middle pair
  EXPECT_EQ(mask_stats(ct, m).median_hu, 25);
}

TEST(PreprocessPipeline, SelectsTheLabelAndCentresIt) {
  const Phantom p = phantom(diag_affine(1, 1, 1));
  PreprocessOptions o;
  o.volume = 16, o.spacing_mm = 1, o.margin_mm = 0, o.antialias = false;
  o.windows = {HUWindow{400, 2000}};
  const Preprocessed r = preprocess(p.ct, &p.seg, o);
  EXPECT_EQ(r.stats.voxels, 6 * 6 * 5);
  EXPECT_EQ(r.stats.mean_hu, 300);
  ASSERT_EQ(r.cube.shape(), (Shape{1, 16, 16, 16}));
  const auto x = r.cube.to_vector<float>();
  auto at = [&](int64_t d, int64_t h, int64_t w) { return x[size_t((d * 16 + h) * 16 + w)]; };
  const float bone = float((300 - (400 - 1000)) / 2000.0), air = 0;
  EXPECT_NEAR(at(8, 8, 8), bone, 1e-6);
  // 5 slices of the label, centred in 16: slices 6..10 hold the crop, the rest is padding
  EXPECT_NEAR(at(6, 8, 8), bone, 1e-6);
  EXPECT_NEAR(at(10, 8, 8), bone, 1e-6);
  EXPECT_EQ(at(4, 8, 8), air);
  EXPECT_EQ(at(12, 8, 8), air);
  for (float v : x) ASSERT_TRUE(v >= 0 && v <= 1);

  o.label_id = 32;  // the brighter neighbour
  EXPECT_NEAR(preprocess(p.ct, &p.seg, o).cube.to_vector<float>()[size_t((8 * 16 + 8) * 16 + 8)],
              float((900 + 600) / 2000.0), 1e-6);
  o.label_id = -1;  // binary: both boxes
  EXPECT_EQ(preprocess(p.ct, &p.seg, o).stats.voxels, 6 * 6 * 5 + 6 * 6 * 4);
}

TEST(PreprocessPipeline, StorageOrientationDoesNotChangeTheCube) {
  const Phantom ras = phantom(diag_affine(1, 1, 1));
  // the same anatomy stored with i and j reversed (LPS): flip the arrays, negate the affine
  Affine lps = diag_affine(-1, -1, 1, 19, 17, 0);
  auto flip = [&](const Volume& v) {
    return filled(20, 18, 16, lps, [&](auto i, auto j, auto k) { return v.at(19 - i, 17 - j, k); });
  };
  Volume ct = flip(ras.ct), seg = flip(ras.seg);
  ct.path = "lps_ct", seg.path = "lps_seg";
  PreprocessOptions o;
  o.volume = 12, o.spacing_mm = 0.8, o.margin_mm = 2;
  o.windows = {HUWindow{400, 2000}, HUWindow{40, 400}};
  o.mask_outside = true;
  const Tensor a = preprocess(ras.ct, &ras.seg, o).cube, b = preprocess(ct, &seg, o).cube;
  EXPECT_TRUE(test::all_close(b, a, 0, 1e-6));
}

TEST(PreprocessPipeline, FitAndStretchFillTheCube) {
  const Phantom p = phantom(diag_affine(1, 1, 1));
  PreprocessOptions o;
  o.volume = 12, o.margin_mm = 0, o.antialias = false;
  o.resize = ResizeMode::Stretch;  // 6 x 6 x 5 box -> 12^3: bone everywhere
  for (float v : preprocess(p.ct, &p.seg, o).cube.to_vector<float>()) ASSERT_NEAR(v, 0.45f, 1e-6);
  o.resize = ResizeMode::Fit;  // the 6-voxel sides fill 12, the 5-voxel side 10 of 12
  const auto x = preprocess(p.ct, &p.seg, o).cube.to_vector<float>();
  EXPECT_NEAR(x[size_t((1 * 12 + 0) * 12 + 0)], 0.45f, 1e-6);
  EXPECT_EQ(x[size_t((0 * 12 + 6) * 12 + 6)], 0.f);
  EXPECT_EQ(x[size_t((11 * 12 + 6) * 12 + 6)], 0.f);
  EXPECT_EQ(parse_resize_mode("fit"), ResizeMode::Fit);
  expect_error([] { parse_resize_mode("zoom"); }, {"zoom", "pad, fit or stretch"});
}

TEST(PreprocessErrors, MaskOnAnotherGridNamesBothFiles) {
  Phantom p = phantom(diag_affine(1, 1, 1));
  p.seg.affine[0][3] = 0.5;
  PreprocessOptions o;
  expect_error([&] { preprocess(p.ct, &p.seg, o); }, {"ct.nii.gz", "seg.nii.gz", "same grid"});
  Phantom q = phantom(diag_affine(1, 1, 1));
  q.seg = filled(20, 18, 15, q.seg.affine, [](auto, auto, auto) { return 31.0; });
  q.seg.path = "short_seg.nii.gz";
  expect_error([&] { preprocess(q.ct, &q.seg, o); }, {"ct.nii.gz", "short_seg.nii.gz", "20x18x15"});
}

TEST(PreprocessErrors, EmptyMaskNamesFileAndLabel) {
  const Phantom p = phantom(diag_affine(1, 1, 1));
  PreprocessOptions o;
  o.label_id = 22;
  expect_error([&] { preprocess(p.ct, &p.seg, o); }, {"seg.nii.gz", "empty mask", "label 22"});
}

TEST(PreprocessReal, L1StatisticsMatchNibabel) {
  const std::string root = test::shared_data("");
  if (root.empty()) GTEST_SKIP() << "no ../shared/data";
  const YAML::Node ref =
      YAML::LoadFile(std::string(MC_SOURCE_DIR) + "/tests/fixtures/nifti/nibabel_reference.json");
  for (const auto& c : ref["l1"]) {
    SCOPED_TRACE(c["ct"].as<std::string>());
    PreprocessOptions o;
    o.label_id = c["label"].as<int64_t>();
    const Preprocessed r = preprocess_files(root + "/" + c["ct"].as<std::string>(),
                                            root + "/" + c["seg"].as<std::string>(), o);
    EXPECT_EQ(r.stats.voxels, c["voxels"].as<int64_t>());
    EXPECT_NEAR(r.stats.volume_ml, c["volume_ml"].as<double>(), 1e-9);
    EXPECT_NEAR(r.stats.mean_hu, c["mean_hu"].as<double>(), 1e-9);
    EXPECT_EQ(r.stats.median_hu, c["median_hu"].as<double>());
    ASSERT_EQ(r.cube.shape(), (Shape{1, 96, 96, 96}));
    int64_t nonzero = 0, dense = 0;  // real anatomy in the cube, not only padding
    for (float v : r.cube.to_vector<float>()) nonzero += v > 0, dense += v > 0.6f;  // > 600 HU
    EXPECT_GT(double(nonzero) / double(r.cube.numel()), 0.1);
    EXPECT_GT(dense, 100);
  }
}

}  // namespace
}  // namespace mc::io
