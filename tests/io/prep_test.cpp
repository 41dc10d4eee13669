// mc_prep's library: labels, splits, pairing, progress, and whole runs on
// real scans and on generated data with broken subjects.
#include <yaml-cpp/yaml.h>

#include <zlib.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <span>
#include <sstream>

#include "io/cache.h"
#include "io/csv.h"
#include "io/prep.h"
#include "io/progress.h"
#include "io/synthetic.h"
#include "io/text.h"
#include "test_util.h"

namespace mc::io {
namespace {
using test::expect_error;

namespace fs = std::filesystem;

void write_text(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

const ManifestRow& row_of(const PrepResult& r, const std::string& id) {
  for (const auto& row : r.rows)
    if (row.id == id) return row;
  throw Error("no manifest row " + id);
}

// ------------------------------------------------------------------ labels

TEST(PrepLabels, WhoBandsAndClassNamesInOnePlace) {
  EXPECT_EQ(classify_tscore(-2.5), 0);
  EXPECT_EQ(classify_tscore(-3.7), 0);
  EXPECT_EQ(classify_tscore(-2.49), 1);
  EXPECT_EQ(classify_tscore(-1.01), 1);
  EXPECT_EQ(classify_tscore(-1.0), 2);
  EXPECT_EQ(classify_tscore(1.2), 2);
  EXPECT_EQ(classify_tscore(-2.0, {-2.0, 0.0}), 0);  // configurable
  EXPECT_EQ(classify_tscore(-0.5, {-2.0, 0.0}), 1);
  EXPECT_STREQ(class_name(0), "osteoporosis");
  EXPECT_STREQ(class_name(2), "normal");
  EXPECT_STREQ(class_name(-1), "unknown");
  EXPECT_EQ(class_index("Osteopenia"), 1);
  EXPECT_EQ(class_index("2"), 2);
  EXPECT_EQ(class_index("fracture"), -1);
}

TEST(PrepLabels, TScoresClassesAndMissingValues) {
  std::istringstream in(
      "# DXA results\nSubject ID;T-score;Class\n"
      "a;-2.7;\nb;-1.2;\nc; 0.4 ;\nd;NA;\ne;;osteoporosis\nf;-0.5;2\n");
  const LabelTable t = parse_labels(in, "t.csv");
  ASSERT_EQ(t.entries.size(), 6u);
  EXPECT_EQ(t.find("a")->label, 0);
  EXPECT_EQ(t.find("b")->label, 1);
  EXPECT_EQ(t.find("c")->label, 2);
  EXPECT_EQ(t.find("c")->tscore, 0.4);
  EXPECT_EQ(t.find("d")->label, -1);  // no value: no label
  EXPECT_TRUE(std::isnan(t.find("d")->tscore));
  EXPECT_EQ(t.find("e")->label, 0);
  EXPECT_EQ(t.find("f")->label, 2);   // both given, and they agree
  EXPECT_EQ(t.find("f")->line, 8);
  EXPECT_EQ(t.find("zz"), nullptr);
}

// Issue 11: the class column won over a disagreeing T-score for 39 of 40 subjects, silently.
TEST(PrepLabels, TScoreAndClassThatDisagreeAreAnErrorListingTheSubjects) {
  std::istringstream in("id,tscore,class\na,-2.7,osteoporosis\nb,-0.5,osteoporosis\nc,-1.5,normal\nd,,normal\n");
  expect_error([&] { parse_labels(in, "both.csv"); },
               {"both.csv: the T-score and the class column disagree for 2 subject(s)",
                "b (line 3): T-score -0.5 is normal, the class column says osteoporosis",
                "c (line 4): T-score -1.5 is osteopenia, the class column says normal"});
}

TEST(PrepLabels, ErrorsNameFileLineAndValue) {
  auto parse = [](const std::string& text) {
    std::istringstream in(text);
    return parse_labels(in, "labels.csv");
  };
  expect_error([&] { parse("id,tscore\na,-1.0\nb,-2,1\n"); }, {"labels.csv:3", "3 fields"});
  expect_error([&] { parse("id,tscore\na,-1.0\nb,low\n"); },
               {"labels.csv:3", "\"low\"", "subject b", "not a number"});
  expect_error([&] { parse("id,tscore\na,-1.0\na,-2.0\n"); },
               {"labels.csv:3", "duplicate subject a", "line 2"});
  expect_error([&] { parse("patient,bmd\na,0.9\n"); }, {"labels.csv", "missing column", "bmd"});
  expect_error([&] { parse("tscore\n-1\n"); }, {"labels.csv", "missing column", "subject id"});
  expect_error([&] { parse("id,class\na,fracture\n"); }, {"labels.csv:2", "\"fracture\""});
}

// ------------------------------------------------------------------ splits

TEST(PrepSplit, StratifiedDeterministicAndOrderFree) {
  std::vector<std::string> ids;
  std::vector<int64_t> labels;
  for (int i = 0; i < 100; ++i) {
    ids.push_back("s" + std::to_string(i));
    labels.push_back(i < 12 ? 0 : i < 47 ? 1 : 2);
  }
  const auto a = stratified_split(ids, labels, {0.8, 0.1, 0.1}, 5);
  EXPECT_EQ(a, stratified_split(ids, labels, {0.8, 0.1, 0.1}, 5));
  EXPECT_NE(a, stratified_split(ids, labels, {0.8, 0.1, 0.1}, 6));
  std::map<std::string, std::array<int, 3>> per;
  for (size_t i = 0; i < ids.size(); ++i) ++per[a[i]][size_t(labels[i])];
  EXPECT_EQ(per["test"][0], 1);  // round(1.2) = 1
  EXPECT_EQ(per["test"][1], 4);  // round(3.5) = 4
  EXPECT_EQ(per["test"][2], 5);  // round(5.3) = 5
  EXPECT_EQ(per["val"], per["test"]);
  EXPECT_EQ(per["train"][0] + per["train"][1] + per["train"][2], 80);
  // listing the subjects in another order changes nothing
  std::vector<std::string> rid(ids.rbegin(), ids.rend());
  std::vector<int64_t> rl(labels.rbegin(), labels.rend());
  const auto b = stratified_split(rid, rl, {0.8, 0.1, 0.1}, 5);
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(b[ids.size() - 1 - i], a[i]);
  // a rare class still reaches val and test
  const auto c = stratified_split({"x", "y", "z", "w"}, {0, 0, 0, 1}, {0.8, 0.1, 0.1}, 1);
  EXPECT_EQ(std::count(c.begin(), c.begin() + 3, "train"), 1);
  EXPECT_EQ(parse_split_ratios("80,10,10").train, 0.8);
  expect_error([] { parse_split_ratios("0.8,0.2"); }, {"0.8,0.2", "TRAIN,VAL,TEST"});
}

TEST(PrepSplit, FoldsAreBalancedAndSplitFilesChecked) {
  std::vector<std::string> ids;
  std::vector<int64_t> labels;
  for (int i = 0; i < 23; ++i) ids.push_back("s" + std::to_string(i)), labels.push_back(i % 3);
  const auto f = stratified_folds(ids, labels, 5, 3);
  std::array<int, 5> size{};
  for (int x : f) ++size[size_t(x)];
  EXPECT_LE(*std::max_element(size.begin(), size.end()) - *std::min_element(size.begin(), size.end()), 1);
  EXPECT_EQ(f, stratified_folds(ids, labels, 5, 3));

  const std::string dir = test::temp_dir();
  write_text(dir + "/split.csv", "id,split\na,train\nb,test\n");
  EXPECT_EQ(read_split_file(dir + "/split.csv").at("b"), "test");
  write_text(dir + "/dup.csv", "a,train\nb,val\na,test\n");
  expect_error([&] { read_split_file(dir + "/dup.csv"); }, {"dup.csv:3", "duplicate subject a"});
}

// ------------------------------------------------------------------ progress

TEST(PrepProgress, RendersRateAndEtaAndDegradesToLines) {
  EXPECT_EQ(Progress::render("prep", 30, 120, 10.0, ""),
            "prep 30/120 [######------------------] 25% 3.00/s ETA 0:30");
  EXPECT_EQ(Progress::format_duration(3725), "1:02:05");
  EXPECT_EQ(Progress::render("x", 5, 0, 2.0, "2 failed"), "x 5 2.50/s 2 failed");
  std::ostringstream log;
  {
    Progress p("work", 100, log, false, 1e9);
    for (int i = 0; i < 100; ++i) p.tick();
  }
  const std::string text = log.str();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 11);  // the first tick, every 10%, the end
  EXPECT_EQ(text.find('\r'), std::string::npos);
  EXPECT_NE(text.find("100/100"), std::string::npos);
  EXPECT_NE(text.find("total)"), std::string::npos);
}

// Not a terminal: 10% steps print only when the gap since the last line allows it (the programs
// use Progress::kMinGapSeconds), so a fast loop logs its first line and the final one.
TEST(PrepProgress, PlainLinesKeepTheirMinimumGap) {
  std::ostringstream log;
  {
    Progress p("work", 100, log, false, 1e9, 1e9);
    for (int i = 0; i < 100; ++i) p.tick();
  }
  const std::string text = log.str();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2) << text;
  EXPECT_EQ(text.find("work 1/100"), 0u) << text;
  EXPECT_NE(text.find("100/100"), std::string::npos);
  std::ostringstream unknown;  // no total: time alone decides, and the gap holds too
  {
    Progress p("scan", 0, unknown, false, 0, 1e9);
    for (int i = 0; i < 50; ++i) p.tick();
  }
  const std::string u = unknown.str();
  EXPECT_EQ(std::count(u.begin(), u.end(), '\n'), 2) << u;
  EXPECT_EQ(Progress::kMinGapSeconds, 10);
}

TEST(PrepProgress, ParallelForVisitsEveryIndexAndRethrows) {
  std::vector<std::atomic<int>> seen(1000);
  std::ostringstream sink;
  Progress p("pf", 1000, sink, true);
  parallel_for(1000, 4, [&](int64_t i) { ++seen[size_t(i)]; }, &p);
  for (auto& s : seen) ASSERT_EQ(s.load(), 1);
  EXPECT_EQ(p.done(), 1000);
  expect_error([] { parallel_for(50, 3, [](int64_t i) { MC_CHECK(i != 17, "boom at ", i); }); },
               {"boom at 17"});
}

// ------------------------------------------------------------------ whole runs

TEST(PrepReal, ManifestOfTheTotalSegmentatorExample) {
  const std::string data = test::shared_data("totalsegmentator_example");
  if (data.empty()) GTEST_SKIP() << "no ../shared/data";
  const std::string root = test::temp_dir();
  fs::create_directories(root + "/ct"), fs::create_directories(root + "/seg");
  fs::create_directories(root + "/bodies");
  auto link = [&](const std::string& src, const std::string& dst) { fs::create_symlink(data + "/" + src, root + "/" + dst); };
  link("example_ct.nii.gz", "ct/ex.nii.gz");
  link("spine_report/example_ct_vertebrae_seg.nii.gz", "seg/ex.nii.gz");
  link("spine_report/example_ct_vertebrae_pp_refined_seg.nii.gz", "bodies/ex.nii.gz");
  link("example_ct.nii.gz", "ct/grid.nii.gz");
  link("example_seg.nii.gz", "seg/grid.nii.gz");  // the small scan's segmentation
  link("example_ct_sm.nii.gz", "ct/nolabel.nii.gz");
  link("example_seg.nii.gz", "seg/nolabel.nii.gz");
  write_text(root + "/labels.csv", "id,tscore\nex,-1.5\ngrid,0.3\nabsent,-2.8\n");
  PrepOptions o;
  o.ct_dir = root + "/ct", o.seg_dir = root + "/seg", o.labels_csv = root + "/labels.csv";
  o.out_dir = root + "/out";
  o.progress = false;
  o.preprocess.volume = 48, o.preprocess.spacing_mm = 2.5;
  o.hu.body_seg = root + "/bodies/{id}.nii.gz";  // vertebrae_pp: L1 = 20 ... L5 = 24
  const PrepResult r = run_prep(o);
  EXPECT_EQ(r.ok, 1);
  EXPECT_EQ(r.failed, 1);
  EXPECT_EQ(r.skipped, 2);

  const YAML::Node ref =
      YAML::LoadFile(std::string(MC_SOURCE_DIR) + "/tests/fixtures/nifti/nibabel_reference.json");
  const ManifestRow& ex = row_of(r, "ex");
  EXPECT_EQ(ex.status, "ok");
  EXPECT_EQ(ex.stats.voxels, 2143);                         // SOURCES.md
  EXPECT_NEAR(ex.stats.mean_hu, 195.8, 0.05);               // SOURCES.md
  EXPECT_NEAR(ex.stats.mean_hu, ref["l1"][0]["mean_hu"].as<double>(), 1e-9);  // nibabel
  EXPECT_EQ(ex.stats.median_hu, ref["l1"][0]["median_hu"].as<double>());
  EXPECT_EQ(ex.label, 1);
  EXPECT_NE(row_of(r, "grid").reason.find("not on the same grid"), std::string::npos);
  EXPECT_NE(row_of(r, "grid").reason.find("seg/grid.nii.gz"), std::string::npos);
  EXPECT_NE(row_of(r, "nolabel").reason.find("no label"), std::string::npos);
  EXPECT_NE(row_of(r, "absent").reason.find("missing scan"), std::string::npos);

  std::ifstream manifest(r.manifest);
  std::string header, line, ex_line;
  std::getline(manifest, header);
  EXPECT_EQ(header.rfind("id,label,class,tscore,split,voxels,volume_ml,mean_hu,median_hu,L1_body_source,L1_body_voxels,"
                         "L1_body_ml,L1_body_mean_hu,L1_body_median_hu,L1_roi_voxels,L1_roi_ml,L1_roi_mean_hu,"
                         "L1_roi_median_hu,L1_roi_sd_hu,L1_ts_voxels,L1_ts_ml,L1_ts_mean_hu,L1_ts_median_hu,"
                         "L2_body_source,", 0), 0u) << header;
  EXPECT_TRUE(header.ends_with(",L5_ts_median_hu,roi_margin_mm,hu_note,status,reason")) << header;
  while (std::getline(manifest, line))
    if (line.rfind("ex,", 0) == 0) ex_line = line;
  EXPECT_EQ(ex_line.rfind("ex,1,osteopenia,-1.50," + ex.split + ",2143,57.861,195.78,157.0,", 0), 0u) << ex_line;

  // The per-vertebra columns: the body volumes of spine_report.json (L1 35.61 ml = 1319 voxels
  // of 27 mm^3), and the ROI figures measure_vertebrae gives on the same files.
  const CsvTable t = read_csv(r.manifest);
  const CsvRow* row = nullptr;
  for (const auto& rr : t.rows)
    if (rr.cells[0] == "ex") row = &rr;
  ASSERT_NE(row, nullptr);
  auto cell = [&](const std::string& c) {
    EXPECT_GE(t.column(c), 0) << c;
    return t.column(c) < 0 ? std::string() : row->cells[size_t(t.column(c))];
  };
  RoiOptions ro;
  const Volume ct = read_volume(root + "/ct/ex.nii.gz"), vert = read_volume(root + "/seg/ex.nii.gz");
  const Volume pp = read_volume(root + "/bodies/ex.nii.gz");
  const SpineHU want = measure_vertebrae(ct, &vert, &pp, ro);
  const YAML::Node report = YAML::LoadFile(data + "/spine_report/spine_report.json")["results"];
  for (const auto& v : want.vertebrae) {
    SCOPED_TRACE(v.name);
    EXPECT_EQ(cell(v.name + "_body_source"), "body map");
    EXPECT_NEAR(std::stod(cell(v.name + "_body_ml")), report["vertebrae_" + v.name + "_volume_ml"].as<double>(), 0.005);
    EXPECT_EQ(cell(v.name + "_body_voxels"), std::to_string(v.body.voxels));
    EXPECT_EQ(cell(v.name + "_roi_voxels"), std::to_string(v.roi.voxels));
    EXPECT_GT(v.roi.voxels, 0);
    EXPECT_LT(v.roi.voxels, v.body.voxels);
    EXPECT_EQ(cell(v.name + "_roi_mean_hu"), fixed(v.roi.mean, 2));
    EXPECT_EQ(cell(v.name + "_roi_median_hu"), fixed(v.roi.median, 2));
    EXPECT_EQ(cell(v.name + "_roi_sd_hu"), fixed(v.roi.sd, 2));
    EXPECT_EQ(cell(v.name + "_body_median_hu"), fixed(v.body.median, 2));
    // TotalSegmentator's own ROI: the intensity figures of its spine report, to its 2 decimals.
    EXPECT_EQ(cell(v.name + "_ts_mean_hu"), fixed(report["vertebrae_" + v.name + "_intensity"].as<double>(), 2));
    EXPECT_EQ(cell(v.name + "_ts_median_hu"), fixed(report["vertebrae_" + v.name + "_intensity_median"].as<double>(), 2));
  }
  EXPECT_EQ(cell("L1_ts_mean_hu"), "132.62");
  EXPECT_EQ(cell("L1_ts_median_hu"), "110.00");
  EXPECT_EQ(cell("L1_body_voxels"), "1319");
  EXPECT_EQ(cell("L1_body_ml"), "35.613");
  EXPECT_EQ(cell("L1_body_median_hu"), "125.00");  // numpy on the body labels (REFERENCE.md)
  EXPECT_NEAR(std::stod(cell("L1_body_mean_hu")), 148.1, 0.05);  // 148.1 to one digit
  EXPECT_EQ(cell("roi_margin_mm"), "3.00");
  EXPECT_EQ(cell("hu_note"), "");

  const Cache cache = Cache::open(r.caches.at(ex.split));
  ASSERT_EQ(cache.size(), 1);
  EXPECT_EQ(cache.record(0).id, "ex");
  EXPECT_EQ(cache.record(0).label, 1);
  EXPECT_EQ(cache.record(0).tscore, -1.5);
  EXPECT_EQ(cache.volume_shape(), (Shape{1, 48, 48, 48}));
  EXPECT_EQ(cache.meta().at("label_id"), "31");
}

// Builds a small generated data set with one broken subject of each kind.
std::string broken_data_set(int64_t count) {
  const std::string root = test::temp_dir();
  SyntheticOptions s;
  s.count = count, s.size = 32, s.seed = 4;
  write_synthetic_dataset(root, s);
  const std::string ct0 = root + "/ct/syn00000.nii.gz";
  const auto size = fs::file_size(ct0);
  fs::resize_file(ct0, size / 2);                                   // truncated gzip
  Volume seg = read_volume(root + "/seg/syn00001.nii.gz");          // no L1 in the mask
  for (float& v : std::span(seg.ptr(), size_t(seg.numel()))) v = v == 31 ? 30 : v;
  write_nifti(root + "/seg/syn00001.nii.gz", seg, NiftiType::U8);
  fs::remove(root + "/seg/syn00002.nii.gz");                        // no segmentation
  std::ifstream in(root + "/labels.csv");
  std::string text((std::istreambuf_iterator<char>(in)), {}), line;
  text.replace(text.find("syn00003,"), 9, "syn00003_renamed,");      // label of a missing scan
  write_text(root + "/labels.csv", text);                           // and a scan without label
  return root;
}

TEST(PrepSynthetic, BrokenSubjectsAreReportedAndSkipped) {
  const std::string root = broken_data_set(14);
  PrepOptions o;
  o.ct_dir = root + "/ct", o.seg_dir = root + "/seg", o.labels_csv = root + "/labels.csv";
  o.out_dir = root + "/out", o.progress = false, o.workers = 3, o.save_crops = true;
  o.preprocess.volume = 24, o.preprocess.spacing_mm = 3;
  const PrepResult r = run_prep(o);
  EXPECT_EQ(r.rows.size(), 15u);
  EXPECT_EQ(r.ok, 10);
  EXPECT_EQ(row_of(r, "syn00000").status, "failed");
  EXPECT_NE(row_of(r, "syn00000").reason.find("syn00000.nii.gz: truncated gzip"), std::string::npos);
  EXPECT_NE(row_of(r, "syn00001").reason.find("empty mask"), std::string::npos);
  EXPECT_NE(row_of(r, "syn00002").reason.find("missing segmentation"), std::string::npos);
  EXPECT_NE(row_of(r, "syn00003").reason.find("no label"), std::string::npos);
  EXPECT_NE(row_of(r, "syn00003_renamed").reason.find("missing scan"), std::string::npos);
  int64_t cached = 0;
  for (const auto& [split, path] : r.caches) {
    const Cache c = Cache::open(path);
    cached += c.size();
    EXPECT_EQ(c.volume_shape(), (Shape{1, 24, 24, 24}));
    for (const auto& rec : c.records()) EXPECT_EQ(row_of(r, rec.id).split, split);
  }
  EXPECT_EQ(cached, 10);
  EXPECT_TRUE(fs::exists(root + "/out/crops/syn00004.nii.gz"));
  const std::string summary = prep_summary(r);
  EXPECT_NE(summary.find("10 ok, 3 skipped, 2 failed of 15"), std::string::npos) << summary;

  // the same run again gives the same splits (deterministic from the seed)
  o.out_dir = root + "/again", o.save_crops = false, o.workers = 2;
  const PrepResult again = run_prep(o);
  for (const auto& row : r.rows) EXPECT_EQ(row_of(again, row.id).split, row.split);
}

// Per-subject failure everywhere (issue 11): a NaN CT, spacing in metres, a 1e-6 mm sform, a
// symlink loop and a header claiming 2000^3 voxels each fail their own subject with a reason
// naming its file; the others are prepared. (Before: the NaN aborted the run with "does not fit
// f16", the loop with a filesystem_error, the tiny voxels spun in the blur for minutes.)
TEST(PrepSynthetic, EveryKindOfBadScanFailsOnlyItsSubject) {
  const std::string root = test::temp_dir();
  SyntheticOptions s;
  s.count = 8, s.size = 24, s.seed = 2, s.workers = 1;
  write_synthetic_dataset(root, s);
  auto ct = [&](int i) { return root + "/ct/" + synthetic_id(i) + ".nii.gz"; };
  auto seg = [&](int i) { return root + "/seg/" + synthetic_id(i) + ".nii.gz"; };
  {  // NaN throughout L1
    Volume v = read_volume(ct(0));
    const Volume m = read_volume(seg(0));
    for (int64_t i = 0; i < v.numel(); ++i)
      if (m.ptr()[i] == 31) v.ptr()[i] = NAN;
    write_nifti(ct(0), v, NiftiType::F32);
  }
  for (const auto& [i, scale] : {std::pair{1, 1e-3}, std::pair{2, 1e-6}}) {  // metres; 1e-6 mm voxels
    for (const std::string& f : {ct(i), seg(i)}) {
      Volume v = read_volume(f);
      for (int r = 0; r < 3; ++r)
        for (int c = 0; c < 3; ++c) v.affine[size_t(r)][size_t(c)] *= scale;
      write_nifti(f, v, f == ct(i) ? NiftiType::F32 : NiftiType::U8);
    }
  }
  fs::remove(ct(3));
  fs::create_symlink(ct(3), ct(3));  // a symlink loop
  {  // 2000^3 claimed by a small gzip file: the header's dims edited in place
    gzFile in = gzopen(ct(4).c_str(), "rb");
    std::vector<char> bytes(1 << 20);
    bytes.resize(size_t(gzread(in, bytes.data(), unsigned(bytes.size()))));
    gzclose(in);
    for (int d = 1; d <= 3; ++d) {
      const int16_t n = 2000;
      std::memcpy(bytes.data() + 40 + 2 * d, &n, 2);
    }
    gzFile out = gzopen(ct(4).c_str(), "wb");
    gzwrite(out, bytes.data(), unsigned(bytes.size()));
    gzclose(out);
  }
  PrepOptions o;
  o.ct_dir = root + "/ct", o.seg_dir = root + "/seg", o.labels_csv = root + "/labels.csv";
  o.out_dir = root + "/out", o.progress = false, o.workers = 2;
  o.preprocess.volume = 16, o.preprocess.spacing_mm = 3;
  const auto t0 = std::chrono::steady_clock::now();
  const PrepResult r = run_prep(o);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(seconds, 5) << "a bad subject made the run slow";
  EXPECT_EQ(r.ok, 3);
  EXPECT_EQ(r.failed, 5);
  auto expect_reason = [&](int i, std::vector<std::string> parts) {
    const ManifestRow& row = row_of(r, synthetic_id(i));
    EXPECT_EQ(row.status, "failed") << row.id;
    parts.push_back(synthetic_id(i));
    for (const auto& p : parts) EXPECT_NE(row.reason.find(p), std::string::npos) << "'" << p << "' not in: " << row.reason;
  };
  expect_reason(0, {"non-finite value", "inside the L1 mask"});
  expect_reason(1, {"voxel spacing 0.00", "data.spacing_range_mm"});
  expect_reason(2, {"voxel spacing", "e-06 mm", "outside 0.05..20 mm"});
  expect_reason(3, {"cannot open", "symbolic links"});
  expect_reason(4, {"2000", "cannot hold"});
  std::ifstream in(r.manifest);
  const std::string manifest((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(manifest.find("symbolic links"), std::string::npos) << manifest;
  int64_t cached = 0;
  for (const auto& [split, path] : r.caches) cached += Cache::open(path).size();
  EXPECT_EQ(cached, 3);
}

TEST(PrepSynthetic, NothingUsableMeansNoOkSubjects) {
  const std::string root = test::temp_dir();
  SyntheticOptions s;
  s.count = 2, s.size = 24;
  write_synthetic_dataset(root, s);
  PrepOptions o;
  o.ct_dir = root + "/ct", o.seg_dir = root + "/seg", o.labels_csv = root + "/labels.csv";
  o.out_dir = root + "/out", o.progress = false;
  o.preprocess.label_id = 22;  // not in these segmentations
  const PrepResult r = run_prep(o);
  EXPECT_EQ(r.ok, 0);
  EXPECT_EQ(r.failed, 2);
  EXPECT_TRUE(r.caches.empty());
  EXPECT_TRUE(fs::exists(r.manifest));
  write_text(root + "/bad.csv", "id,tscore\nsyn00000,-1..2\n");
  o.labels_csv = root + "/bad.csv";
  expect_error([&] { run_prep(o); }, {"bad.csv:2", "\"-1..2\"", "not a number"});
}

TEST(PrepPairing, TotalSegmentatorLayouts) {
  const std::string root = test::temp_dir();
  SyntheticOptions s;
  s.count = 2, s.size = 24;
  const auto subjects = write_synthetic_dataset(root + "/gen", s);
  // a/ct.nii.gz + a/segmentations.nii.gz (multi-label); b/ct.nii.gz + b/segmentations/vertebrae_L1.nii.gz
  fs::create_directories(root + "/data/a"), fs::create_directories(root + "/data/b/segmentations");
  fs::copy(root + "/gen/ct/syn00000.nii.gz", root + "/data/a/ct.nii.gz");
  fs::copy(root + "/gen/seg/syn00000.nii.gz", root + "/data/a/segmentations.nii.gz");
  fs::copy(root + "/gen/ct/syn00001.nii.gz", root + "/data/b/ct.nii.gz");
  Volume seg = read_volume(root + "/gen/seg/syn00001.nii.gz");
  write_nifti(root + "/data/b/segmentations/vertebrae_L1.nii.gz", select_label(seg, 31), NiftiType::U8);
  PrepOptions o;
  o.ct_dir = root + "/data", o.out_dir = root + "/out", o.progress = false;
  EXPECT_EQ(list_ct_subjects(o.ct_dir), (std::vector<std::string>{"a", "b"}));
  const SubjectFiles a = find_subject_files(o, "a"), b = find_subject_files(o, "b");
  EXPECT_EQ(a.seg, root + "/data/a/segmentations.nii.gz");
  EXPECT_FALSE(a.binary_mask);
  EXPECT_EQ(b.seg, root + "/data/b/segmentations/vertebrae_L1.nii.gz");
  EXPECT_TRUE(b.binary_mask);
  const PrepResult r = run_prep(o);  // no labels table: labels unknown, still prepared
  EXPECT_EQ(r.ok, 2);
  EXPECT_EQ(row_of(r, "a").label, -1);
  // the binary mask and the multi-label map give the same L1
  const Volume full = read_volume(root + "/gen/seg/syn00001.nii.gz");
  EXPECT_EQ(row_of(r, "b").stats.voxels, mask_stats(read_volume(root + "/data/b/ct.nii.gz"), select_label(full, 31)).voxels);
}

}  // namespace
}  // namespace mc::io
