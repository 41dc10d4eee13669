// Vertebral-body ROI (io/vertebra_roi.h) and its morphology (io/morphology.h):
//   - the distance transform and ball operations against brute force on random masks;
//   - a synthetic vertebra (body with a cortical shell, posterior arch, spinous process) whose
//     estimate, ROI and HU are known;
//   - example_ct against spine_report.json's volumes and against numpy/scipy on the documented
//     ROI (tests/fixtures/make_roi_fixtures.py, the roi_fixtures CTest fixture).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <tuple>

#include "io/morphology.h"
#include "io/vertebra_roi.h"
#include "test_util.h"

namespace mc::io {
namespace {

using json = nlohmann::json;

Mask random_mask(const std::array<int64_t, 3>& d, double p, uint32_t seed) {
  std::mt19937 g(seed);
  std::bernoulli_distribution on(p);
  Mask m(d);
  for (auto& x : m.v) x = on(g);
  return m;
}

double dist2(const Mask& m, int64_t a, int64_t b, const std::array<double, 3>& s) {
  const auto& n = m.dims;
  const double di = s[0] * double(a % n[0] - b % n[0]);
  const double dj = s[1] * double((a / n[0]) % n[1] - (b / n[0]) % n[1]);
  const double dk = s[2] * double(a / (n[0] * n[1]) - b / (n[0] * n[1]));
  return di * di + dj * dj + dk * dk;
}

// ------------------------------------------------------------------ morphology

TEST(Morphology, DistanceTransformIsExactOnAnisotropicGrids) {
  const std::array<double, 3> sp{0.7, 1.3, 2.1};
  for (uint32_t seed : {1u, 2u, 3u}) {
    const Mask m = random_mask({9, 7, 6}, seed == 3 ? 0.97 : 0.7, seed);
    const auto d = distance_squared_to_background(m, sp);
    for (int64_t a = 0; a < m.size(); ++a) {
      double best = INFINITY;
      for (int64_t b = 0; b < m.size(); ++b)
        if (!m.v[size_t(b)]) best = std::min(best, dist2(m, a, b, sp));
      ASSERT_NEAR(d[size_t(a)], best, 1e-9 * (1 + best)) << "seed " << seed << " voxel " << a;
    }
  }
  Mask full({4, 3, 2});
  std::fill(full.v.begin(), full.v.end(), 1);  // no background: the array edge is not one
  for (double x : distance_squared_to_background(full, sp)) EXPECT_EQ(x, INFINITY);
}

TEST(Morphology, BallOperationsMatchTheirDefinitions) {
  const std::array<double, 3> sp{0.8, 1.0, 1.9};
  const Mask m = random_mask({10, 8, 7}, 0.8, 11);
  for (double r : {0.0, 1.0, 2.0, 2.5}) {
    SCOPED_TRACE(r);
    const Mask e = erode_ball(m, sp, r), d = dilate_ball(m, sp, r), o = open_ball(m, sp, r);
    for (int64_t a = 0; a < m.size(); ++a) {
      bool ball_inside = m.v[size_t(a)], near_mask = false, in_fitting_ball = false;
      for (int64_t b = 0; b < m.size(); ++b) {
        const bool close = dist2(m, a, b, sp) <= r * r;
        if (close && !m.v[size_t(b)]) ball_inside = false;
        if (close && m.v[size_t(b)]) near_mask = true;
        if (close && e.v[size_t(b)]) in_fitting_ball = true;
      }
      ASSERT_EQ(bool(e.v[size_t(a)]), ball_inside) << a;
      ASSERT_EQ(bool(d.v[size_t(a)]), near_mask) << a;
      ASSERT_EQ(bool(o.v[size_t(a)]), in_fitting_ball && m.v[size_t(a)]) << a;
    }
    if (r == 0) EXPECT_EQ(e.v, m.v);
  }
  // Something must happen at these radii, or the checks above prove little.
  EXPECT_LT(erode_ball(m, sp, 1.0).count(), m.count());
  EXPECT_GT(dilate_ball(m, sp, 1.0).count(), m.count());
}

TEST(Morphology, LargestComponentIsSixConnected) {
  Mask m({6, 5, 3});
  auto set = [&](int64_t i, int64_t j, int64_t k) { m.v[size_t(m.index(i, j, k))] = 1; };
  set(0, 0, 0), set(1, 0, 0), set(1, 1, 0);  // three voxels
  set(2, 2, 0), set(3, 2, 0), set(3, 3, 0), set(3, 3, 1);  // four, touching the first diagonally
  Mask l = largest_component(m);
  EXPECT_EQ(l.count(), 4);
  EXPECT_TRUE(l.v[size_t(m.index(3, 3, 1))]);
  EXPECT_FALSE(l.v[size_t(m.index(1, 1, 0))]);
  set(5, 4, 2);  // a tie breaks towards the component met first in storage order
  set(4, 4, 2), set(5, 3, 2), set(5, 4, 1);
  EXPECT_TRUE(largest_component(m).v[size_t(m.index(3, 3, 1))]);
  EXPECT_EQ(largest_component(Mask({2, 2, 2})).count(), 0);
}

// ------------------------------------------------------------------ a synthetic vertebra

// On 0.8 x 0.8 x 1.5 mm voxels (RAS: i -> left-right, j -> posterior-anterior, k -> up):
// a body cylinder of radius 17 mm, 24 mm high, HU 100 inside and 500 in its outer 2 mm
// (cortex); behind it a posterior arch 5 mm thick around the canal and a spinous process
// 5 x 24 mm, HU 300. Label 31 (L1 in TotalSegmentator v2) on all of it; `body` is 1 on the
// cylinder, `pp` 20 on it (L1 of a vertebrae_pp map).
struct Phantom {
  Volume ct, seg, body, pp;
};

Phantom phantom() {
  Affine a = identity_affine();
  a[0][0] = 0.8, a[1][1] = 0.8, a[2][2] = 1.5;
  const int64_t nx = 70, ny = 110, nz = 26;
  Phantom p{make_volume(nx, ny, nz, a), make_volume(nx, ny, nz, a), make_volume(nx, ny, nz, a),
            make_volume(nx, ny, nz, a)};
  for (Volume* v : {&p.ct, &p.seg, &p.body, &p.pp}) v->path = "phantom";
  std::fill(p.ct.ptr(), p.ct.ptr() + p.ct.numel(), -50.0f);
  const double cx = 28, cy = 62;  // mm: body centre; the canal is centred 28 mm behind it
  for (int64_t k = 0; k < nz; ++k)
    for (int64_t j = 0; j < ny; ++j)
      for (int64_t i = 0; i < nx; ++i) {
        const double x = i * 0.8, y = j * 0.8, z = k * 1.5;
        const int64_t at = (k * ny + j) * nx + i;
        const bool in_height = z >= 6 && z < 30;
        const double rb = std::hypot(x - cx, y - cy);
        const double rc = std::hypot(x - cx, y - (cy - 28));  // canal centre
        const bool body = in_height && rb <= 17;
        const bool arch = in_height && z < 24 && rc >= 8 && rc <= 13 && y < cy - 12;
        const bool spine = in_height && z < 24 && std::abs(x - cx) <= 2.5 && y < cy - 40 && y >= cy - 60;
        if (body) {
          p.body.ptr()[at] = 1;
          p.pp.ptr()[at] = 20;
          p.ct.ptr()[at] = (rb > 15 || z < 8 || z >= 28) ? 500.0f : 100.0f;
        } else if (arch || spine) {
          p.ct.ptr()[at] = 300.0f;
        }
        if (body || arch || spine) p.seg.ptr()[at] = 31;
      }
  return p;
}

double dice(const Volume& a, const Volume& b) {
  int64_t both = 0, na = 0, nb = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const bool x = a.ptr()[i] != 0, y = b.ptr()[i] != 0;
    both += x && y, na += x, nb += y;
  }
  return 2.0 * double(both) / double(na + nb);
}

TEST(VertebraRoi, TheRoiOfAGivenBodyLeavesTheCortexOut) {
  const Phantom p = phantom();
  int64_t cylinder = 0;
  for (int64_t i = 0; i < p.body.numel(); ++i) cylinder += p.body.ptr()[i] != 0;
  RoiOptions o;
  o.vertebrae = {"L1"};
  const VertebraHU v = measure_vertebrae(p.ct, &p.seg, &p.pp, o).vertebrae[0];
  EXPECT_TRUE(v.found);
  EXPECT_EQ(v.source, BodySource::PerVertebra);
  EXPECT_EQ(v.label, 20);
  EXPECT_EQ(v.body.voxels, cylinder);
  EXPECT_NEAR(v.body.volume_ml, double(cylinder) * 0.8 * 0.8 * 1.5 / 1000, 1e-12);
  EXPECT_GT(v.body.mean, 150.0);  // the body with its 500 HU shell
  // The 3 mm margin clears the 2 mm cortex: the ROI is pure trabecular bone.
  EXPECT_EQ(v.roi.mean, 100.0);
  EXPECT_EQ(v.roi.median, 100.0);
  EXPECT_EQ(v.roi.sd, 0.0);
  EXPECT_GT(v.roi.voxels, v.body.voxels / 4);
  EXPECT_FALSE(v.touches_edge);
  EXPECT_EQ(v.note, "");
  EXPECT_FALSE(v.bmd.has_value());
  o.margin_mm = 1.0;  // less than the shell: cortex comes in
  EXPECT_GT(measure_vertebrae(p.ct, &p.seg, &p.pp, o).vertebrae[0].roi.mean, 100.0);

  // A bodies-vs-discs map (1 = bodies, 2 = discs) intersected with the vertebra.
  Volume bodies = p.body;
  bodies.data = p.body.data.clone();
  for (int64_t i = 0; i < bodies.numel(); ++i)
    if (bodies.ptr()[i] == 0) bodies.ptr()[i] = 2.0f * float(i % 2);
  o.margin_mm = 3.0;
  o.body_map = BodyMap::Bodies;
  const VertebraHU w = measure_vertebrae(p.ct, &p.seg, &bodies, o).vertebrae[0];
  EXPECT_EQ(w.source, BodySource::Bodies);
  EXPECT_EQ(w.label, 31);
  EXPECT_EQ(w.body.voxels, cylinder);
  EXPECT_EQ(w.roi.mean, 100.0);
}

// TotalSegmentator's 4 mm kernel on 3 mm voxels is the offsets {-1, 0} along each RAS axis:
// a voxel stays when it and its neighbours towards L, P and I are body. On a 4 x 4 x 4 cube of
// HU = i + 10 j + 100 k that keeps the 3 x 3 x 3 corner away from L, P, I: which corner that is
// in our voxels depends on how the axes run, so the mean HU tells whether it was mapped right.
TEST(VertebraRoi, TotalSegmentatorErosionFollowsTheRasAxes) {
  for (const bool lps : {false, true}) {
    SCOPED_TRACE(lps ? "LPS" : "RAS");
    Affine a = identity_affine();
    for (int r = 0; r < 3; ++r) a[size_t(r)][size_t(r)] = 3.0;
    if (lps) a[0][0] = a[1][1] = -3.0;  // i runs to L, j to P (as DICOM is read)
    Volume ct = make_volume(8, 8, 8, a), pp = make_volume(8, 8, 8, a);
    for (int64_t k = 0; k < 8; ++k)
      for (int64_t j = 0; j < 8; ++j)
        for (int64_t i = 0; i < 8; ++i) {
          const int64_t at = (k * 8 + j) * 8 + i;
          ct.ptr()[at] = float(i + 10 * j + 100 * k);
          if (i >= 2 && i < 6 && j >= 2 && j < 6 && k >= 2 && k < 6) pp.ptr()[at] = 20;
        }
    RoiOptions o;
    o.vertebrae = {"L1"};
    const VertebraHU v = measure_vertebrae(ct, nullptr, &pp, o).vertebrae[0];
    EXPECT_EQ(v.body.voxels, 64);
    ASSERT_EQ(v.ts.voxels, 27);
    // RAS: i, j, k in 3..5 (their L/P/I neighbours i-1.. are body); LPS: i, j in 2..4, k in 3..5.
    const double want = lps ? 3 + 30 + 400 : 4 + 40 + 400;
    EXPECT_DOUBLE_EQ(v.ts.mean, want);
    EXPECT_DOUBLE_EQ(v.ts.median, want);
  }
}

TEST(VertebraRoi, EstimateFindsTheBodyWithoutThePosteriorElements) {
  const Phantom p = phantom();
  RoiOptions o;
  o.vertebrae = {"L1"};
  RoiMasks masks;
  const VertebraHU v = measure_vertebrae(p.ct, &p.seg, nullptr, o, &masks).vertebrae[0];
  EXPECT_TRUE(v.found);
  EXPECT_EQ(v.source, BodySource::Estimate);
  // The opening rounds the body's rims (a ball of 7.5 mm cannot reach into them).
  const double d = dice(masks.body, p.body);
  EXPECT_GT(d, 0.88) << "estimate vs cylinder";
  int64_t posterior = 0, roi_pure = 0, roi_posterior = 0;
  for (int64_t i = 0; i < p.ct.numel(); ++i) {
    posterior += masks.body.ptr()[i] != 0 && p.ct.ptr()[i] == 300;
    roi_pure += masks.roi.ptr()[i] != 0 && p.ct.ptr()[i] == 100;
    roi_posterior += masks.roi.ptr()[i] != 0 && p.ct.ptr()[i] == 300;
  }
  EXPECT_LT(posterior, int64_t(0.02 * double(v.body.voxels))) << "arch and process voxels kept";
  // Where the arch joins the body the mask is thicker, so the opening bulges a little into
  // the arch there: a few voxels of the posterior shell and of the arch reach the ROI.
  EXPECT_LT(double(roi_posterior), 0.001 * double(v.roi.voxels));
  EXPECT_GT(double(roi_pure), 0.98 * double(v.roi.voxels));
  EXPECT_NEAR(v.roi.median, 100.0, 0.0);
  std::cout << "[ figures  ] phantom: estimate Dice " << d << ", body " << v.body.voxels
            << " voxels, ROI " << v.roi.voxels << " voxels (" << v.roi.voxels - roi_pure
            << " cortical), ROI mean " << v.roi.mean << " HU\n";
}

TEST(VertebraRoi, CalibrationGivesBmdAndQctCategories) {
  EXPECT_EQ(qct_category(120.01), QctCategory::Normal);
  EXPECT_EQ(qct_category(120.0), QctCategory::Osteopenia);
  EXPECT_EQ(qct_category(80.0), QctCategory::Osteopenia);
  EXPECT_EQ(qct_category(79.99), QctCategory::Osteoporosis);
  EXPECT_STREQ(qct_category_name(QctCategory::Osteoporosis), "osteoporosis");

  const Phantom p = phantom();
  RoiOptions o;
  o.vertebrae = {"L1"};
  o.calibration = BmdCalibration{0.8, 5.0};  // ROI 100 HU -> 85 mg/cm^3
  const SpineHU r = measure_vertebrae(p.ct, &p.seg, &p.pp, o);
  ASSERT_TRUE(r.vertebrae[0].bmd.has_value());
  EXPECT_DOUBLE_EQ(*r.vertebrae[0].bmd, 85.0);
  EXPECT_EQ(*r.vertebrae[0].qct, QctCategory::Osteopenia);
  EXPECT_FALSE(r.bmd_l1_l2.has_value());  // L2 not asked for

  o.vertebrae = {"L1", "L2"};  // L2 (label 21) is not in the phantom
  const SpineHU r2 = measure_vertebrae(p.ct, &p.seg, &p.pp, o);
  EXPECT_FALSE(r2.vertebrae[1].found);
  EXPECT_FALSE(r2.vertebrae[1].bmd.has_value());
  EXPECT_NE(r2.vertebrae[1].note.find("label 21 (L2) is absent from phantom"), std::string::npos)
      << r2.vertebrae[1].note;
  EXPECT_FALSE(r2.bmd_l1_l2.has_value());
  o.vertebrae = {"L1"};
  o.calibration = BmdCalibration{1.3, -10.0};  // 120: osteopenia, at the boundary
  EXPECT_EQ(*measure_vertebrae(p.ct, &p.seg, &p.pp, o).vertebrae[0].qct, QctCategory::Osteopenia);
  o.calibration = BmdCalibration{1.3, -9.0};  // 121: normal
  EXPECT_EQ(*measure_vertebrae(p.ct, &p.seg, &p.pp, o).vertebrae[0].qct, QctCategory::Normal);
}

TEST(VertebraRoi, BmdOfLOneAndLTwoIsTheirMean) {
  // Two stacked phantoms: L2 below with trabecular HU 60, L1 above with 100 (vertebrae_pp).
  const Phantom p = phantom();
  Volume ct = make_volume(p.ct.nx(), p.ct.ny(), 2 * p.ct.nz(), p.ct.affine);
  Volume pp = make_volume(p.ct.nx(), p.ct.ny(), 2 * p.ct.nz(), p.ct.affine);
  const int64_t n = p.ct.numel();
  for (int64_t i = 0; i < n; ++i) {
    ct.ptr()[i] = p.ct.ptr()[i] == 100 ? 60.0f : p.ct.ptr()[i];
    pp.ptr()[i] = p.pp.ptr()[i] ? 21.0f : 0.0f;
    ct.ptr()[n + i] = p.ct.ptr()[i];
    pp.ptr()[n + i] = p.pp.ptr()[i];
  }
  RoiOptions o;
  o.vertebrae = parse_vertebrae("L1-L2");
  o.calibration = BmdCalibration{1.0, 0.0};
  const SpineHU r = measure_vertebrae(ct, nullptr, &pp, o);  // a pp map stands alone
  ASSERT_EQ(r.vertebrae.size(), 2u);
  EXPECT_EQ(r.vertebrae[0].roi.mean, 100.0);
  EXPECT_EQ(r.vertebrae[1].roi.mean, 60.0);
  ASSERT_TRUE(r.bmd_l1_l2.has_value());
  EXPECT_DOUBLE_EQ(*r.bmd_l1_l2, 80.0);
  EXPECT_EQ(*r.qct_l1_l2, QctCategory::Osteopenia);
  EXPECT_EQ(*r.vertebrae[0].qct, QctCategory::Osteopenia);  // 100
  EXPECT_EQ(*r.vertebrae[1].qct, QctCategory::Osteoporosis);  // 60
}

TEST(VertebraRoi, StatisticsFollowNumpy) {
  Volume ct = make_volume(6, 1, 1);
  const float vals[6] = {5, -3, 10, 7, 7, 1};
  std::copy(vals, vals + 6, ct.ptr());
  HUStats s = hu_stats(ct, {0, 1, 2, 3});  // 5 -3 10 7
  EXPECT_EQ(s.voxels, 4);
  EXPECT_DOUBLE_EQ(s.mean, 4.75);
  EXPECT_DOUBLE_EQ(s.median, 6.0);  // (5 + 7) / 2
  EXPECT_NEAR(s.sd, std::sqrt((0.0625 + 60.0625 + 27.5625 + 5.0625) / 3), 1e-12);
  EXPECT_NEAR(s.volume_ml, 0.004, 1e-15);  // 1 mm^3 voxels
  s = hu_stats(ct, {1, 4, 5});
  EXPECT_DOUBLE_EQ(s.median, 1.0);
  s = hu_stats(ct, {2});
  EXPECT_TRUE(std::isnan(s.sd));
  EXPECT_TRUE(std::isnan(hu_stats(ct, {}).mean));
}

TEST(VertebraRoi, NamesSchemesAndErrors) {
  EXPECT_EQ(parse_vertebrae("L1-L5"), (std::vector<std::string>{"L1", "L2", "L3", "L4", "L5"}));
  EXPECT_EQ(parse_vertebrae("T12, L1"), (std::vector<std::string>{"T12", "L1"}));
  EXPECT_EQ(parse_vertebrae("T11-L1").size(), 3u);
  test::expect_error([] { parse_vertebrae("L5-L1"); }, {"runs upwards", "L1-L5"});
  test::expect_error([] { parse_vertebrae("L1,X2"); }, {"unknown vertebra 'X2'"});
  test::expect_error([] { parse_vertebrae("L1,,L2"); }, {"empty entry"});
  const auto v2 = label_scheme("totalseg_v2"), v1 = label_scheme("totalseg_v1"), vs = label_scheme("verse");
  const std::vector<std::tuple<const LabelScheme*, int64_t, int64_t, int64_t, int64_t>> want{
      {&v2, 31, 27, 32, 50}, {&v1, 22, 18, 23, 41}, {&vs, 20, 24, 19, 1}};
  for (const auto& [s, l1, l5, t12, c1] : want) {
    EXPECT_EQ(s->at("L1"), l1);
    EXPECT_EQ(s->at("L5"), l5);
    EXPECT_EQ(s->at("T12"), t12);
    EXPECT_EQ(s->at("C1"), c1);
  }
  test::expect_error([] { label_scheme("total"); }, {"unknown vertebra label scheme 'total'", "totalseg_v2"});

  const Phantom p = phantom();
  RoiOptions o;
  o.vertebrae = {"L6"};
  test::expect_error([&] { measure_vertebrae(p.ct, &p.seg, nullptr, o); },
                     {"vertebra 'L6' has no label", "L1 L2"});
  o.vertebrae = {"L1"};
  test::expect_error([&] { measure_vertebrae(p.ct, nullptr, nullptr, o); },
                     {"phantom", "needs the vertebrae segmentation"});
  Volume moved = p.seg;
  moved.path = "moved_seg.nii.gz";
  moved.affine[2][3] += 1.5;
  test::expect_error([&] { measure_vertebrae(p.ct, &moved, nullptr, o); },
                     {"moved_seg.nii.gz", "not on the same grid"});
  o.margin_mm = -1;
  test::expect_error([&] { measure_vertebrae(p.ct, &p.seg, nullptr, o); }, {"margin"});
  o.margin_mm = 3;
  o.calibration = BmdCalibration{0, 10};
  test::expect_error([&] { measure_vertebrae(p.ct, &p.seg, nullptr, o); }, {"calibration slope"});
  o.calibration.reset();
  o.margin_mm = 40;  // nothing is 80 mm thick
  const VertebraHU v = measure_vertebrae(p.ct, &p.seg, nullptr, o).vertebrae[0];
  EXPECT_EQ(v.roi.voxels, 0);
  EXPECT_NE(v.note.find("the ROI is empty"), std::string::npos) << v.note;
}

// ------------------------------------------------------------------ example_ct

struct ExampleCt {
  Volume ct, vert, body, pp;
};

const ExampleCt* example_ct() {
  static ExampleCt e;
  static bool done = false, ok = false;
  if (!done) {
    done = true;
    const std::string ex = "totalsegmentator_example/";
    const std::string ct = test::shared_data(ex + "example_ct.nii.gz");
    if (!ct.empty()) {
      e.ct = read_volume(ct);
      e.vert = read_volume(test::shared_data(ex + "spine_report/example_ct_vertebrae_seg.nii.gz"));
      e.body = read_volume(test::shared_data(ex + "spine_report/example_ct_vertebrae_body_seg.nii.gz"));
      e.pp = read_volume(test::shared_data(ex + "spine_report/example_ct_vertebrae_pp_refined_seg.nii.gz"));
      ok = true;
    }
  }
  return ok ? &e : nullptr;
}

TEST(VertebraRoiExampleCt, BodyVolumesEqualTheSpineReport) {
  const ExampleCt* e = example_ct();
  if (!e) GTEST_SKIP() << "no ../shared/data";
  std::ifstream in(test::shared_data("totalsegmentator_example/spine_report/spine_report.json"));
  const json report = json::parse(in)["results"];
  RoiOptions o;  // L1-L5, per-vertebra body map (vertebrae_pp), 3 mm margin
  const SpineHU r = measure_vertebrae(e->ct, nullptr, &e->pp, o);
  ASSERT_EQ(r.vertebrae.size(), 5u);
  for (const auto& v : r.vertebrae) {
    SCOPED_TRACE(v.name);
    EXPECT_TRUE(v.found);
    const double want = report["vertebrae_" + v.name + "_volume_ml"].get<double>();
    EXPECT_NEAR(v.body.volume_ml, want, 0.005 + 1e-9);
    EXPECT_EQ(std::round(v.body.volume_ml * 100) / 100, want);
  }
  EXPECT_EQ(r.vertebrae[0].body.voxels, 1319);  // SOURCES.md
  EXPECT_NEAR(r.vertebrae[0].body.volume_ml, 35.613, 1e-9);
}

// TotalSegmentator's own ROI gives its spine report's HU figures, and, measured as it is on
// the RAS grid, the same figures whatever order the voxels are stored in.
TEST(VertebraRoiExampleCt, TotalSegmentatorRoiGivesTheSpineReportIntensity) {
  const ExampleCt* e = example_ct();
  if (!e) GTEST_SKIP() << "no ../shared/data";
  std::ifstream in(test::shared_data("totalsegmentator_example/spine_report/spine_report.json"));
  const json report = json::parse(in)["results"];
  RoiOptions o;
  const SpineHU r = measure_vertebrae(e->ct, nullptr, &e->pp, o);
  AxisMap m;  // stored as (k, i, j) with k and i reversed: "ILA"
  m.src = {2, 0, 1};
  m.flip = {true, true, false};
  const Volume ct2 = reorient(e->ct, m), pp2 = reorient(e->pp, m);
  ASSERT_EQ(axcodes(ct2.affine), "ILA");
  const SpineHU q = measure_vertebrae(ct2, nullptr, &pp2, o);
  std::ostringstream figures;
  for (size_t n = 0; n < r.vertebrae.size(); ++n) {
    const VertebraHU& v = r.vertebrae[n];
    SCOPED_TRACE(v.name);
    EXPECT_EQ(q.vertebrae[n].ts.voxels, v.ts.voxels);
    EXPECT_NEAR(q.vertebrae[n].ts.mean, v.ts.mean, 1e-9);
    EXPECT_EQ(q.vertebrae[n].ts.median, v.ts.median);
    const std::string k = "vertebrae_" + v.name + "_intensity";
    EXPECT_NEAR(v.ts.mean, report[k].get<double>(), 0.005 + 1e-9);
    EXPECT_EQ(v.ts.median, report[k + "_median"].get<double>());
    EXPECT_LT(v.ts.voxels, v.body.voxels);
    figures << " " << v.name << " " << v.ts.voxels << " voxels mean " << v.ts.mean << " median " << v.ts.median << ";";
  }
  EXPECT_EQ(r.vertebrae[0].ts.voxels, 877);
  std::cout << "[ figures  ] example_ct TotalSegmentator ROI (vertebrae_pp body, 4 mm):" << figures.str() << "\n";
}

TEST(VertebraRoiExampleCt, StatisticsEqualNumpyOnTheDocumentedRoi) {
  const ExampleCt* e = example_ct();
  if (!e) GTEST_SKIP() << "no ../shared/data";
  std::ifstream in(std::filesystem::path(MC_BINARY_DIR) / "fixtures" / "roi" / "roi_reference.json");
  if (!in) GTEST_SKIP() << "no ROI fixtures: run ctest (fixture test roi_fixtures, needs python3-scipy)";
  const json ref = json::parse(in);
  int compared = 0;
  for (const auto& c : ref["cases"]) {
    const std::string name = c["name"].get<std::string>(), source = c["source"].get<std::string>();
    SCOPED_TRACE(name);
    RoiOptions o;
    o.margin_mm = c["margin_mm"].get<double>();
    if (!c["radius_mm"].is_null()) o.estimate_radius_mm = c["radius_mm"].get<double>();
    o.body_map = source == "bodies" ? BodyMap::Bodies : BodyMap::PerVertebra;
    const Volume* bodies = source == "pp" ? &e->pp : source == "bodies" ? &e->body : nullptr;
    const SpineHU r = measure_vertebrae(e->ct, &e->vert, bodies, o);
    for (const auto& v : r.vertebrae) {
      SCOPED_TRACE(v.name);
      const json& want = c["vertebrae"][v.name];
      for (const auto& [part, got] : {std::pair{"body", v.body}, std::pair{"roi", v.roi}, std::pair{"ts", v.ts}}) {
        const json& w = want[part];
        ASSERT_EQ(got.voxels, w["voxels"].get<int64_t>()) << part;
        EXPECT_NEAR(got.volume_ml, w["volume_ml"].get<double>(), 1e-9) << part;
        EXPECT_NEAR(got.mean, w["mean"].get<double>(), 1e-9 * std::abs(w["mean"].get<double>())) << part;
        EXPECT_EQ(got.median, w["median"].get<double>()) << part;
        EXPECT_NEAR(got.sd, w["sd"].get<double>(), 1e-9 * w["sd"].get<double>()) << part;
        ++compared;
      }
    }
  }
  EXPECT_EQ(compared, 5 * 5 * 3);
}

TEST(VertebraRoiExampleCt, BodyEstimateOverlapsTheBodyLabels) {
  const ExampleCt* e = example_ct();
  if (!e) GTEST_SKIP() << "no ../shared/data";
  RoiOptions o;
  RoiMasks est, pp;
  const SpineHU a = measure_vertebrae(e->ct, &e->vert, nullptr, o, &est);
  const SpineHU b = measure_vertebrae(e->ct, nullptr, &e->pp, o, &pp);
  std::ostringstream figures;
  for (size_t n = 0; n < 5; ++n) {
    int64_t both = 0, na = 0, nb = 0;
    for (int64_t i = 0; i < e->ct.numel(); ++i) {
      const bool x = est.body.ptr()[i] == float(n + 1), y = pp.body.ptr()[i] == float(n + 1);
      both += x && y, na += x, nb += y;
    }
    const double d = 2.0 * double(both) / double(na + nb);
    EXPECT_GT(d, 0.85) << o.vertebrae[n];
    figures << " " << o.vertebrae[n] << " " << d;
  }
  const VertebraHU& l1 = b.vertebrae[0];
  std::cout << "[ figures  ] estimate vs vertebrae_pp body Dice:" << figures.str() << "\n"
            << "[ figures  ] example_ct L1 body (pp label 20): " << l1.body.voxels << " voxels, "
            << l1.body.volume_ml << " ml, mean " << l1.body.mean << ", median " << l1.body.median
            << ", SD " << l1.body.sd << " HU; trabecular ROI (3 mm): " << l1.roi.voxels
            << " voxels, mean " << l1.roi.mean << ", median " << l1.roi.median << ", SD "
            << l1.roi.sd << " HU; estimate: body median " << a.vertebrae[0].body.median
            << ", ROI median " << a.vertebrae[0].roi.median << " HU\n";
  // The body is less dense than the whole vertebra (REFERENCE.md: whole-L1 median 157 HU).
  EXPECT_LT(l1.body.median, 157.0);
  EXPECT_LT(l1.roi.median, l1.body.median);
}

}  // namespace
}  // namespace mc::io
