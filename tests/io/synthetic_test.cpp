// Generated data: deterministic, the asked-for class mix, L1 and its neighbours present, and
// an L1 density that follows the T-score.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "io/labels.h"
#include "io/preprocess.h"
#include "io/synthetic.h"
#include "test_util.h"

namespace mc::io {
namespace {

SyntheticOptions small(int64_t size = 32) {
  SyntheticOptions o;
  o.size = size;
  return o;
}

TEST(Synthetic, DeterministicForASeed) {
  const SyntheticSubject a = make_synthetic_subject(7, 3, small());
  const SyntheticSubject b = make_synthetic_subject(7, 3, small());
  EXPECT_EQ(a.tscore, b.tscore);
  EXPECT_TRUE(test::all_close(a.ct.data, b.ct.data, 0, 0));
  EXPECT_TRUE(test::all_close(a.seg.data, b.seg.data, 0, 0));
  EXPECT_EQ(a.ct.affine, b.ct.affine);
  const SyntheticSubject c = make_synthetic_subject(8, 3, small());
  EXPECT_FALSE(test::all_close(a.ct.data, c.ct.data, 0, 1));
  EXPECT_EQ(synthetic_tscore(7, 3), a.tscore);  // the cheap path draws the same T-score
}

TEST(Synthetic, ClassMixOf200SubjectsIsLongTailed) {
  std::array<int, kNumClasses> n{};
  for (int64_t i = 0; i < 200; ++i) {
    const double t = synthetic_tscore(0, i);
    EXPECT_EQ(std::round(t * 10) / 10, t);  // one decimal, as a DXA report gives it
    ++n[size_t(classify_tscore(t))];
  }
  // asked: 12% / 35% / 53%, i.e. 24 / 70 / 106 (binomial sd about 4.6 / 6.7 / 7.1)
  EXPECT_GE(n[0], 10);
  EXPECT_LE(n[0], 40);
  EXPECT_GE(n[1], 50);
  EXPECT_LE(n[1], 90);
  EXPECT_GE(n[2], 85);
  EXPECT_LE(n[2], 130);
  EXPECT_GT(n[2], n[1]);
  EXPECT_GT(n[1], n[0]);
}

TEST(Synthetic, L1AndNeighboursArePresentAndLookLikeCT) {
  for (int64_t i = 0; i < 3; ++i) {
    const SyntheticSubject s = make_synthetic_subject(1, i, small(48));
    std::map<int, int64_t> count;
    for (float v : s.seg.data.to_vector<float>()) ++count[int(v)];
    EXPECT_GT(count[31], 1000) << s.id;  // L1
    EXPECT_GT(count[30], 100) << s.id;   // L2
    EXPECT_GT(count[32], 100) << s.id;   // T12
    double lo = 1e9, hi = -1e9;
    for (float v : s.ct.data.to_vector<float>()) {
      EXPECT_EQ(v, std::round(v));
      lo = std::min(lo, double(v)), hi = std::max(hi, double(v));
    }
    EXPECT_LT(lo, -50);  // fat
    EXPECT_GT(hi, 500);  // cortical bone
    EXPECT_EQ(axcodes(to_canonical(s.ct).affine), "RAS");
  }
}

TEST(Synthetic, L1DensityFollowsTheTScore) {
  // Median HU inside L1 (what a radiologist would read) against T over 16 subjects.
  std::vector<double> t, hu;
  for (int64_t i = 0; i < 16; ++i) {
    const SyntheticSubject s = make_synthetic_subject(2, i, small(32));
    const Volume mask = select_label(s.seg, 31);
    t.push_back(s.tscore);
    hu.push_back(mask_stats(s.ct, mask).median_hu);
  }
  double mt = 0, mh = 0;
  for (size_t i = 0; i < t.size(); ++i) mt += t[i], mh += hu[i];
  mt /= double(t.size()), mh /= double(t.size());
  double num = 0, dt = 0, dh = 0;
  for (size_t i = 0; i < t.size(); ++i) {
    num += (t[i] - mt) * (hu[i] - mh);
    dt += (t[i] - mt) * (t[i] - mt);
    dh += (hu[i] - mh) * (hu[i] - mh);
  }
  const double r = num / std::sqrt(dt * dh);
  EXPECT_GT(r, 0.5);   // learnable...
  EXPECT_LT(r, 0.99);  // ...but not a lookup table
}

TEST(Synthetic, WrittenDataSetReadsBackTheSameWhateverTheWorkers) {
  const std::string root = test::temp_dir();
  SyntheticOptions o = small(24);
  o.count = 3, o.seed = 11;
  o.workers = 1;
  const auto one = write_synthetic_dataset(root + "/w1", o);
  o.workers = 3;
  write_synthetic_dataset(root + "/w3", o);
  auto bytes = [](const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  for (const auto& s : one) {
    for (const char* sub : {"/ct/", "/seg/"})
      EXPECT_EQ(bytes(root + "/w1" + sub + s.id + ".nii.gz"), bytes(root + "/w3" + sub + s.id + ".nii.gz"));
    const Volume ct = read_volume(root + "/w1/ct/" + s.id + ".nii.gz");
    const Volume seg = read_volume(root + "/w1/seg/" + s.id + ".nii.gz");
    EXPECT_EQ(ct.datatype, 4);   // int16
    EXPECT_EQ(seg.datatype, 2);  // uint8
    const SyntheticSubject again = make_synthetic_subject(11, std::stoll(s.id.substr(3)), o);
    EXPECT_TRUE(test::all_close(ct.data, again.ct.data, 0, 0));
  }
  EXPECT_EQ(bytes(root + "/w1/labels.csv"), bytes(root + "/w3/labels.csv"));
  const LabelTable t = read_labels(root + "/w1/labels.csv");
  ASSERT_EQ(t.entries.size(), 3u);
  for (const auto& s : one) EXPECT_EQ(t.find(s.id)->label, s.label);
  EXPECT_NE(synthetic_summary(one, root).find("mc_prep --ct-dir"), std::string::npos);
}

}  // namespace
}  // namespace mc::io
