// The CT entry point (io/ct_source.h): NIfTI files and DICOM folders through one call, and
// conform_to, which puts a volume stored in another axis order onto a CT's grid.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "io/ct_source.h"
#include "test_util.h"

namespace mc::io {
namespace {

namespace fs = std::filesystem;

TEST(CtSource, ReadsNiftiFilesAndDicomFoldersAlike) {
  const std::string nii = test::shared_data("totalsegmentator_example/example_ct_dicom_converted.nii.gz");
  const std::string dir = test::shared_data("totalsegmentator_example/example_ct_dicom");
  if (nii.empty()) GTEST_SKIP() << "no ../shared/data";
  CtSourceInfo a;
  const Volume v = read_ct(nii, {}, &a);
  EXPECT_EQ(a.format, CtFormat::Nifti);
  EXPECT_EQ(v.dims, (std::vector<int64_t>{512, 512, 20}));
  EXPECT_NE(a.summary.find(nii), std::string::npos);
  EXPECT_EQ(ct_format(dir), CtFormat::Dicom);
  EXPECT_TRUE(is_ct_source(nii));
  EXPECT_TRUE(is_ct_source(dir));
  if (!dicom_supported()) {
    test::expect_error([&] { read_ct(dir); }, {dir, "built without DICOM support (GDCM)"});
    return;
  }
  CtSourceInfo b;
  const Volume w = read_ct(dir, {}, &b);
  EXPECT_EQ(b.format, CtFormat::Dicom);
  EXPECT_EQ(b.dicom.slices, 20);
  EXPECT_NE(b.summary.find("CT Body 3.0"), std::string::npos) << b.summary;
  EXPECT_EQ(conform_to(v, w).numel(), w.numel());
}

TEST(CtSource, SaysWhatItAcceptsForAnythingElse) {
  const std::string d = test::temp_dir();
  test::expect_error([&] { ct_format(d + "/absent.nii.gz"); }, {"absent.nii.gz", "no such file"});
  std::ofstream(d + "/slice.dcm") << "x";
  test::expect_error([&] { read_ct(d + "/slice.dcm"); },
                     {"slice.dcm", ".nii, .nii.gz", "folder of a DICOM series"});
  EXPECT_FALSE(is_ct_source(d + "/slice.dcm"));
  EXPECT_FALSE(is_ct_source(d + "/absent.nii"));
  fs::create_directories(d + "/empty");
  if (dicom_supported())  // an empty folder is a DICOM folder without images
    test::expect_error([&] { read_ct(d + "/empty"); }, {"empty", "no DICOM images", "no files"});
}

TEST(CtSource, ConformToUndoesAnyAxisPermutationAndFlip) {
  Affine a = identity_affine();
  a[0][0] = -0.8, a[1][1] = 1.5, a[2][2] = 2.5;
  a[0][3] = 40, a[1][3] = -12, a[2][3] = 7;
  Volume ref = make_volume(5, 4, 3, a);
  ref.path = "ref.nii";
  for (int64_t i = 0; i < ref.numel(); ++i) ref.ptr()[i] = float(i * 3 % 17) - 4.5f;
  AxisMap m;
  m.src = {2, 0, 1};
  m.flip = {true, false, true};
  Volume moved = reorient(ref, m);
  moved.path = "moved.nii";
  ASSERT_NE(moved.dims, ref.dims);
  const Volume back = conform_to(moved, ref);
  ASSERT_EQ(back.dims, ref.dims);
  for (int64_t i = 0; i < ref.numel(); ++i) ASSERT_EQ(back.ptr()[i], ref.ptr()[i]) << i;
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 4; ++c) EXPECT_NEAR(back.affine[r][c], ref.affine[r][c], 1e-12);

  Volume shifted = moved;
  shifted.affine[0][3] += 0.5;  // half a millimetre off: another grid, not another axis order
  test::expect_error([&] { conform_to(shifted, ref); }, {"moved.nii", "ref.nii", "affines differ"});
  Volume rotated = ref;
  rotated.affine[0][0] = rotated.affine[1][0] = 0.8 / std::sqrt(2.0);
  test::expect_error([&] { conform_to(rotated, ref); }, {"not parallel"});
}

}  // namespace
}  // namespace mc::io
