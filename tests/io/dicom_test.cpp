// DICOM series reader (io/dicom.h) and the CT entry point (io/ct_source.h).
//   - geometry, grouping and selection on slice headers built here (no decoder needed);
//   - series written by tests/fixtures/make_dicom_fixtures.py (the dicom_fixtures CTest
//     fixture) with pydicom and gdcmconv: shuffled files, rescale, oblique, compressed, two
//     series, missing slices, unreadable files...;
//   - the real JPEG 2000 series in shared/data against dcm2niix's conversion of it.
// read_ct and conform_to: tests/io/ct_source_test.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/ct_source.h"
#include "io/dicom.h"
#include "test_util.h"

namespace mc::io {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// ------------------------------------------------------------------ headers built here

// An axial stack: slice s at z = z0 + s * step (LPS), 4 x 3 pixels of 0.5 x 0.75 mm.
std::vector<DicomSlice> stack(int n, double step = 2.0, double z0 = -100) {
  std::vector<DicomSlice> v;
  for (int s = 0; s < n; ++s) {
    DicomSlice d;
    d.file = "/data/series/IM" + std::to_string(100 + s);
    d.series_uid = "1.2.3";
    d.description = "Body";
    d.modality = "CT";
    d.rows = 3;
    d.cols = 4;
    d.position = std::array<double, 3>{-10, 20, z0 + s * step};
    d.orientation = std::array<double, 6>{1, 0, 0, 0, 1, 0};
    d.pixel_spacing = std::array<double, 2>{0.75, 0.5};
    v.push_back(d);
  }
  return v;
}

std::string geometry_error(const std::vector<DicomSlice>& s, const DicomOptions& o = {}) {
  try {
    series_geometry(s, o, "series X");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(DicomGeometry, SortsAlongTheNormalNotByFileNameOrInstanceNumber) {
  auto s = stack(5);
  // Files and InstanceNumbers in an order unrelated to position.
  const std::vector<double> z{4, 0, 3, 1, 2};
  for (size_t i = 0; i < s.size(); ++i) {
    (*s[i].position)[2] = -100 + 2 * z[i];
    s[i].instance_number = int64_t(5 - i);
  }
  const auto g = series_geometry(s, {}, "x");
  EXPECT_EQ(g.order, (std::vector<size_t>{1, 3, 4, 2, 0}));
  EXPECT_DOUBLE_EQ(g.spacing_mm, 2.0);
  // RAS: LPS x, y negated. Columns: i along the row direction by the column spacing (0.5).
  const Affine want{{{-0.5, 0, 0, 10}, {0, -0.75, 0, -20}, {0, 0, 2, -100}, {0, 0, 0, 1}}};
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) EXPECT_NEAR(g.affine[r][c], want[r][c], 1e-12) << r << "," << c;
}

TEST(DicomGeometry, ObliqueAffineMapsEveryPixelToItsDicomPosition) {
  const double a = 0.3, b = -0.5;  // rotation about z then x
  const std::array<double, 3> row{std::cos(a), std::sin(a) * std::cos(b), std::sin(a) * std::sin(b)};
  const std::array<double, 3> col{-std::sin(a), std::cos(a) * std::cos(b), std::cos(a) * std::sin(b)};
  const std::array<double, 3> nrm{row[1] * col[2] - row[2] * col[1], row[2] * col[0] - row[0] * col[2],
                                  row[0] * col[1] - row[1] * col[0]};
  auto s = stack(4);
  const std::array<double, 3> p0{3, -7, 11};
  for (int k = 0; k < 4; ++k) {
    const int slot = (k * 3) % 4;  // files out of order
    s[size_t(slot)].orientation = std::array<double, 6>{row[0], row[1], row[2], col[0], col[1], col[2]};
    s[size_t(slot)].position = std::array<double, 3>{p0[0] + 1.5 * k * nrm[0], p0[1] + 1.5 * k * nrm[1],
                                                     p0[2] + 1.5 * k * nrm[2]};
  }
  const auto g = series_geometry(s, {}, "x");
  EXPECT_NEAR(g.spacing_mm, 1.5, 1e-12);
  for (int k = 0; k < 4; ++k)
    for (int j = 0; j < 3; ++j)
      for (int i = 0; i < 4; ++i) {
        // DICOM: P = IPP_k + i * column spacing * row + j * row spacing * col (LPS).
        std::array<double, 3> p;
        for (int r = 0; r < 3; ++r)
          p[size_t(r)] = p0[size_t(r)] + 1.5 * k * nrm[size_t(r)] + i * 0.5 * row[size_t(r)] +
                         j * 0.75 * col[size_t(r)];
        const auto w = apply_affine(g.affine, i, j, k);
        EXPECT_NEAR(w[0], -p[0], 1e-9);
        EXPECT_NEAR(w[1], -p[1], 1e-9);
        EXPECT_NEAR(w[2], p[2], 1e-9);
      }
}

TEST(DicomGeometry, ToleratesRoundingOfPositions) {
  auto s = stack(6, 0.625);
  for (size_t i = 0; i < s.size(); ++i) (*s[i].position)[2] += (i % 2 ? 2e-4 : -2e-4);
  (*s[3].position)[0] += 0.01;  // 0.02 px in-plane: not a tilt
  EXPECT_EQ(geometry_error(s), "");
}

TEST(DicomGeometry, MissingUnevenDuplicateAndTiltedSlicesAreErrors) {
  auto s = stack(7);
  s.erase(s.begin() + 3);
  EXPECT_NE(geometry_error(s).find("1 slice(s) missing"), std::string::npos) << geometry_error(s);
  EXPECT_NE(geometry_error(s).find("IM102"), std::string::npos);

  s = stack(7);
  s.erase(s.begin() + 2, s.begin() + 4);
  EXPECT_NE(geometry_error(s).find("2 slice(s) missing"), std::string::npos) << geometry_error(s);

  s = stack(5);
  (*s[2].position)[2] += 0.5;
  EXPECT_NE(geometry_error(s).find("uneven slice spacing"), std::string::npos) << geometry_error(s);
  DicomOptions loose;
  loose.spacing_rel_tol = 0.3;
  EXPECT_EQ(geometry_error(s, loose), "");

  s = stack(4);
  s[2].position = s[1].position;
  EXPECT_NE(geometry_error(s).find("same position"), std::string::npos) << geometry_error(s);

  s = stack(5);
  for (size_t i = 0; i < s.size(); ++i) {
    (*s[i].position)[1] += 0.4 * double(i);
    s[i].gantry_tilt = 11.3;
  }
  const std::string tilt = geometry_error(s);
  EXPECT_NE(tilt.find("tilt"), std::string::npos) << tilt;
  EXPECT_NE(tilt.find("GantryDetectorTilt 11.3"), std::string::npos) << tilt;
}

TEST(DicomGeometry, InconsistentOrUnusableSlicesAreErrors) {
  auto check = [](std::vector<DicomSlice> s, const std::string& want) {
    const std::string e = geometry_error(s);
    EXPECT_NE(e.find(want), std::string::npos) << "got: " << e;
  };
  auto s = stack(3);
  s[1].rows = 5;
  check(s, "image size");
  s = stack(3);
  (*s[2].pixel_spacing)[0] = 0.8;
  check(s, "PixelSpacing");
  s = stack(3);
  s[0].orientation = std::array<double, 6>{1, 0, 0, 0, 0, -1};
  check(s, "ImageOrientationPatient");
  s = stack(2);
  s[1].frames = 40;
  check(s, "multi-frame");
  s = stack(2);
  s[0].samples = 3;
  s[0].photometric = "RGB";
  check(s, "colour");
  s = stack(2);
  s[1].position.reset();
  check(s, "no ImagePositionPatient");
  s = stack(2);
  for (auto& x : s) x.orientation = std::array<double, 6>{1, 0, 0, 0.5, 1, 0};
  check(s, "not two orthogonal unit vectors");
  s = stack(2);
  s[0].modality_lut = true;
  check(s, "Modality LUT");
  s = stack(2);
  s[1].slope = 0;
  check(s, "RescaleSlope");
}

TEST(DicomGeometry, SingleSliceTakesItsSpacingFromTheHeader) {
  auto s = stack(1);
  s[0].slice_thickness = 3.0;
  auto g = series_geometry(s, {}, "x");
  EXPECT_DOUBLE_EQ(g.spacing_mm, 3.0);
  EXPECT_DOUBLE_EQ(g.affine[2][2], 3.0);
  ASSERT_EQ(g.notes.size(), 1u);
  EXPECT_NE(g.notes[0].find("SliceThickness"), std::string::npos);
  s[0].spacing_between_slices = 2.5;
  EXPECT_DOUBLE_EQ(series_geometry(s, {}, "x").spacing_mm, 2.5);
}

TEST(DicomSeries, GroupsBySeriesUidAndListsThemWhenNoneIsChosen) {
  auto a = stack(3), b = stack(2);
  for (auto& s : b) {
    s.series_uid = "1.2.4";
    s.description = "Lung";
    s.series_number = 7;
  }
  std::vector<DicomSlice> all = a;
  all.insert(all.end(), b.begin(), b.end());
  const auto groups = group_series(all);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].files, 3);
  EXPECT_EQ(groups[1].str(), "1.2.4 \"Lung\" (CT, series 7, 2 files)");

  test::expect_error([&] { select_series(all, {}, "/dir", nullptr, nullptr); },
                     {"/dir", "2 DICOM series", "series_uid", "1.2.3 \"Body\"", "1.2.4 \"Lung\""});
  DicomOptions pick;
  pick.series_uid = "1.2.4";
  pick.series_key = "prep.dicom_series";
  DicomSeriesInfo chosen;
  EXPECT_EQ(select_series(all, pick, "/dir", &chosen, nullptr).size(), 2u);
  EXPECT_EQ(chosen.description, "Lung");
  pick.series_uid = "9.9";
  test::expect_error([&] { select_series(all, pick, "/dir", nullptr, nullptr); },
                     {"no series with SeriesInstanceUID 9.9", "prep.dicom_series", "1.2.3"});
}

TEST(DicomSeries, LocalizersAreLeftOutAndOtherModalitiesRefused) {
  auto s = stack(3);
  s[1].image_type = "ORIGINAL\\PRIMARY\\LOCALIZER";
  s[1].orientation = std::array<double, 6>{1, 0, 0, 0, 0, -1};
  std::vector<std::string> notes;
  const auto kept = select_series(s, {}, "/d", nullptr, &notes);
  EXPECT_EQ(kept.size(), 2u);
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("localizer"), std::string::npos);
  EXPECT_EQ(geometry_error(kept), "");

  for (auto& x : s) x.modality = "MR";
  test::expect_error([&] { select_series(s, {}, "/d", nullptr, nullptr); }, {"modality is MR"});
  test::expect_error([&] { select_series({}, {}, "/d", nullptr, nullptr); }, {"no DICOM images"});
}

// ------------------------------------------------------------------ series written by pydicom

struct Fixtures {
  std::string root;
  json manifest;
};

// Empty root: skip (reason in *why).
Fixtures load_fixtures(std::string* why) {
  Fixtures f;
  if (!dicom_supported()) {
    *why = "built without DICOM support (GDCM)";
    return f;
  }
  const fs::path dir = fs::path(MC_BINARY_DIR) / "fixtures" / "dicom";
  std::ifstream in(dir / "manifest.json");
  if (!in) {
    *why = "no DICOM fixtures: run ctest (fixture test dicom_fixtures, needs python3-pydicom)";
    return f;
  }
  f.manifest = json::parse(in);
  f.root = dir.string();
  return f;
}

#define LOAD_FIXTURES_OR_SKIP(f)        \
  std::string why_;                     \
  const Fixtures f = load_fixtures(&why_); \
  if (f.root.empty()) GTEST_SKIP() << why_

void expect_case(const std::string& root, const std::string& name, const json& c,
                 const DicomOptions& opts = {}) {
  SCOPED_TRACE(name);
  DicomReadInfo info;
  const Volume v = read_dicom_series(root + "/" + c["dir"].get<std::string>(), opts, &info);
  ASSERT_EQ(v.dims, c["dims"].get<std::vector<int64_t>>());
  for (int r = 0; r < 4; ++r)
    for (int col = 0; col < 4; ++col)
      EXPECT_NEAR(v.affine[r][col], c["affine"][r][col].get<double>(), 1e-6) << r << "," << col;
  for (const auto& p : c["points"]) {
    const auto w = apply_affine(v.affine, p[0].get<double>(), p[1].get<double>(), p[2].get<double>());
    for (int a = 0; a < 3; ++a) EXPECT_NEAR(w[size_t(a)], p[3 + a].get<double>(), 1e-5);
  }
  EXPECT_EQ(info.series.uid, c["uid"].get<std::string>());
  EXPECT_EQ(info.series.description, c["description"].get<std::string>());
  EXPECT_EQ(info.slices, c["slices"].get<int64_t>());
  const bool lossy = c.value("lossy", false);
  EXPECT_EQ(info.lossy, lossy);
  EXPECT_EQ(info.ignored.size(), c.value("ignored", size_t(0)));
  if (c.contains("note")) {
    bool found = false;
    for (const auto& n : info.notes) found = found || n.find(c["note"].get<std::string>()) != std::string::npos;
    EXPECT_TRUE(found) << info.summary();
  }
  const auto hu = c["hu"].get<std::vector<double>>();
  ASSERT_EQ(int64_t(hu.size()), v.numel());
  int64_t off = 0;
  double worst = 0;
  for (int64_t i = 0; i < v.numel(); ++i) {
    const double d = std::abs(double(v.ptr()[i]) - hu[size_t(i)]);
    off += d != 0;
    worst = std::max(worst, d);
  }
  if (lossy) {
    EXPECT_GT(worst, 0) << "lossy data read back exactly: is the lossy case really lossy?";
  } else {
    EXPECT_EQ(off, 0) << "voxels differ, worst by " << worst << " HU";
  }
}

TEST(DicomFixtures, EveryReadableSeriesGivesItsGridAndHU) {
  LOAD_FIXTURES_OR_SKIP(f);
  int read = 0;
  for (const auto& [name, c] : f.manifest["cases"].items()) {
    if (!c.contains("hu")) continue;
    expect_case(f.root, name, c);
    ++read;
  }
  EXPECT_GE(read, 9);
}

TEST(DicomFixtures, CompressedTransferSyntaxesDecode) {
  LOAD_FIXTURES_OR_SKIP(f);
  const std::map<std::string, std::string> want{{"rle", "RLE"},
                                                {"jpegls", "JPEG-LS"},
                                                {"jpeg_lossless", "JPEG Lossless"},
                                                {"j2k", "JPEG 2000"},
                                                {"j2k_lossy", "JPEG 2000"},
                                                {"deflated", "Deflate"}};
  for (const auto& [name, fragment] : want) {
    if (!f.manifest["cases"].contains(name)) {
      ADD_FAILURE() << name << " missing (is gdcmconv from libgdcm-tools installed?)";
      continue;
    }
    DicomReadInfo info;
    read_dicom_series(f.root + "/" + name, {}, &info);
    ASSERT_EQ(info.transfer_syntaxes.size(), 1u) << name;
    EXPECT_NE(info.transfer_syntaxes[0].find(fragment), std::string::npos)
        << name << ": " << info.transfer_syntaxes[0];
  }
}

TEST(DicomFixtures, TwoSeriesInOneFolderAreListedAndOneCanBeChosen) {
  LOAD_FIXTURES_OR_SKIP(f);
  const json& c = f.manifest["cases"]["two_series"];
  const std::string dir = f.root + "/two_series";
  const auto listed = list_dicom_series(dir);
  ASSERT_EQ(listed.size(), 2u);
  DicomOptions o;
  o.series_uid = c["pick"]["uid"].get<std::string>();
  expect_case(f.root, "two_series (picked)", c["pick"], o);
}

TEST(DicomFixtures, EveryBadSeriesGivesAClearError) {
  LOAD_FIXTURES_OR_SKIP(f);
  int checked = 0;
  for (const auto& [name, c] : f.manifest["cases"].items()) {
    if (!c.contains("error")) continue;
    SCOPED_TRACE(name);
    const std::string dir = f.root + "/" + c["dir"].get<std::string>();
    std::vector<std::string> frags{dir};
    for (const auto& x : c["error"]) frags.push_back(x.get<std::string>());
    try {
      read_dicom_series(dir);
      ADD_FAILURE() << "no error thrown";
    } catch (const Error& e) {
      for (const auto& fr : frags)
        EXPECT_NE(std::string(e.what()).find(fr), std::string::npos)
            << "message \"" << e.what() << "\" lacks \"" << fr << "\"";
    }
    ++checked;
  }
  EXPECT_GE(checked, 11);
}

// GDCM aborts on some truncated headers and pads truncated pixel data: io/dicom_file.cpp's
// structure check must turn every cut that loses data into an error naming the file. (A cut
// may succeed only when nothing was lost, e.g. GDCM's gzip-style trailer after deflated data.)
TEST(DicomFixtures, AFileCutAnywhereIsAnErrorNeverACrash) {
  LOAD_FIXTURES_OR_SKIP(f);
  const std::string dir = test::temp_dir();
  int64_t cuts = 0, errors = 0;
  for (const char* name : {"shuffled", "rle", "j2k", "implicit", "deflated"}) {
    const fs::path src = *fs::directory_iterator(f.root + "/" + name);
    std::ifstream in(src, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ASSERT_GT(bytes.size(), 500u);
    const std::string cut = dir + "/" + name;
    fs::create_directories(cut);
    auto write = [&](int64_t n) {
      std::ofstream(cut + "/slice", std::ios::binary | std::ios::trunc).write(bytes.data(), n);
    };
    write(int64_t(bytes.size()));
    const Volume whole = read_dicom_series(cut);
    const int64_t step = name == std::string("shuffled") ? 2 : 5;
    for (int64_t n = 0; n < int64_t(bytes.size()); n += step, ++cuts) {
      write(n);
      try {
        const Volume v = read_dicom_series(cut);
        ASSERT_EQ(v.numel(), whole.numel()) << name << " cut to " << n;
        for (int64_t i = 0; i < v.numel(); ++i)
          ASSERT_EQ(v.ptr()[i], whole.ptr()[i]) << name << " cut to " << n << " of " << bytes.size()
                                                << " bytes was read with other values";
      } catch (const Error& e) {
        ++errors;
        const std::string m = e.what();
        if (m.find("no DICOM images") == std::string::npos)  // else: not DICOM any more
          EXPECT_NE(m.find("slice"), std::string::npos) << m;
      }
    }
  }
  EXPECT_GT(cuts, 1000);
  EXPECT_GE(errors, cuts - 8);
}

TEST(DicomFixtures, NoPatientAttributeReachesWhatTheReaderReturnsOrThrows) {
  LOAD_FIXTURES_OR_SKIP(f);
  std::vector<std::string> said;
  for (const auto& [name, c] : f.manifest["cases"].items()) {
    const std::string dir = f.root + "/" + c["dir"].get<std::string>();
    try {
      DicomReadInfo info;
      read_dicom_series(dir, {}, &info);
      said.push_back(info.summary());
      said.push_back(info.series.str());
      for (const auto& x : info.ignored) said.push_back(x);
      for (const auto& x : info.notes) said.push_back(x);
      CtSourceInfo ci;
      read_ct(dir, {}, &ci);
      said.push_back(ci.summary);
    } catch (const Error& e) {
      said.push_back(e.what());
    }
    try {
      for (const auto& s : list_dicom_series(dir)) said.push_back(s.str());
    } catch (const Error& e) {
      said.push_back(e.what());
    }
  }
  ASSERT_GT(said.size(), 30u);
  for (const auto& p : f.manifest["patient"]) {
    const std::string secret = p.get<std::string>();
    for (const auto& s : said) EXPECT_EQ(s.find(secret), std::string::npos) << secret << " in: " << s;
  }
}

// ------------------------------------------------------------------ the real series

struct RealSeries {
  Volume dicom, nifti;
  DicomReadInfo info;
};

const RealSeries* real_series(std::string* why) {
  static RealSeries r;
  static std::string skip;
  static bool done = false;
  if (!done) {
    done = true;
    const std::string dir = test::shared_data("totalsegmentator_example/example_ct_dicom");
    const std::string nii =
        test::shared_data("totalsegmentator_example/example_ct_dicom_converted.nii.gz");
    if (!dicom_supported()) skip = "built without DICOM support (GDCM)";
    else if (dir.empty() || nii.empty()) skip = "no ../shared/data";
    else {
      r.dicom = read_dicom_series(dir, {}, &r.info);
      r.nifti = read_volume(nii);
    }
  }
  *why = skip;
  return skip.empty() ? &r : nullptr;
}

TEST(DicomRealSeries, ReadsToTheGridOfDcm2niixWithIdenticalHU) {
  std::string why;
  const RealSeries* r = real_series(&why);
  if (!r) GTEST_SKIP() << why;
  const Volume& d = r->dicom;
  const Volume& n = r->nifti;
  ASSERT_EQ(d.dims, (std::vector<int64_t>{512, 512, 20}));
  ASSERT_EQ(n.dims, d.dims);
  EXPECT_EQ(axcodes(d.affine), "LPS");  // rows run anterior -> posterior in DICOM
  EXPECT_EQ(axcodes(n.affine), "LAS");  // dcm2niix stores them reversed

  // dcm2niix's voxel (i, ny-1-j, k) is our (i, j, k): conform_to finds that map by itself.
  const Volume m = conform_to(n, d, 1e-3);
  double affine_diff = 0;
  for (int r2 = 0; r2 < 3; ++r2)
    for (int c = 0; c < 4; ++c) affine_diff = std::max(affine_diff, std::abs(m.affine[r2][c] - d.affine[r2][c]));
  int64_t differ = 0, differ_explicit = 0;
  float lo = INFINITY, hi = -INFINITY;
  for (int64_t k = 0; k < 20; ++k)
    for (int64_t j = 0; j < 512; ++j)
      for (int64_t i = 0; i < 512; ++i) {
        const float x = d.at(i, j, k);
        differ += x != m.at(i, j, k);
        differ_explicit += x != n.at(i, 511 - j, k);
        lo = std::min(lo, x), hi = std::max(hi, x);
      }
  EXPECT_EQ(differ, 0);
  EXPECT_EQ(differ_explicit, 0);
  EXPECT_LE(affine_diff, 1e-3);
  EXPECT_EQ(lo, -1024.0f);
  EXPECT_EQ(hi, 1839.0f);
  const auto sp = d.spacing();
  EXPECT_NEAR(sp[0], 0.9765625, 1e-9);
  EXPECT_NEAR(sp[2], 2.0, 1e-9);
  std::cout << "[ figures  ] DICOM vs dcm2niix: " << d.numel() << " voxels, " << differ
            << " differ; affine max |diff| " << affine_diff << " mm; HU " << lo << ".." << hi
            << "; " << r->info.summary() << "\n";
}

TEST(DicomRealSeries, ReportsTheSeriesWithoutPatientData) {
  std::string why;
  const RealSeries* r = real_series(&why);
  if (!r) GTEST_SKIP() << why;
  const DicomReadInfo& i = r->info;
  EXPECT_EQ(i.series.uid, "");  // anonymised: the files carry an empty SeriesInstanceUID
  EXPECT_EQ(i.series.description, "CT Body 3.0");
  EXPECT_EQ(i.series.modality, "CT");
  EXPECT_EQ(i.slices, 20);
  EXPECT_NEAR(i.slice_spacing_mm, 2.0, 1e-9);
  ASSERT_EQ(i.transfer_syntaxes.size(), 1u);
  EXPECT_NE(i.transfer_syntaxes[0].find("JPEG 2000"), std::string::npos) << i.transfer_syntaxes[0];
  EXPECT_FALSE(i.lossy);
  EXPECT_TRUE(i.ignored.empty());
  EXPECT_EQ(r->dicom.datatype, 512);  // uint16 stored
  EXPECT_EQ(r->dicom.slope, 1);
  EXPECT_EQ(r->dicom.inter, -1024);
}

TEST(DicomRealSeries, SegmentationOfTheConversionConformsToTheDicomGrid) {
  std::string why;
  const RealSeries* r = real_series(&why);
  if (!r) GTEST_SKIP() << why;
  const Volume seg = read_volume(test::shared_data("totalsegmentator_example/example_seg_dicom.nii.gz"));
  const Volume m = conform_to(seg, r->dicom);
  int64_t t12 = 0, t11 = 0;
  for (int64_t i = 0; i < m.numel(); ++i) {
    t12 += m.ptr()[i] == 32;
    t11 += m.ptr()[i] == 33;
  }
  EXPECT_EQ(t12, 23576);  // SOURCES.md
  EXPECT_EQ(t11, 9930);
  // A bone label sits on bone: its mean HU on our grid is far above soft tissue.
  double sum = 0;
  for (int64_t i = 0; i < m.numel(); ++i)
    if (m.ptr()[i] == 32) sum += r->dicom.ptr()[i];
  EXPECT_GT(sum / double(t12), 150.0);
}

TEST(DicomBuild, WithoutGdcmTheReaderSaysSo) {
  if (dicom_supported()) {
    test::expect_error([] { read_dicom_series("/no/such/folder"); }, {"/no/such/folder", "not a folder"});
    return;
  }
  test::expect_error([] { read_dicom_series("/some/folder"); },
                     {"/some/folder", "built without DICOM support (GDCM)"});
}

}  // namespace
}  // namespace mc::io
