// mc_prep's command line (pipeline/prep_cli.h): values, repeated options, and every error
// naming the option.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "io/ct_source.h"
#include "io/dicom.h"
#include "io/labels.h"
#include "pipeline/prep_cli.h"
#include "test_util.h"

namespace mc::pipeline {
namespace {
using test::expect_error;

TEST(PrepCommandLine, ParsesOptionsAndRejectsUnknownOnes) {
  const PrepCommand c = parse_prep_command(
      {"--ct-dir", "c", "--seg-dir=s", "--labels", "l.csv", "--out", "o", "--label-id", "20",
       "--window", "400,2000", "--window=40,400", "--volume", "64", "--spacing", "1.5",
       "--margin", "3", "--resize", "fit", "--folds", "5", "--seed", "9", "--workers", "3",
       "--mask-outside"});
  EXPECT_EQ(c.prep.seg_dir, "s");
  EXPECT_EQ(c.prep.preprocess.label_id, 20);
  ASSERT_EQ(c.prep.preprocess.windows.size(), 2u);
  EXPECT_EQ(c.prep.preprocess.windows[1].width, 400);
  EXPECT_EQ(c.prep.preprocess.volume, 64);
  EXPECT_EQ(c.prep.preprocess.resize, io::ResizeMode::Fit);
  EXPECT_EQ(c.prep.folds, 5);
  EXPECT_EQ(c.prep.workers, 3);
  EXPECT_TRUE(c.prep.preprocess.mask_outside);
  EXPECT_TRUE(parse_prep_command({"--help"}).help);
  EXPECT_NE(prep_usage().find("--split-ratios"), std::string::npos);
  EXPECT_EQ(parse_prep_command({"--synthetic", "10", "--out", "d", "--size", "48"}).synthetic_size, 48);
  expect_error([] { parse_prep_command({"--ct-dir", "c", "--out", "o", "--colour", "red"}); },
               {"unknown option \"--colour\""});
  expect_error([] { parse_prep_command({"--ct-dir", "c", "--out", "o", "--volume", "big"}); },
               {"--volume", "\"big\""});
  expect_error([] { parse_prep_command({"--ct-dir", "c"}); }, {"--out is required"});
}

TEST(PrepCommandLine, HuAndDicomOptions) {
  const PrepCommand c = parse_prep_command(
      {"--ct-dir", "c", "--out", "o", "--series-uid", "1.2.3", "--vertebrae", "T12,L1", "--body-seg", "b/{id}.nii.gz",
       "--body-map", "bodies", "--roi-margin", "2", "--calibration", "0.8,-1.5"});
  EXPECT_EQ(c.prep.preprocess.dicom_series, "1.2.3");
  EXPECT_EQ(c.prep.hu.vertebrae, "T12,L1");
  EXPECT_EQ(io::body_seg_path(c.prep.hu, "s7"), "b/s7.nii.gz");
  EXPECT_EQ(c.prep.hu.body_map, io::BodyMap::Bodies);
  EXPECT_EQ(c.prep.hu.margin_mm, 2);
  EXPECT_EQ(c.prep.hu.calibration, (std::vector<double>{0.8, -1.5}));
  EXPECT_FALSE(parse_prep_command({"--ct-dir", "c", "--out", "o", "--no-hu"}).prep.hu.enabled);
  expect_error([] { parse_prep_command({"--ct-dir", "c", "--out", "o", "--calibration", "2"}); }, {"--calibration", "SLOPE,INTERCEPT"});
  expect_error([] { parse_prep_command({"--ct-dir", "c", "--out", "o", "--body-map", "x"}); }, {"--body-map", "per_vertebra or bodies"});
  expect_error([] { parse_prep_command({"--to-nifti", "d"}); }, {"--to-nifti"});
  expect_error([] { parse_prep_command({"--to-nifti", "d", "o.txt"}); }, {"o.txt", ".nii.gz"});
  expect_error([] { parse_prep_command({"--to-nifti", "d", "o.nii.gz", "--ct-dir", "c"}); }, {"--to-nifti goes only with"});
  const PrepCommand t = parse_prep_command({"--to-nifti", "d", "o.nii.gz", "--series-uid", "9"});
  EXPECT_EQ(t.to_nifti_ct, "d");
  EXPECT_EQ(t.to_nifti_out, "o.nii.gz");
  EXPECT_EQ(t.prep.preprocess.dicom_series, "9");
}

// mc_prep --to-nifti on the real series: what read_ct gives, and the voxels of dcm2niix's
// conversion once the axis order is matched.
TEST(PrepCommandLine, ToNiftiWritesTheSeriesAsRead) {
  const std::string dicom = test::shared_data("totalsegmentator_example/example_ct_dicom");
  const std::string nii = test::shared_data("totalsegmentator_example/example_ct_dicom_converted.nii.gz");
  if (dicom.empty() || nii.empty()) GTEST_SKIP() << "no ../shared/data";
  if (!io::dicom_supported()) GTEST_SKIP() << "built without DICOM support (GDCM)";
  const std::string out = test::temp_dir() + "/series.nii.gz";
  std::ostringstream said;
  EXPECT_EQ(run_prep_command(parse_prep_command({"--to-nifti", dicom, out}), said), 0);
  EXPECT_NE(said.str().find("512 x 512 x 20"), std::string::npos) << said.str();
  const io::Volume v = io::read_volume(out), want = io::read_ct(dicom), ref = io::read_volume(nii);
  ASSERT_EQ(v.dims, want.dims);
  EXPECT_TRUE(test::all_close(v.data, want.data, 0, 0));
  const io::Volume on_grid = io::conform_to(ref, v);
  double worst = 0;
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 4; ++c) worst = std::max(worst, std::abs(on_grid.affine[r][c] - v.affine[r][c]));
  EXPECT_LT(worst, 1e-3);
  int64_t differ = 0;
  for (int64_t i = 0; i < v.numel(); ++i) differ += on_grid.ptr()[i] != v.ptr()[i];
  EXPECT_EQ(differ, 0);
}

// --synthetic --binary: a class column beside the T-score, cut at T <= -2.5.
TEST(PrepCommandLine, SyntheticBinaryTaskHasAClassColumn) {
  const std::string dir = test::temp_dir() + "/syn";
  const PrepCommand c = parse_prep_command({"--synthetic", "12", "--size", "16", "--binary", "osteoporosis,other",
                                            "--out", dir, "--no-progress"});
  std::ostringstream out;
  EXPECT_EQ(run_prep_command(c, out), 0);
  io::Task t;
  t.classes = {"osteoporosis", "other"};
  t.thresholds = {};
  const io::LabelTable l = io::read_labels(dir + "/labels.csv", t);
  ASSERT_EQ(l.entries.size(), 12u);
  for (const auto& e : l.entries) EXPECT_EQ(e.label, e.tscore <= -2.5 ? 0 : 1) << e.id << " " << e.tscore;
  std::ifstream f(dir + "/labels.csv");
  std::string header;
  std::getline(f, header);
  EXPECT_EQ(header, "id,tscore,class");
  expect_error([] { parse_prep_command({"--synthetic", "5", "--out", "d", "--binary", "a"}); }, {"--binary", "two class names"});
  expect_error([] { parse_prep_command({"--ct-dir", "c", "--out", "o", "--binary", "a,b"}); }, {"--binary goes with --synthetic"});
}

}  // namespace
}  // namespace mc::pipeline
