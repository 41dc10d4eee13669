// The programs on DICOM series whose files carry patient attributes (PatientName, PatientID,
// PatientBirthDate, ...: tests/fixtures/make_dicom_fixtures.py): mc_prep (a run, --to-nifti)
// and mc_predict (--ct, --out, --saliency, --ct-dir) are run as processes, on good series and
// on broken ones, and none of those attributes may appear in their stdout, their stderr or any
// file they write. The in-process checks (reader, manifest, caches) are in tests/io.
#include <sys/wait.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/checkpoint.h"
#include "io/ct_source.h"
#include "io/dicom.h"
#include "pipeline/config.h"
#include "pipeline/model.h"
#include "test_util.h"

namespace mc {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;

struct Outcome {
  int code = -1;
  std::string out, err;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// stdout and stderr apart, so that each is checked on its own.
Outcome run(const std::string& program, const std::string& args, const std::string& logs) {
  const std::string o = logs + ".out", e = logs + ".err";
  const std::string cmd = std::string(MC_BINARY_DIR) + "/apps/" + program + " " + args + " > " + o + " 2> " + e;
  const int status = std::system(cmd.c_str());
  Outcome r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = slurp(o), r.err = slurp(e);
  fs::remove(o), fs::remove(e);
  return r;
}

// The bytes of a file as a reader sees them: gzip (.nii.gz) inflated, anything else as is
// (zlib's gzread passes uncompressed files through).
std::string contents(const fs::path& p) {
  gzFile f = gzopen(p.c_str(), "rb");
  if (!f) return slurp(p.string());
  std::string s;
  char buf[1 << 16];
  for (int n; (n = gzread(f, buf, sizeof buf)) > 0;) s.append(buf, size_t(n));
  gzclose(f);
  return s;
}

// Every file under dir: "path: the attribute" for each patient attribute found.
std::vector<std::string> leaks_in_files(const std::string& dir, const std::vector<std::string>& secrets,
                                        int64_t* files) {
  std::vector<std::string> found;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    ++*files;
    const std::string text = contents(e.path());
    for (const auto& s : secrets)
      if (text.find(s) != std::string::npos) found.push_back(e.path().string() + ": " + s);
  }
  return found;
}

// A mask on ct's grid: label 31 on an L-shaped block (as tests/io/prep_dicom_test.cpp).
io::Volume l1_mask(const io::Volume& ct) {
  io::Volume m = io::make_volume(ct.nx(), ct.ny(), ct.nz(), ct.affine);
  for (int64_t k = 1; k < ct.nz() - 1; ++k)
    for (int64_t j = 1; j < ct.ny() / 2; ++j)
      for (int64_t i = 2; i < ct.nx() - 3; ++i)
        if (j < 3 || i < 5) m.ptr()[(k * ct.ny() + j) * ct.nx() + i] = 31;
  return m;
}

TEST(DicomPrivacy, ProgramsNeverPrintOrWritePatientAttributes) {
  if (!io::dicom_supported()) GTEST_SKIP() << "built without DICOM support (GDCM)";
  const fs::path fixtures = fs::path(MC_BINARY_DIR) / "fixtures" / "dicom";
  std::ifstream mf(fixtures / "manifest.json");
  if (!mf) GTEST_SKIP() << "no DICOM fixtures: run ctest (fixture test dicom_fixtures, needs python3-pydicom)";
  for (const char* p : {"mc_prep", "mc_predict"})
    if (!fs::exists(fs::path(MC_BINARY_DIR) / "apps" / p)) GTEST_SKIP() << p << " not built";
  const json fx = json::parse(mf);
  std::vector<std::string> secrets;
  for (const auto& p : fx["patient"]) secrets.push_back(p.get<std::string>());
  ASSERT_GE(secrets.size(), 3u);

  // Inputs under in/, everything the programs write under out/.
  const std::string root = test::temp_dir(), in = root + "/in", out = root + "/out";
  fs::create_directories(in + "/ct/b"), fs::create_directories(in + "/seg"), fs::create_directories(out);
  const auto copy = [&](const char* c, const std::string& to) {
    fs::copy(fixtures / c, in + "/ct/" + to, fs::copy_options::recursive);
  };
  copy("shuffled", "a");            // ct/<id>/ is the series
  copy("rescale", "b/ct");          // ct/<id>/ct/ is the series
  copy("two_series", "c");          // an error listing the series
  copy("missing_slice", "d");       // an error naming a file
  copy("truncated_header", "e");    // an unreadable file
  const io::Volume a = io::read_ct(in + "/ct/a"), b = io::read_ct(in + "/ct/b/ct");
  io::write_nifti(in + "/seg/a.nii.gz", l1_mask(a), io::NiftiType::U8);
  for (const char* id : {"b", "c", "d", "e"})
    io::write_nifti(in + "/seg/" + std::string(id) + ".nii.gz", l1_mask(b), io::NiftiType::U8);
  std::ofstream(in + "/labels.csv") << "id,tscore\na,-3.0\nb,-1.5\nc,0.5\nd,0.2\ne,-0.4\n";
  std::ofstream(in + "/split.csv") << "id,split\na,train\nb,test\nc,train\nd,train\ne,train\n";

  // Control: the attributes are in the input files, and the scan below finds them there.
  int64_t input_files = 0;
  const auto in_inputs = leaks_in_files(in + "/ct", secrets, &input_files);
  ASSERT_GE(in_inputs.size(), secrets.size() * 5) << "the fixtures lost their patient attributes";

  const std::string config = in + "/run.yaml";
  std::ofstream(config) << "data:\n  cache_dir: " << out << "/cache\n  raw:\n    ct_dir: " << in
                        << "/ct\n    seg_dir: " << in << "/seg\n    labels_csv: " << in << "/labels.csv\n"
                        << "  hu:\n    vertebrae: L1\n  volume: 16\n  resize: fit\n  margin_mm: 0.0\n"
                        << "  min_fov_mm: 5.0\n  split:\n    mode: file\n    file: " << in << "/split.csv\n"
                        << "model:\n  name: resnet10\ntrain:\n  device: cpu\n  seed: 5\nposthoc:\n  tau2: 0.5\n";
  const pipeline::Config cfg = pipeline::load_config(config, {});
  io::TrainingState st;
  st.optimizer = "adamw";
  st.config_yaml = pipeline::to_yaml(cfg);
  const std::string ck = io::save_checkpoint(in + "/run", "best", pipeline::build_model(cfg)->state_dict(), st);

  std::vector<std::pair<std::string, Outcome>> runs;
  const std::string logs = root + "/log";
  runs.push_back({"mc_prep --config", run("mc_prep", "--config " + config, logs)});
  runs.push_back({"mc_prep --to-nifti", run("mc_prep", "--to-nifti " + in + "/ct/a " + out + "/a.nii", logs)});
  runs.push_back({"mc_prep --to-nifti (two series)",
                  run("mc_prep", "--to-nifti " + in + "/ct/c " + out + "/c.nii.gz", logs)});
  const std::string predict = "--checkpoint " + ck + " --config " + config + " --no-progress ";
  runs.push_back({"mc_predict --ct", run("mc_predict", predict + "--raw --ct " + in + "/ct/a --seg " + in + "/seg/a.nii.gz", logs)});
  runs.push_back({"mc_predict --ct --out --saliency",
                  run("mc_predict", predict + "--ct " + in + "/ct/b/ct --seg " + in + "/seg/b.nii.gz --out " + out +
                                        "/b.json --saliency " + out + "/b_saliency.nii.gz", logs)});
  runs.push_back({"mc_predict --ct (missing slice)",
                  run("mc_predict", predict + "--ct " + in + "/ct/d --seg " + in + "/seg/d.nii.gz", logs)});
  runs.push_back({"mc_predict --crop", run("mc_predict", predict + "--crop " + in + "/ct/a", logs)});
  runs.push_back({"mc_predict --ct-dir",
                  run("mc_predict", predict + "--ct-dir " + in + "/ct --seg-dir " + in + "/seg --out " + out + "/all.csv", logs)});

  // The runs did what they should (so that there was output to leak into).
  const auto& [prep_name, prep] = runs[0];
  EXPECT_EQ(prep.code, 0) << prep.out << prep.err;
  for (const char* s : {"2 DICOM series", "Body 1.0", "Lung 3.0", "missing", "/ct/e/IM"})
    EXPECT_NE((prep.out + prep.err).find(s), std::string::npos) << "mc_prep does not say '" << s << "':\n" << prep.out << prep.err;
  EXPECT_EQ(runs[1].second.code, 0) << runs[1].second.err;
  EXPECT_NE(runs[1].second.out.find("12 x 10 x 6"), std::string::npos) << runs[1].second.out;
  EXPECT_EQ(runs[2].second.code, 1);
  EXPECT_NE(runs[2].second.err.find("Lung 3.0"), std::string::npos) << runs[2].second.err;
  EXPECT_EQ(runs[3].second.code, 0) << runs[3].second.err;
  EXPECT_NE(runs[3].second.out.find("\"id\": \"a\""), std::string::npos) << runs[3].second.out;
  EXPECT_EQ(runs[4].second.code, 0) << runs[4].second.err;
  EXPECT_NE(runs[4].second.err.find("saliency"), std::string::npos) << runs[4].second.err;
  EXPECT_EQ(runs[5].second.code, 1);
  EXPECT_NE(runs[5].second.err.find("missing"), std::string::npos) << runs[5].second.err;
  EXPECT_EQ(runs[6].second.code, 0) << runs[6].second.err;  // a DICOM folder as the L1 crop
  EXPECT_NE(runs[6].second.out.find("\"id\": \"a\""), std::string::npos) << runs[6].second.out;
  EXPECT_NE(runs[7].second.err.find("3 of 5 scans failed"), std::string::npos) << runs[7].second.err;
  const std::string csv = slurp(out + "/all.csv");
  for (const char* row : {"\na,", "\nb,"}) EXPECT_NE(csv.find(row), std::string::npos) << row << " not in:\n" << csv;
  if (fs::exists(out + "/b_saliency.nii.gz")) {  // the map lies on the series' grid, as read
    const io::Volume map = io::read_volume(out + "/b_saliency.nii.gz");
    EXPECT_EQ(map.dims, b.dims);
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 4; ++c) EXPECT_NEAR(map.affine[r][c], b.affine[r][c], 1e-3) << r << "," << c;
  }
  for (const char* f : {"cache/manifest.csv", "cache/train.safetensors", "a.nii", "b.json", "b_saliency.nii.gz", "all.csv"})
    EXPECT_TRUE(fs::exists(out + "/" + f)) << f;

  for (const auto& [name, r] : runs)
    for (const auto& s : secrets) {
      EXPECT_EQ(r.out.find(s), std::string::npos) << name << ": " << s << " on stdout:\n" << r.out;
      EXPECT_EQ(r.err.find(s), std::string::npos) << name << ": " << s << " on stderr:\n" << r.err;
    }
  int64_t written = 0;
  const auto leaks = leaks_in_files(out, secrets, &written);
  EXPECT_GE(written, 8);
  for (const auto& l : leaks) ADD_FAILURE() << "patient attribute in a written file: " << l;
}

}  // namespace
}  // namespace mc
