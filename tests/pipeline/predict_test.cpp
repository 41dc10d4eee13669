// mc_predict's library: a real CT + TotalSegmentator mask -> three probabilities whose raw logits
// are the model's own; PyTorch-layout ("module.") checkpoints; config and prior from the
// checkpoint's state; folders -> CSV; and every error naming its file.
#include <sys/wait.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "pipeline/model.h"
#include "pipeline/predict.h"
#include "pipeline/train_setup.h"
#include "engine/autograd.h"
#include "io/checkpoint.h"
#include "io/dicom.h"
#include "io/nifti.h"
#include "pipeline/prep_config.h"
#include "io/safetensors.h"
#include "io/state_dict_io.h"
#include "io/synthetic.h"
#include "test_util.h"

namespace mc::pipeline {
namespace {
namespace fs = std::filesystem;

#define EXPECT_HAS(s, part) EXPECT_NE((s).find(part), std::string::npos) << "missing '" << (part) << "' in:\n" << (s)

// The numbers of the flat JSON array or object that starts right after `key` (which ends in
// '[' or '{'): ["a": 1, "b": 2] -> {1, 2}.
std::vector<double> json_numbers(const std::string& s, const std::string& key) {
  const size_t p = s.find(key);
  if (p == std::string::npos) return {};
  const size_t begin = p + key.size(), end = s.find(key.back() == '[' ? ']' : '}', begin);
  std::vector<double> v;
  std::stringstream body(s.substr(begin, end - begin));
  for (std::string part; std::getline(body, part, ',');)
    v.push_back(std::strtod(part.c_str() + (part.find(':') == std::string::npos ? 0 : part.find(':') + 1), nullptr));
  return v;
}

struct TrainedRun {
  std::string dir, checkpoint, config;  // config: the YAML file
  Config cfg;
};

// A resnet10 for 16^3 cubes; its state carries the config (and class counts when given).
TrainedRun make_run(const std::string& dir, const std::vector<std::string>& overrides = {},
             const std::string& class_counts = "") {
  TrainedRun r;
  r.dir = dir;
  r.cfg = parse_config("data:\n  cache_dir: " + dir + "/cache\n  volume: 16\n  resize: fit\n"
                       "model:\n  name: resnet10\ntrain:\n  device: cpu\n  seed: 5\nposthoc:\n  tau2: 0.5\n",
                       "predict_test.yaml", overrides);
  r.config = dir + "/run.yaml";
  std::ofstream(r.config) << to_yaml(r.cfg);
  io::TrainingState st;
  st.optimizer = "adamw";
  st.config_yaml = to_yaml(r.cfg);
  if (!class_counts.empty()) st.extra["class_counts"] = class_counts;
  r.checkpoint = io::save_checkpoint(dir + "/run", "best", build_model(r.cfg)->state_dict(), st);
  return r;
}

std::string predict(const std::vector<std::string>& args, int expect_rc = 0, std::string* err_text = nullptr) {
  std::ostringstream out, err;
  EXPECT_EQ(run_predict(parse_predict_command(args), out, err), expect_rc) << err.str();
  if (err_text) *err_text = err.str();
  return out.str();
}

std::string error_of(const std::vector<std::string>& args) {
  try {
    std::ostringstream out, err;
    run_predict(parse_predict_command(args), out, err);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

// An L1 crop as a NIfTI file: a bright block in soft tissue.
std::string write_crop(const std::string& path) {
  io::Volume v = io::make_volume(20, 18, 22);
  for (int64_t i = 0; i < v.numel(); ++i) v.ptr()[i] = float(40 + (i * 37) % 300);
  io::write_nifti(path, v, io::NiftiType::I16);
  return path;
}

TEST(Predict, RealScanGivesThreeProbabilitiesAndTheModelsLogits) {
  const std::string ct = test::shared_data("totalsegmentator_example/example_ct.nii.gz");
  const std::string seg = test::shared_data("totalsegmentator_example/spine_report/example_ct_vertebrae_seg.nii.gz");
  if (ct.empty() || seg.empty()) GTEST_SKIP() << "../shared/data not present";
  const TrainedRun r = make_run(test::temp_dir());
  const std::string json = predict({"--checkpoint", r.checkpoint, "--config", r.config, "--ct", ct, "--seg", seg,
                                    "--label-id", "31", "--raw", "--no-progress"});
  EXPECT_HAS(json, "\"id\": \"example_ct\"");
  EXPECT_HAS(json, "\"class_name\": \"");
  const auto probs = json_numbers(json, "\"probabilities\": {");
  ASSERT_EQ(probs.size(), 3u) << json;
  EXPECT_NEAR(probs[0] + probs[1] + probs[2], 1.0, 1e-12);
  EXPECT_HAS(json, "\"tau2\": 0,");  // no training prior anywhere: no adjustment ...
  EXPECT_HAS(json, "no post-hoc adjustment");  // ... and the JSON says so

  // --raw: exactly model.forward on the same preprocessed tensor.
  io::PreprocessOptions opts = preprocess_options_from_config(r.cfg);
  opts.label_id = 31;
  const Tensor input = prepare_input({"example_ct", ct, seg}, opts);
  ASSERT_EQ(input.shape(), (Shape{1, 1, 16, 16, 16}));
  auto model = build_model(r.cfg);
  io::load_state_dict(model->state_dict(), io::load_safetensors(r.checkpoint));
  model->eval();
  NoGradGuard ng;
  const auto want = model->forward(input).to_vector<float>();
  const auto logits = json_numbers(json, "\"logits\": [");
  ASSERT_EQ(logits.size(), 3u);
  for (size_t k = 0; k < 3; ++k) EXPECT_EQ(logits[k], double(want[k])) << k;
  // The input is mc_prep's cube as its cache stores it (f16), within f16's rounding of [0, 1].
  EXPECT_TRUE(test::all_close(input.view({1, 16, 16, 16}), io::preprocess_files(ct, seg, opts).cube, 0, 1.0 / 4096));
}

// --ct takes a DICOM series folder; its segmentation may be on dcm2niix's grid. The model sees
// the same cube as from dcm2niix's conversion of the series.
TEST(Predict, DicomFolderPredictsAsItsNiftiConversion) {
  const std::string dicom = test::shared_data("totalsegmentator_example/example_ct_dicom");
  const std::string nii = test::shared_data("totalsegmentator_example/example_ct_dicom_converted.nii.gz");
  const std::string seg = test::shared_data("totalsegmentator_example/example_seg_dicom.nii.gz");
  if (dicom.empty() || nii.empty() || seg.empty()) GTEST_SKIP() << "../shared/data not present";
  if (!io::dicom_supported()) GTEST_SKIP() << "built without DICOM support (GDCM)";
  const TrainedRun r = make_run(test::temp_dir());
  auto run = [&](const std::string& ct) {
    return predict({"--checkpoint", r.checkpoint, "--config", r.config, "--ct", ct, "--seg", seg,
                    "--label-id", "32", "--raw", "--no-progress"});  // T12: the series has no L1
  };
  const std::string from_dicom = run(dicom + "/"), from_nifti = run(nii);
  EXPECT_HAS(from_dicom, "\"id\": \"example_ct_dicom\"");
  const auto a = json_numbers(from_dicom, "\"logits\": ["), b = json_numbers(from_nifti, "\"logits\": [");
  ASSERT_EQ(a.size(), 3u) << from_dicom;
  ASSERT_EQ(b.size(), 3u) << from_nifti;
  for (size_t k = 0; k < 3; ++k) EXPECT_NEAR(a[k], b[k], 1e-5) << k;
  EXPECT_HAS(error_of({"--checkpoint", r.checkpoint, "--ct", r.config, "--seg", seg}), "neither a NIfTI file");
}

TEST(Predict, ModulePrefixedPyTorchCheckpointLoads) {
  const TrainedRun r = make_run(test::temp_dir());
  auto model = build_model(r.cfg);
  StateDict prefixed;
  for (const auto& [k, t] : model->state_dict()) prefixed.emplace_back("module." + k, t);
  const std::string path = r.dir + "/dataparallel.safetensors";
  io::save_safetensors(path, prefixed, {{"format", "pt"}});
  LoadedModel m = load_model(r.cfg, path);
  const Tensor x = test::uniform({1, 1, 16, 16, 16}, 3, 0, 1);
  model->eval();
  NoGradGuard ng;
  const ScanPrediction p = predict_scan(m, x, "x", {}, 0);
  const auto want = model->forward(x).to_vector<float>();
  for (size_t k = 0; k < 3; ++k) EXPECT_EQ(p.logits[k], double(want[k]));
  EXPECT_EQ(m.epoch, -1);  // no mc_train metadata
}

TEST(Predict, ConfigAndPriorComeFromTheCheckpointState) {
  const TrainedRun r = make_run(test::temp_dir(), {}, "2,5,8");
  const std::string crop = write_crop(r.dir + "/l1.nii.gz");
  std::string err;
  const std::string json = predict({"--checkpoint", r.checkpoint, "--crop", crop, "--raw", "--no-progress"}, 0, &err);
  EXPECT_HAS(err, "training prior from class_counts of " + r.dir + "/run/best.state.safetensors");
  EXPECT_HAS(json, "\"tau2\": 0.5");  // posthoc.tau2 of the stored config
  const auto logits = json_numbers(json, "\"logits\": [");
  const auto probs = json_numbers(json, "\"probabilities\": {");
  ASSERT_EQ(logits.size(), 3u);
  ASSERT_EQ(probs.size(), 3u);
  std::vector<double> e(3);
  double z = 0;
  for (size_t k = 0; k < 3; ++k) z += e[k] = std::exp(logits[k] - 0.5 * std::log(std::vector<double>{2, 5, 8}[k] / 15));
  for (size_t k = 0; k < 3; ++k) EXPECT_NEAR(probs[k], e[k] / z, 1e-12);
  // --tau2 0 turns the adjustment off.
  const auto plain = json_numbers(predict({"--checkpoint", r.checkpoint, "--crop", crop, "--tau2", "0", "--no-progress"}),
                                  "\"probabilities\": {");
  z = 0;
  for (size_t k = 0; k < 3; ++k) z += e[k] = std::exp(logits[k]);
  for (size_t k = 0; k < 3; ++k) EXPECT_NEAR(plain[k], e[k] / z, 1e-12);
}

TEST(Predict, FolderGivesCsvAndNamesEveryFailure) {
  const TrainedRun r = make_run(test::temp_dir());
  io::SyntheticOptions so;
  so.count = 3, so.size = 24, so.workers = 1;
  io::write_synthetic_dataset(r.dir + "/data", so);
  std::ofstream(r.dir + "/data/ct/bad.nii.gz") << "not a nifti";
  fs::copy_file(r.dir + "/data/seg/" + io::synthetic_id(0) + ".nii.gz", r.dir + "/data/seg/bad.nii.gz");
  std::string err;
  const std::string csv = predict({"--checkpoint", r.checkpoint, "--config", r.config, "--ct-dir", r.dir + "/data/ct",
                                   "--seg-dir", r.dir + "/data/seg", "--raw", "--no-progress", "--out", r.dir + "/out.csv"},
                                  1, &err);
  EXPECT_TRUE(csv.empty());  // it went to --out
  EXPECT_HAS(err, "bad.nii.gz");
  EXPECT_HAS(err, "1 of 4 scans failed");
  std::ifstream in(r.dir + "/out.csv");
  std::string header, line;
  std::getline(in, header);
  EXPECT_EQ(header, "id,class,class_name,p_osteoporosis,p_osteopenia,p_normal,logit_osteoporosis,logit_osteopenia,logit_normal");
  int rows = 0;
  while (std::getline(in, line)) {
    EXPECT_EQ(line.rfind("syn", 0), 0u) << line;
    ++rows;
  }
  EXPECT_EQ(rows, 3);
}

TEST(Predict, ErrorsNameTheProblem) {
  const TrainedRun r = make_run(test::temp_dir());
  const std::string crop = write_crop(r.dir + "/l1.nii.gz");
  auto parse_error = [](const std::vector<std::string>& args) {
    try {
      parse_predict_command(args);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_HAS(parse_error({"--crop", crop}), "--checkpoint W.safetensors is required");
  EXPECT_HAS(parse_error({"--checkpoint", "w", "--crop", crop, "--ct-dir", "d"}), "exactly one of");
  EXPECT_HAS(parse_error({"--checkpoint", "w", "--ct", crop}), "--ct needs --seg");
  EXPECT_HAS(parse_error({"--checkpoint", "w", "--crop", crop, "--frobnicate"}), "unknown argument '--frobnicate'");
  EXPECT_HAS(parse_error({"--checkpoint", "w", "--crop", crop, "--tau2", "abc"}), "--tau2: 'abc' is not a number");

  const std::vector<std::string> base = {"--checkpoint", r.checkpoint, "--config", r.config, "--no-progress"};
  auto with = [&](std::vector<std::string> extra) {
    extra.insert(extra.begin(), base.begin(), base.end());
    return extra;
  };
  EXPECT_HAS(error_of(with({"--crop", r.dir + "/none.nii.gz"})), "--crop: file '" + r.dir + "/none.nii.gz' not found");
  std::ofstream(r.dir + "/garbage.nii.gz") << "garbage";
  EXPECT_HAS(error_of(with({"--crop", r.dir + "/garbage.nii.gz"})), r.dir + "/garbage.nii.gz");
  EXPECT_HAS(error_of(with({"--ct", crop, "--seg", crop, "--label-id", "31"})), "label");  // no voxel has label 31
  EXPECT_HAS(error_of(with({"--crop", crop, "data.windows=[[400,2000],[40,400]]"})),
             "model.in_chans (1");  // the config's own check: one channel per window
  EXPECT_HAS(error_of(with({"--crop", crop, "data.windows=[[400,2000],[40,400]]", "model.in_chans=2"})),
             "does not fit the configured model resnet10 (model.in_chans 2");
  EXPECT_HAS(error_of({"--checkpoint", r.dir + "/missing.safetensors", "--config", r.config, "--crop", crop}),
             "missing.safetensors' not found");
  const std::string bare = r.dir + "/bare.safetensors";  // weights only: nothing to read a config from
  io::save_safetensors(bare, build_model(r.cfg)->state_dict());
  EXPECT_HAS(error_of({"--checkpoint", bare, "--crop", crop}), "pass --config FILE.yaml");
}

// Finite or refuse (issue 11): a checkpoint with a NaN in fc or a running_var of -1 is no
// prediction but an error naming the file and the tensor; a non-finite logit is an error for
// that scan, not a class.
TEST(Predict, NonFiniteWeightsAndLogitsAreErrorsNotClasses) {
  const TrainedRun r = make_run(test::temp_dir());
  const std::string crop = write_crop(r.dir + "/l1.nii.gz");
  StateDict sd = build_model(r.cfg)->state_dict();
  for (const auto& [name, poison] : {std::pair{std::string("fc.weight"), NAN}, {std::string("bn1.running_var"), -1.f}}) {
    SCOPED_TRACE(name);
    StateDict bad;
    for (const auto& [k, t] : sd) {
      Tensor c = t.to(Device::cpu());
      if (k == name) {
        std::vector<float> v = c.to_vector<float>();
        v[1] = poison;
        c = Tensor::from<float>(v, c.shape());
      }
      bad.emplace_back(k, c);
    }
    const std::string file = r.dir + "/poisoned.safetensors";
    io::save_safetensors(file, bad);
    const std::string e = error_of({"--checkpoint", file, "--config", r.config, "--crop", crop, "--no-progress"});
    EXPECT_HAS(e, "checkpoint '" + file + "'");
    EXPECT_HAS(e, "'" + name + "'");
  }
  LoadedModel m = load_model(r.cfg, r.checkpoint);
  // NaN voxels never reach the logits (ReLU and max pooling drop NaN: their comparisons are
  // false), which is why preprocessing refuses them itself. A weight that overflows does.
  for (auto& [k, t] : m.model->state_dict())
    if (k == "fc.bias") Tensor(t).copy_(Tensor::full(t.shape(), INFINITY));
  const Tensor x = Tensor::full({1, 1, 16, 16, 16}, 0.5);
  try {
    predict_scan(m, x, "subj-nan", TrainingPrior{}, 0);
    ADD_FAILURE() << "a NaN input gave a class";
  } catch (const Error& e) {
    EXPECT_HAS(std::string(e.what()), "subject 'subj-nan'");
    EXPECT_HAS(std::string(e.what()), "non-finite logit");
  }
}

TEST(Predict, ProgramExitCodes) {
  const std::string exe = std::string(MC_BINARY_DIR) + "/apps/mc_predict";
  if (!fs::exists(exe)) GTEST_SKIP() << "mc_predict not built";
  auto rc = [&](const std::string& args) {
    const int s = std::system((exe + " " + args + " > /dev/null 2>&1").c_str());
    return WIFEXITED(s) ? WEXITSTATUS(s) : -1;
  };
  EXPECT_EQ(rc("--help"), 0);
  EXPECT_EQ(rc("--crop x.nii.gz"), 2);
  EXPECT_EQ(rc("--checkpoint /nonexistent.safetensors --crop /nonexistent.nii.gz"), 1);
}

}  // namespace
}  // namespace mc::pipeline

namespace mc::pipeline {
namespace {

// The fold ensemble of mc_predict: K copies of one model predict exactly what the model does.
TEST(Predict, EnsembleOfIdenticalModelsEqualsOne) {
  const TrainedRun r = make_run(test::temp_dir(), {}, "2,5,8");
  const std::string crop = write_crop(r.dir + "/crop.nii.gz");
  const std::vector<std::string> base = {"--checkpoint", r.checkpoint, "--crop", crop, "--raw", "--no-progress"};
  const std::string one = predict(base);
  std::vector<std::string> three = base;
  three.insert(three.end(), {"--ensemble", r.checkpoint, r.checkpoint});
  std::string err;
  const std::string ens = predict(three, 0, &err);
  EXPECT_HAS(err, "ensemble of 3 models");
  const auto p1 = json_numbers(one, "\"probabilities\": {"), p3 = json_numbers(ens, "\"probabilities\": {");
  ASSERT_EQ(p1.size(), 3u);
  ASSERT_EQ(p3.size(), 3u);
  for (size_t k = 0; k < 3; ++k) EXPECT_NEAR(p3[k], p1[k], 1e-15);
  EXPECT_HAS(error_of({"--checkpoint", r.checkpoint, "--crop", crop, "--ensemble", r.dir + "/nope.safetensors"}),
             "--ensemble: checkpoint '" + r.dir + "/nope.safetensors' not found");
}

}  // namespace
}  // namespace mc::pipeline
