// mc_prep on DICOM series: folders of slices in the pairing rule, segmentations made on
// another grid of the same voxels (dcm2niix's) conformed onto the DICOM grid, several series
// named in the manifest or picked by data.raw.dicom_series, and no patient attribute in the
// manifest, the caches or the summary. Fixtures: tests/fixtures/make_dicom_fixtures.py (CTest
// runs it first) and the real series in ../shared/data.
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/cache.h"
#include "io/ct_source.h"
#include "io/dicom.h"
#include "io/prep.h"
#include "test_util.h"

namespace mc::io {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

const ManifestRow& row_of(const PrepResult& r, const std::string& id) {
  for (const auto& row : r.rows)
    if (row.id == id) return row;
  throw Error("no manifest row " + id);
}

// A mask on ct's grid: label 31 on an L-shaped block that is not symmetric along any axis, so
// that a segmentation read on a flipped grid and not put back lands on other voxels.
Volume l1_mask(const Volume& ct) {
  Volume m = make_volume(ct.nx(), ct.ny(), ct.nz(), ct.affine);
  for (int64_t k = 1; k < ct.nz() - 1; ++k)
    for (int64_t j = 1; j < ct.ny() / 2; ++j)
      for (int64_t i = 2; i < ct.nx() - 3; ++i)
        if (j < 3 || i < 5) m.ptr()[(k * ct.ny() + j) * ct.nx() + i] = 31;
  return m;
}

json dicom_fixtures(std::string* why) {
  if (!dicom_supported()) {
    *why = "built without DICOM support (GDCM)";
    return {};
  }
  std::ifstream in(fs::path(MC_BINARY_DIR) / "fixtures" / "dicom" / "manifest.json");
  if (!in) {
    *why = "no DICOM fixtures: run ctest (fixture test dicom_fixtures, needs python3-pydicom)";
    return {};
  }
  return json::parse(in);
}

TEST(PrepDicom, SeriesFoldersArePairedPreparedAndNamedWithoutPatientData) {
  std::string why;
  const json fx = dicom_fixtures(&why);
  if (fx.is_null()) GTEST_SKIP() << why;
  const fs::path src = fs::path(MC_BINARY_DIR) / "fixtures" / "dicom";
  const std::string root = test::temp_dir();
  fs::create_directories(root + "/ct/b"), fs::create_directories(root + "/seg");
  fs::copy(src / "shuffled", root + "/ct/a", fs::copy_options::recursive);     // <id>/ = the series
  fs::copy(src / "rescale", root + "/ct/b/ct", fs::copy_options::recursive);   // <id>/ct/ = the series
  fs::copy(src / "two_series", root + "/ct/c", fs::copy_options::recursive);   // two series
  fs::copy(src / "missing_slice", root + "/ct/d", fs::copy_options::recursive);
  EXPECT_EQ(list_ct_subjects(root + "/ct"), (std::vector<std::string>{"a", "b", "c", "d"}));

  // Masks: a's on its grid with the rows reversed (as dcm2niix writes them), b's on its own.
  const Volume ct_a = read_ct(root + "/ct/a"), ct_b = read_ct(root + "/ct/b/ct");
  AxisMap rows_reversed;
  rows_reversed.flip = {false, true, false};
  write_nifti(root + "/seg/a.nii.gz", reorient(l1_mask(ct_a), rows_reversed), NiftiType::U8);
  write_nifti(root + "/seg/b.nii.gz", l1_mask(ct_b), NiftiType::U8);
  write_nifti(root + "/seg/c.nii.gz", l1_mask(ct_b), NiftiType::U8);
  write_nifti(root + "/seg/d.nii.gz", l1_mask(ct_b), NiftiType::U8);
  std::ofstream(root + "/labels.csv") << "id,tscore\na,-3.0\nb,-1.5\nc,0.5\nd,0.2\n";
  std::ofstream(root + "/split.csv") << "id,split\na,train\nb,test\nc,train\nd,train\n";

  PrepOptions o;
  o.ct_dir = root + "/ct", o.seg_dir = root + "/seg", o.labels_csv = root + "/labels.csv";
  o.split_file = root + "/split.csv";
  o.out_dir = root + "/out";
  o.progress = false;
  o.preprocess.volume = 8, o.preprocess.spacing_mm = 1, o.preprocess.margin_mm = 0;
  o.preprocess.min_fov_mm = 5;  // the generated series are 12 x 0.7 mm: smaller than any vertebra
  o.hu.vertebrae = "L1";
  const PrepResult r = run_prep(o);
  EXPECT_EQ(r.ok, 2);
  EXPECT_EQ(r.failed, 2);

  // The statistics are those of the mask on the DICOM grid: the flipped mask was put back.
  for (const auto& [id, ct] : {std::pair{"a", &ct_a}, std::pair{"b", &ct_b}}) {
    SCOPED_TRACE(id);
    const ManifestRow& row = row_of(r, id);
    ASSERT_EQ(row.status, "ok") << row.reason;
    const SubjectStats want = mask_stats(*ct, select_label(l1_mask(*ct), 31));
    EXPECT_EQ(row.stats.voxels, want.voxels);
    EXPECT_DOUBLE_EQ(row.stats.mean_hu, want.mean_hu);
    EXPECT_DOUBLE_EQ(row.stats.median_hu, want.median_hu);
  }
  EXPECT_EQ(row_of(r, "b").ct, root + "/ct/b/ct");
  const std::string two = row_of(r, "c").reason;
  for (const char* s : {"2 DICOM series", "Body 1.0", "Lung 3.0", "data.raw.dicom_series"})
    EXPECT_NE(two.find(s), std::string::npos) << s << " not in: " << two;
  EXPECT_NE(row_of(r, "d").reason.find("missing"), std::string::npos) << row_of(r, "d").reason;

  // Patient attributes of the fixtures (PatientName, PatientID, ...) appear nowhere we write.
  std::vector<std::string> written = {slurp(r.manifest), prep_summary(r)};
  for (const auto& [split, path] : r.caches) written.push_back(slurp(path));
  ASSERT_FALSE(fx["patient"].empty());
  for (const auto& p : fx["patient"])
    for (const auto& w : written) EXPECT_EQ(w.find(p.get<std::string>()), std::string::npos) << p;

  // data.raw.dicom_series picks one of the two series.
  const std::string uid_b = fx["cases"]["two_series"]["pick"]["uid"].get<std::string>();
  fs::remove_all(root + "/ct/a"), fs::remove_all(root + "/ct/b"), fs::remove_all(root + "/ct/d");
  const Volume picked = read_ct(root + "/ct/c", {.series_uid = uid_b});
  write_nifti(root + "/seg/c.nii.gz", l1_mask(picked), NiftiType::U8);
  o.preprocess.dicom_series = uid_b;
  o.split_file.clear();
  o.ratios = {1, 0, 0};
  o.out_dir = root + "/out2";
  const PrepResult r2 = run_prep(o);
  ASSERT_EQ(row_of(r2, "c").status, "ok") << row_of(r2, "c").reason;
  EXPECT_EQ(row_of(r2, "c").stats.voxels, mask_stats(picked, select_label(l1_mask(picked), 31)).voxels);
}

// The real series with TotalSegmentator's segmentation of dcm2niix's conversion: the same
// statistics as the NIfTI route (conversion + its segmentation, both on dcm2niix's grid).
TEST(PrepDicom, RealSeriesGivesTheStatisticsOfItsNiftiConversion) {
  const std::string dicom = test::shared_data("totalsegmentator_example/example_ct_dicom");
  const std::string nii = test::shared_data("totalsegmentator_example/example_ct_dicom_converted.nii.gz");
  const std::string seg = test::shared_data("totalsegmentator_example/example_seg_dicom.nii.gz");
  if (dicom.empty() || nii.empty() || seg.empty()) GTEST_SKIP() << "no ../shared/data";
  if (!dicom_supported()) GTEST_SKIP() << "built without DICOM support (GDCM)";
  const std::string root = test::temp_dir();
  fs::create_directories(root + "/ct"), fs::create_directories(root + "/seg");
  fs::create_directory_symlink(dicom, root + "/ct/ex");
  fs::create_symlink(seg, root + "/seg/ex.nii.gz");
  PrepOptions o;
  o.ct_dir = root + "/ct", o.seg_dir = root + "/seg", o.out_dir = root + "/out";
  o.progress = false;
  o.ratios = {1, 0, 0};
  o.preprocess.label_id = 32;  // T12: the series is 20 slices of the lower chest, no L1
  o.preprocess.volume = 32, o.preprocess.spacing_mm = 2;
  o.hu.labels = "totalseg_v2";
  o.hu.vertebrae = "T12";
  const PrepResult r = run_prep(o);
  const ManifestRow& row = row_of(r, "ex");
  ASSERT_EQ(row.status, "ok") << row.reason;
  const SubjectStats want = mask_stats(read_volume(nii), select_label(read_volume(seg), 32));
  EXPECT_EQ(row.stats.voxels, 23576);
  EXPECT_EQ(row.stats.voxels, want.voxels);
  EXPECT_DOUBLE_EQ(row.stats.mean_hu, want.mean_hu);
  EXPECT_DOUBLE_EQ(row.stats.median_hu, want.median_hu);
  ASSERT_TRUE(row.hu) << row.hu_note;
  EXPECT_TRUE(row.hu->vertebrae.at(0).found);
}

}  // namespace
}  // namespace mc::io
