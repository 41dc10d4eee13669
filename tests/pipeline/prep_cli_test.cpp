// mc_prep's command line (pipeline/prep_cli.h): values, repeated options, and every error
// naming the option.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "io/labels.h"
#include "pipeline/prep_cli.h"
#include "test_util.h"

namespace mc {
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
  EXPECT_EQ(c.prep.preprocess.resize, ResizeMode::Fit);
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

// --synthetic --binary: a class column beside the T-score, cut at T <= -2.5.
TEST(PrepCommandLine, SyntheticBinaryTaskHasAClassColumn) {
  const std::string dir = test::temp_dir() + "/syn";
  const PrepCommand c = parse_prep_command({"--synthetic", "12", "--size", "16", "--binary", "osteoporosis,other",
                                            "--out", dir, "--no-progress"});
  std::ostringstream out;
  EXPECT_EQ(run_prep_command(c, out), 0);
  Task t;
  t.classes = {"osteoporosis", "other"};
  t.thresholds = {};
  const LabelTable l = read_labels(dir + "/labels.csv", t);
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
}  // namespace mc
