// NIfTI reading against nibabel on real scans, round trips, hand-made headers (big-endian,
// NIfTI-2, every datatype) and broken files. In a build without nifti_clib (MC_WITH_NIFTI=OFF)
// every test that reads or writes NIfTI skips, and NiftiBuild checks the error it gets instead.
#if __has_include(<nifti2_io.h>)  // with nifti_clib: check the hand-made layout against it
#define MC_TEST_HAVE_NIFTI_HEADERS 1
#include <nifti2_io.h>
#endif
#include <yaml-cpp/yaml.h>
#include <zlib.h>

#include <array>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <iterator>

#include "io/nifti.h"

#include <sys/resource.h>
#include "test_util.h"

#define MC_SKIP_WITHOUT_NIFTI() \
  if (!::mc::io::nifti_supported()) GTEST_SKIP() << "built without nifti_clib (MC_WITH_NIFTI=OFF)"

namespace mc::io {
namespace {
using test::expect_error;

// A file in this test's fresh directory (temp_dir() empties it, so call it once per test).
std::string temp(const std::string& name) {
  static std::string test, dir;
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string now = std::string(info->test_suite_name()) + "." + info->name();
  if (now != test) test = now, dir = test::temp_dir();
  return dir + "/" + name;
}

std::vector<char> slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}
void spit(const std::string& path, const char* p, size_t n) {
  std::ofstream(path, std::ios::binary).write(p, std::streamsize(n));
}
void spit_gz(const std::string& path, const std::vector<char>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  gzwrite(f, bytes.data(), unsigned(bytes.size()));
  gzclose(f);
}

Affine affine_of(const YAML::Node& n) {
  Affine a;
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) a[size_t(r)][size_t(c)] = n[r][c].as<double>();
  return a;
}

void expect_affine_near(const Affine& a, const Affine& b, double tol, const std::string& what) {
  for (size_t r = 0; r < 4; ++r)
    for (size_t c = 0; c < 4; ++c) EXPECT_NEAR(a[r][c], b[r][c], tol) << what << " [" << r << "][" << c << "]";
}

// A volume whose every voxel differs: value = i + 100 j + 10000 k (exact in float32).
Volume ramp_volume(int64_t nx, int64_t ny, int64_t nz, const Affine& a) {
  Volume v = make_volume(nx, ny, nz, a);
  for (int64_t k = 0; k < nz; ++k)
    for (int64_t j = 0; j < ny; ++j)
      for (int64_t i = 0; i < nx; ++i) v.ptr()[(k * ny + j) * nx + i] = float(i + 100 * j + 10000 * k);
  return v;
}

Affine lps_affine() {
  Affine a = identity_affine();
  a[0][0] = -0.8, a[1][1] = -0.8, a[2][2] = 2.5;
  a[0][3] = 120, a[1][3] = 90, a[2][3] = -300;
  return a;
}

// NIfTI datatype codes (nifti1.h).
enum Dt : int16_t {
  kUint8 = 2, kInt16 = 4, kInt32 = 8, kFloat32 = 16, kComplex64 = 32, kFloat64 = 64,
  kInt8 = 256, kUint16 = 512, kUint32 = 768, kInt64 = 1024, kUint64 = 1280
};

// Hand-made headers are written field by field at the offsets the NIfTI-1 and NIfTI-2 standards
// give, not through nifti_clib's structs: the reader is held to the standard, and this file
// builds without nifti_clib. Where the library is present its layout must agree.
struct N1Header {  // NIfTI-1: 348 bytes
  std::array<char, 348> bytes{};
  template <class T>
  void set(size_t offset, T v) { std::memcpy(bytes.data() + offset, &v, sizeof v); }
  void magic(const char* m) { std::memcpy(bytes.data() + 344, m, 4); }
};
enum N1 : size_t {
  kN1Dim = 40, kN1Datatype = 70, kN1Bitpix = 72, kN1Pixdim = 76, kN1VoxOffset = 108,
  kN1SclSlope = 112, kN1SclInter = 116, kN1QformCode = 252, kN1SformCode = 254, kN1Magic = 344
};
enum N2 : size_t {  // NIfTI-2: 540 bytes
  kN2Magic = 4, kN2Datatype = 12, kN2Bitpix = 14, kN2Dim = 16, kN2Pixdim = 104,
  kN2VoxOffset = 168, kN2SclSlope = 176, kN2SformCode = 348, kN2SrowX = 400
};
#ifdef MC_TEST_HAVE_NIFTI_HEADERS
static_assert(sizeof(nifti_1_header) == 348 && offsetof(nifti_1_header, dim) == kN1Dim &&
              offsetof(nifti_1_header, datatype) == kN1Datatype &&
              offsetof(nifti_1_header, bitpix) == kN1Bitpix &&
              offsetof(nifti_1_header, pixdim) == kN1Pixdim &&
              offsetof(nifti_1_header, vox_offset) == kN1VoxOffset &&
              offsetof(nifti_1_header, scl_slope) == kN1SclSlope &&
              offsetof(nifti_1_header, scl_inter) == kN1SclInter &&
              offsetof(nifti_1_header, qform_code) == kN1QformCode &&
              offsetof(nifti_1_header, sform_code) == kN1SformCode &&
              offsetof(nifti_1_header, magic) == kN1Magic);
static_assert(sizeof(nifti_2_header) == 540 && offsetof(nifti_2_header, magic) == kN2Magic &&
              offsetof(nifti_2_header, datatype) == kN2Datatype &&
              offsetof(nifti_2_header, bitpix) == kN2Bitpix &&
              offsetof(nifti_2_header, dim) == kN2Dim &&
              offsetof(nifti_2_header, pixdim) == kN2Pixdim &&
              offsetof(nifti_2_header, vox_offset) == kN2VoxOffset &&
              offsetof(nifti_2_header, scl_slope) == kN2SclSlope &&
              offsetof(nifti_2_header, sform_code) == kN2SformCode &&
              offsetof(nifti_2_header, srow_x) == kN2SrowX &&
              offsetof(nifti_2_header, srow_y) == kN2SrowX + 32 &&
              offsetof(nifti_2_header, srow_z) == kN2SrowX + 64);
static_assert(kUint8 == DT_UINT8 && kInt16 == DT_INT16 && kInt32 == DT_INT32 &&
              kFloat32 == DT_FLOAT32 && kComplex64 == DT_COMPLEX64 && kFloat64 == DT_FLOAT64 &&
              kInt8 == DT_INT8 && kUint16 == DT_UINT16 && kUint32 == DT_UINT32 &&
              kInt64 == DT_INT64 && kUint64 == DT_UINT64);
#endif

// A NIfTI-1 header built field by field for hand-made files.
N1Header header_n1(std::vector<int16_t> dims, int16_t datatype, int16_t bitpix,
                   float slope = 1, float inter = 0) {
  N1Header h;
  h.set<int32_t>(0, 348);
  h.set<int16_t>(kN1Dim, int16_t(dims.size()));
  for (size_t d = 0; d < 7; ++d) h.set<int16_t>(kN1Dim + 2 * (d + 1), d < dims.size() ? dims[d] : 1);
  for (size_t d = 0; d < 8; ++d) h.set<float>(kN1Pixdim + 4 * d, 1);
  h.set<float>(kN1Pixdim + 4, 2), h.set<float>(kN1Pixdim + 8, 3), h.set<float>(kN1Pixdim + 12, 4);
  h.set(kN1Datatype, datatype);
  h.set(kN1Bitpix, bitpix);
  h.set<float>(kN1VoxOffset, 352);
  h.set(kN1SclSlope, slope);
  h.set(kN1SclInter, inter);
  h.set<int16_t>(kN1QformCode, 0), h.set<int16_t>(kN1SformCode, 0);  // affine = pixdim scaling
  h.magic("n+1");
  return h;
}

// Reverses the bytes of every multi-byte field of a NIfTI-1 header, from the standard's layout
// (independent of nifti_clib): (offset, element size, count).
void swap_n1_header_by_hand(char* h) {
  static const int fields[][3] = {
      {0, 4, 1},   {32, 4, 1},  {36, 2, 1},   {40, 2, 8},   {56, 4, 3},  {68, 2, 4},
      {76, 4, 8},  {108, 4, 3}, {120, 2, 1},  {124, 4, 4},  {140, 4, 2}, {252, 2, 2},
      {256, 4, 6}, {280, 4, 12}};
  for (const auto& f : fields)
    for (int e = 0; e < f[2]; ++e) std::reverse(h + f[0] + e * f[1], h + f[0] + (e + 1) * f[1]);
}

std::string write_hand_made(const std::string& path, const N1Header& h, const void* data,
                            size_t bytes, int elem, bool big_endian, bool gz) {
  std::vector<char> file(352 + bytes, 0);
  std::memcpy(file.data(), h.bytes.data(), h.bytes.size());
  std::memcpy(file.data() + 352, data, bytes);
  if (big_endian) {
    swap_n1_header_by_hand(file.data());
    for (size_t o = 352; o + size_t(elem) <= file.size(); o += size_t(elem))
      std::reverse(file.begin() + long(o), file.begin() + long(o) + elem);
  }
  if (gz) spit_gz(path, file);
  else spit(path, file.data(), file.size());
  return path;
}

// ------------------------------------------------------------------ against nibabel

TEST(NiftiNibabel, EveryFileInSharedDataMatches) {
  MC_SKIP_WITHOUT_NIFTI();
  const std::string root = test::shared_data("");
  if (root.empty()) GTEST_SKIP() << "no ../shared/data";
  const YAML::Node ref =
      YAML::LoadFile(std::string(MC_SOURCE_DIR) + "/tests/fixtures/nifti/nibabel_reference.json");
  int checked = 0;
  for (const auto& kv : ref["files"]) {
    const std::string rel = kv.first.as<std::string>();
    const YAML::Node& r = kv.second;
    SCOPED_TRACE(rel);
    const Volume v = read_nifti(root + "/" + rel);
    ASSERT_EQ(v.dims, r["shape"].as<std::vector<int64_t>>());
    EXPECT_EQ(v.datatype, r["datatype"].as<int>());
    EXPECT_EQ(v.slope, r["slope"].as<double>());
    EXPECT_EQ(v.inter, r["inter"].as<double>());
    expect_affine_near(v.affine, affine_of(r["affine"]), 1e-9, "affine");
    const auto sp = v.spacing();
    for (size_t a = 0; a < 3; ++a) EXPECT_NEAR(sp[a], r["zooms"][a].as<double>(), 1e-5);
    EXPECT_EQ(axcodes(v.affine), r["axcodes"].as<std::string>());

    const float* p = v.ptr();
    double sum = 0, lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < v.numel(); ++i) {
      sum += p[i];
      lo = std::min(lo, double(p[i]));
      hi = std::max(hi, double(p[i]));
    }
    const double ref_sum = r["sum"].as<double>();
    EXPECT_LE(std::abs(sum - ref_sum), 1e-6 * std::max(1.0, std::abs(ref_sum)));
    EXPECT_EQ(lo, r["min"].as<double>());
    EXPECT_EQ(hi, r["max"].as<double>());
    EXPECT_NEAR(sum / double(v.numel()), r["mean"].as<double>(), 1e-9 * std::abs(r["mean"].as<double>()) + 1e-12);
    for (const auto& s : r["samples"])
      EXPECT_EQ(double(v.at(s[0].as<int64_t>(), s[1].as<int64_t>(), s[2].as<int64_t>())),
                s[3].as<double>());

    const Volume c = to_canonical(read_volume(root + "/" + rel));
    const YAML::Node& rc = r["canonical"];
    ASSERT_EQ(c.dims, rc["shape"].as<std::vector<int64_t>>());
    expect_affine_near(c.affine, affine_of(rc["affine"]), 1e-6, "canonical affine");
    EXPECT_EQ(axcodes(c.affine), "RAS");
    for (const auto& s : rc["samples"])
      EXPECT_EQ(double(c.at(s[0].as<int64_t>(), s[1].as<int64_t>(), s[2].as<int64_t>())),
                s[3].as<double>());
    ++checked;
  }
  EXPECT_GE(checked, 13);  // every .nii.gz listed in SOURCES.md
}

// ------------------------------------------------------------------ round trips

TEST(NiftiRoundTrip, F32I16U8PlainAndGzip) {
  MC_SKIP_WITHOUT_NIFTI();
  Affine a = lps_affine();
  a[0][1] = 0.1, a[1][0] = -0.1;  // slightly oblique: the qform and sform both carry it
  const Volume v = ramp_volume(7, 5, 3, a);
  for (auto [name, type] : {std::pair{"f.nii", NiftiType::F32}, std::pair{"f.nii.gz", NiftiType::F32},
                            std::pair{"i.nii.gz", NiftiType::I16}, std::pair{"i.nii", NiftiType::I16}}) {
    SCOPED_TRACE(name);
    write_nifti(temp(name), v, type);
    const Volume r = read_volume(temp(name));
    EXPECT_EQ(r.dims, v.dims);
    EXPECT_EQ(r.datatype, type == NiftiType::F32 ? 16 : 4);
    expect_affine_near(r.affine, v.affine, 1e-5, "affine");
    EXPECT_TRUE(test::all_close(r.data, v.data, 0, 0));
  }
  Volume small = ramp_volume(4, 3, 2, identity_affine());
  for (int64_t i = 0; i < small.numel(); ++i) small.ptr()[i] = float(i % 200);
  write_nifti(temp("m.nii.gz"), small, NiftiType::U8);
  const Volume r = read_volume(temp("m.nii.gz"));
  EXPECT_EQ(r.datatype, 2);
  EXPECT_TRUE(test::all_close(r.data, small.data, 0, 0));
  EXPECT_EQ(slurp(temp("m.nii.gz")).size() > 0, true);
}

TEST(NiftiRoundTrip, IntegerTypesRoundAndRefuseOutOfRange) {
  MC_SKIP_WITHOUT_NIFTI();
  Volume v = make_volume(2, 1, 1);
  v.ptr()[0] = 1.4f, v.ptr()[1] = -2.6f;
  write_nifti(temp("r.nii"), v, NiftiType::I16);
  const Volume r = read_volume(temp("r.nii"));
  EXPECT_EQ(r.ptr()[0], 1.f);
  EXPECT_EQ(r.ptr()[1], -3.f);
  v.ptr()[1] = 40000;
  expect_error([&] { write_nifti(temp("bad.nii"), v, NiftiType::I16); }, {"bad.nii", "40000", "int16"});
  v.ptr()[1] = -1;
  expect_error([&] { write_nifti(temp("bad.nii.gz"), v, NiftiType::U8); }, {"bad.nii.gz", "uint8"});
}

TEST(NiftiHandMade, BigEndianHeaderAndDataReadLikeLittleEndian) {
  MC_SKIP_WITHOUT_NIFTI();
  const std::vector<int16_t> data{-1024, -1, 0, 1, 300, 3071};
  for (bool gz : {false, true}) {
    const auto h = header_n1({3, 2, 1}, kInt16, 16, 2.0f, -1024.0f);
    const std::string be = write_hand_made(temp(gz ? "be.nii.gz" : "be.nii"), h, data.data(),
                                           data.size() * 2, 2, true, gz);
    const std::string le = write_hand_made(temp(gz ? "le.nii.gz" : "le.nii"), h, data.data(),
                                           data.size() * 2, 2, false, gz);
    EXPECT_NE(slurp(be), slurp(le));
    for (const std::string& f : {be, le}) {
      const Volume v = read_volume(f);
      ASSERT_EQ(v.dims, (std::vector<int64_t>{3, 2, 1}));
      for (size_t i = 0; i < data.size(); ++i) EXPECT_EQ(v.ptr()[i], float(data[i] * 2.0 - 1024.0));
      const auto sp = v.spacing();  // no qform/sform: pixdim scaling
      EXPECT_EQ(sp[0], 2);
      EXPECT_EQ(sp[1], 3);
      EXPECT_EQ(sp[2], 4);
    }
  }
}

template <class T>
void check_datatype(int16_t code, std::vector<T> values, float slope, float inter) {
  SCOPED_TRACE(code);
  const auto h = header_n1({int16_t(values.size())}, code, int16_t(8 * sizeof(T)), slope, inter);
  const std::string f = write_hand_made(temp("t" + std::to_string(code) + ".nii"), h, values.data(),
                                        values.size() * sizeof(T), int(sizeof(T)), false, false);
  const Volume v = read_volume(f);
  ASSERT_EQ(v.numel(), int64_t(values.size()));
  const bool scaled = std::isfinite(slope) && slope != 0;
  for (size_t i = 0; i < values.size(); ++i)
    EXPECT_EQ(v.ptr()[i], float(scaled ? double(values[i]) * slope + inter : double(values[i])));
}

TEST(NiftiHandMade, EveryIntegerAndFloatDatatype) {
  MC_SKIP_WITHOUT_NIFTI();
  check_datatype<uint8_t>(kUint8, {0, 31, 255}, 1, 0);
  check_datatype<int8_t>(kInt8, {-128, 0, 127}, 1, 0);
  check_datatype<int16_t>(kInt16, {-32768, 12, 32767}, 1, -1024);
  check_datatype<uint16_t>(kUint16, {0, 1024, 4095}, 1, -1024);  // a common CT encoding
  check_datatype<int32_t>(kInt32, {-1207, 0, 3382}, 1, 0);
  check_datatype<uint32_t>(kUint32, {0, 7, 100000}, 0.5f, 0);
  check_datatype<int64_t>(kInt64, {-5, 0, 5}, 1, 0);
  check_datatype<uint64_t>(kUint64, {0, 5, 9}, 1, 0);
  check_datatype<float>(kFloat32, {-1.5f, 0.25f, 1e3f}, 0, 7);  // slope 0: no scaling at all
  check_datatype<double>(kFloat64, {20, 31, -0.125}, NAN, 0);   // slope NaN: no scaling
}

TEST(NiftiHandMade, NiftiTwoHeader) {
  MC_SKIP_WITHOUT_NIFTI();
  std::vector<char> file(544 + 8 * 8, 0);
  auto set = [&](size_t offset, auto v) { std::memcpy(file.data() + offset, &v, sizeof v); };
  set(0, int32_t(540));
  std::memcpy(file.data() + kN2Magic, "n+2\0\r\n\032\n", 8);
  set(kN2Datatype, int16_t(kFloat64));
  set(kN2Bitpix, int16_t(64));
  const int64_t dim[4] = {3, 2, 2, 2};
  for (size_t d = 0; d < 8; ++d) set(kN2Dim + 8 * d, d < 4 ? dim[d] : int64_t(0));
  for (size_t d = 0; d < 8; ++d) set(kN2Pixdim + 8 * d, 1.0);
  set(kN2VoxOffset, int64_t(544));
  set(kN2SclSlope, 1.0);
  set(kN2SformCode, int32_t(1));
  const double srow[3][4] = {{0, 0, -1.5, 10}, {2, 0, 0, -20}, {0, 3, 0, 30}};
  std::memcpy(file.data() + kN2SrowX, srow, sizeof srow);  // srow_x, srow_y, srow_z follow each other
  for (int i = 0; i < 8; ++i) {
    const double x = i * 1.25 - 3;
    std::memcpy(file.data() + 544 + 8 * i, &x, 8);
  }
  spit_gz(temp("two.nii.gz"), file);
  const Volume v = read_volume(temp("two.nii.gz"));
  EXPECT_EQ(v.version, 2);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(v.ptr()[i], float(i * 1.25 - 3));
  for (size_t r = 0; r < 3; ++r)
    for (size_t c = 0; c < 4; ++c) EXPECT_EQ(v.affine[r][c], srow[r][c]);
  EXPECT_EQ(axcodes(v.affine), "ASL");
}

TEST(NiftiHandMade, SqueezesTrailingSingletonsAndPadsLowRank) {
  MC_SKIP_WITHOUT_NIFTI();
  std::vector<float> d(6, 2.f);
  auto h = header_n1({3, 2, 1, 1, 1}, kFloat32, 32);
  const Volume v = read_nifti(write_hand_made(temp("s.nii"), h, d.data(), 24, 4, false, false));
  EXPECT_EQ(v.dims, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(read_volume(temp("s.nii")).dims, (std::vector<int64_t>{3, 2, 1}));
  h = header_n1({1, 1, 3, 2}, kFloat32, 32);
  write_hand_made(temp("4d.nii"), h, d.data(), 24, 4, false, false);
  EXPECT_EQ(read_nifti(temp("4d.nii")).dims.size(), 4u);
  expect_error([&] { read_volume(temp("4d.nii")); }, {"4d.nii", "4-D", "3-D volume is needed"});
}

// ------------------------------------------------------------------ broken files

TEST(NiftiErrors, MissingFile) {
  MC_SKIP_WITHOUT_NIFTI();
  expect_error([&] { read_nifti(temp("nope.nii.gz")); }, {"nope.nii.gz", "no such file"});
}

TEST(NiftiErrors, TruncatedGzipAnywhereIsDetected) {
  MC_SKIP_WITHOUT_NIFTI();
  Volume v = ramp_volume(40, 30, 20, lps_affine());
  for (int64_t i = 0; i < v.numel(); ++i) v.ptr()[i] = float((i * 7919) % 3001 - 1000);
  write_nifti(temp("full.nii.gz"), v, NiftiType::I16);
  const auto bytes = slurp(temp("full.nii.gz"));
  for (size_t keep : {size_t(200), bytes.size() / 2, bytes.size() - 4}) {
    SCOPED_TRACE(keep);
    spit(temp("cut.nii.gz"), bytes.data(), keep);
    expect_error([&] { read_nifti(temp("cut.nii.gz")); }, {"cut.nii.gz", "truncated gzip"});
  }
  auto flipped = bytes;  // a damaged byte in the deflate data
  flipped[flipped.size() / 2] = char(~flipped[flipped.size() / 2]);
  spit(temp("bad.nii.gz"), flipped.data(), flipped.size());
  expect_error([&] { read_nifti(temp("bad.nii.gz")); }, {"bad.nii.gz", "corrupt gzip"});
}

TEST(NiftiErrors, TruncatedRealScanMissingOnlyItsGzipTrailer) {
  MC_SKIP_WITHOUT_NIFTI();
  const std::string ct = test::shared_data("totalsegmentator_example/example_ct_sm.nii.gz");
  if (ct.empty()) GTEST_SKIP() << "no ../shared/data";
  const auto bytes = slurp(ct);  // all voxels are still in there; only the length field is gone
  spit(temp("ct_sm.nii.gz"), bytes.data(), bytes.size() - 4);
  expect_error([&] { read_nifti(temp("ct_sm.nii.gz")); }, {"ct_sm.nii.gz", "truncated gzip"});
}

TEST(NiftiErrors, WrongMagic) {
  MC_SKIP_WITHOUT_NIFTI();
  const std::vector<float> d(6, 1.f);
  auto h = header_n1({3, 2}, kFloat32, 32);
  h.magic("xyz");
  write_hand_made(temp("magic.nii"), h, d.data(), 24, 4, false, false);
  expect_error([&] { read_nifti(temp("magic.nii")); }, {"magic.nii", "wrong magic"});
  spit(temp("text.nii"), "hello, this is not an image at all", 34);
  expect_error([&] { read_nifti(temp("text.nii")); }, {"text.nii", "not a NIfTI file"});
}

TEST(NiftiErrors, UnsupportedDatatype) {
  MC_SKIP_WITHOUT_NIFTI();
  const std::vector<float> d(12, 1.f);
  const auto h = header_n1({3, 2}, kComplex64, 64);
  write_hand_made(temp("complex.nii.gz"), h, d.data(), 48, 4, false, true);
  expect_error([&] { read_nifti(temp("complex.nii.gz")); },
               {"complex.nii.gz", "unsupported datatype 32"});
}

TEST(NiftiErrors, DimsThatDontMatchTheData) {
  MC_SKIP_WITHOUT_NIFTI();
  const std::vector<float> d(6, 1.f);
  const auto h = header_n1({3, 2, 5}, kFloat32, 32);  // says 30 voxels, holds 6
  write_hand_made(temp("short.nii"), h, d.data(), 24, 4, false, false);
  expect_error([&] { read_nifti(temp("short.nii")); }, {"short.nii", "dims don't match the data size"});
  write_hand_made(temp("short.nii.gz"), h, d.data(), 24, 4, false, true);  // a sound gzip stream
  expect_error([&] { read_nifti(temp("short.nii.gz")); }, {"short.nii.gz", "dims don't match"});
}

TEST(NiftiErrors, InvalidInterceptWithValidSlope) {
  MC_SKIP_WITHOUT_NIFTI();
  const std::vector<int16_t> d(6, 1);
  const auto h = header_n1({3, 2}, kInt16, 16, 1.0f, NAN);
  write_hand_made(temp("inter.nii"), h, d.data(), 12, 2, false, false);
  expect_error([&] { read_nifti(temp("inter.nii")); }, {"inter.nii", "scl_inter"});
}

// Findings of the fuzzers and the bad-input campaign (fuzz/regressions/README.md): each is an
// error naming the file, and none allocates what the header claims.
long max_rss_kb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

TEST(NiftiErrors, VoxOffsetThatIsNotAWholeByteCountInRange) {
  MC_SKIP_WITHOUT_NIFTI();
  const std::vector<float> d(6, 1.f);
  for (float off : {5.8e20f, INFINITY, NAN, -4.f, 352.5f}) {
    SCOPED_TRACE(off);
    auto h = header_n1({3, 2}, kFloat32, 32);
    h.set<float>(kN1VoxOffset, off);
    write_hand_made(temp("off.nii"), h, d.data(), 24, 4, false, false);
    expect_error([&] { read_nifti(temp("off.nii")); }, {"off.nii", "vox_offset", "whole number"});
  }
}

TEST(NiftiErrors, NiftiTwoOffsetPlusSizeBeyondInt64) {
  MC_SKIP_WITHOUT_NIFTI();
  std::vector<char> file(544 + 64, 0);
  auto set = [&](size_t offset, auto v) { std::memcpy(file.data() + offset, &v, sizeof v); };
  set(0, int32_t(540));
  std::memcpy(file.data() + kN2Magic, "n+2\0\r\n\032\n", 8);
  set(kN2Datatype, int16_t(kFloat64));
  set(kN2Bitpix, int16_t(64));
  const int64_t dim[4] = {3, int64_t(1) << 20, int64_t(1) << 20, int64_t(1) << 19};  // 2^62 bytes
  for (size_t d = 0; d < 8; ++d) set(kN2Dim + 8 * d, d < 4 ? dim[d] : int64_t(1));
  for (size_t d = 0; d < 8; ++d) set(kN2Pixdim + 8 * d, 1.0);
  set(kN2SclSlope, 1.0);
  for (int64_t off : {int64_t(1) << 62, int64_t(544)}) {
    SCOPED_TRACE(off);
    set(kN2VoxOffset, off);
    spit(temp("big2.nii"), file.data(), file.size());
    expect_error([&] { read_nifti(temp("big2.nii")); }, {"big2.nii"});
  }
  set(kN2VoxOffset, int64_t(1) << 62);
  spit(temp("big2.nii"), file.data(), file.size());
  expect_error([&] { read_nifti(temp("big2.nii")); }, {"big2.nii", "vox_offset", "is not in 0.."});
}

TEST(NiftiErrors, HugeDimsInASmallFileFailWithoutAllocating) {
  MC_SKIP_WITHOUT_NIFTI();
  const std::vector<int16_t> d(23000, 0);  // 46 KB of voxels
  const long before = max_rss_kb();
  for (int16_t n : {int16_t(1100), int16_t(2000), int16_t(32767)}) {
    SCOPED_TRACE(n);
    const auto h = header_n1({n, n, n}, kInt16, 16);
    write_hand_made(temp("huge.nii.gz"), h, d.data(), d.size() * 2, 2, false, true);
    expect_error([&] { read_nifti(temp("huge.nii.gz")); },
                 {"huge.nii.gz", "dims don't match the data size", "gzip file of", "cannot hold"});
    write_hand_made(temp("huge.nii"), h, d.data(), d.size() * 2, 2, false, false);
    expect_error([&] { read_nifti(temp("huge.nii")); }, {"huge.nii", "dims don't match the data size"});
  }
  EXPECT_LT(max_rss_kb() - before, 64 * 1024) << "the reader allocated what the header claimed";
}

// ------------------------------------------------------------------ either build

// With nifti_clib: a round trip works and a missing file is named. Without it: every NIfTI
// entry point throws naming the file and the reason, never a silent empty volume.
TEST(NiftiBuild, ReadsAndWritesOrSaysBuiltWithoutNiftiClib) {
  const Volume v = ramp_volume(3, 2, 2, lps_affine());
  if (nifti_supported()) {
    write_nifti(temp("v.nii.gz"), v, NiftiType::F32);
    EXPECT_TRUE(test::all_close(read_volume(temp("v.nii.gz")).data, v.data, 0, 0));
    expect_error([&] { read_nifti(temp("absent.nii")); }, {"absent.nii", "no such file"});
    return;
  }
  const std::string reason = "built without nifti_clib";
  expect_error([&] { write_nifti(temp("w.nii.gz"), v, NiftiType::F32); }, {"w.nii.gz", reason});
  expect_error([&] { read_nifti(temp("r.nii")); }, {"r.nii", "cannot read", reason});
  expect_error([&] { read_volume(temp("v.nii.gz")); }, {"v.nii.gz", "cannot read", reason});
}

// ------------------------------------------------------------------ orientation

TEST(NiftiOrientation, CanonicalKeepsEveryVoxelAtItsWorldPosition) {
  Affine pir{};  // VerSe-like: i -> posterior, j -> inferior, k -> right
  pir[1][0] = -1.0, pir[2][1] = -1.0, pir[0][2] = 2.0;
  pir[0][3] = 5, pir[1][3] = 6, pir[2][3] = 7, pir[3][3] = 1;
  for (const Affine& a : {lps_affine(), pir, identity_affine()}) {
    const Volume v = ramp_volume(4, 3, 5, a);
    const Volume c = to_canonical(v);
    EXPECT_EQ(axcodes(c.affine), "RAS");
    EXPECT_EQ(c.numel(), v.numel());
    // every canonical voxel holds the value of the input voxel at the same world position
    for (int64_t k = 0; k < c.nz(); ++k)
      for (int64_t j = 0; j < c.ny(); ++j)
        for (int64_t i = 0; i < c.nx(); ++i) {
          const float val = c.at(i, j, k);
          const int64_t vi = int64_t(val) % 100, vj = int64_t(val) / 100 % 100, vk = int64_t(val) / 10000;
          const auto w1 = apply_affine(c.affine, double(i), double(j), double(k));
          const auto w0 = apply_affine(v.affine, double(vi), double(vj), double(vk));
          for (size_t r = 0; r < 3; ++r) ASSERT_NEAR(w1[r], w0[r], 1e-9);
        }
  }
  EXPECT_EQ(axcodes(pir), "PIR");
  EXPECT_TRUE(canonical_axes(identity_affine()).identity());
}

}  // namespace
}  // namespace mc::io
