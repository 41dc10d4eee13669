#include "pipeline/config.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <fstream>
#include <map>
#include <regex>
#include <set>

#include "engine/check.h"
#include "pipeline/prep_config.h"
#include "test_util.h"

namespace mc::pipeline {
namespace {

// The message of the mc::Error that parse_config throws ("" and a test failure if none).
std::string error_of(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  try {
    parse_config(yaml, "run.yaml", overrides);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an error for:\n" << yaml;
  return "";
}

::testing::AssertionResult contains_all(const std::string& msg,
                                        const std::vector<std::string>& parts) {
  for (const auto& p : parts)
    if (msg.find(p) == std::string::npos)
      return ::testing::AssertionFailure() << "'" << p << "' missing from: " << msg;
  return ::testing::AssertionSuccess();
}

TEST(ConfigDefaults, EmptyTextGivesTheDocumentedDefaults) {
  Config c = parse_config("", "empty");
  EXPECT_EQ(c, Config{});
  EXPECT_EQ(c.data.preprocess.volume, 96);
  EXPECT_DOUBLE_EQ(c.data.preprocess.spacing_mm, 1.25);
  EXPECT_EQ(c.data.preprocess.resize, io::ResizeMode::Pad);
  EXPECT_EQ(c.data.preprocess.label_id, 31);
  ASSERT_EQ(c.data.preprocess.windows.size(), 1u);
  EXPECT_EQ(c.data.preprocess.windows[0], (io::HUWindow{400, 2000}));
  EXPECT_EQ(c.data.split.ratios, (std::vector<double>{0.7, 0.15, 0.15}));
  EXPECT_EQ(c.data.tscore_thresholds, (std::vector<double>{-2.5, -1.0}));
  EXPECT_EQ(c.optim.kind, OptimizerKind::AdamW);
  EXPECT_DOUBLE_EQ(c.optim.lr, 1e-3);
  EXPECT_DOUBLE_EQ(c.optim.weight_decay, 0.01);
  EXPECT_EQ(c.schedule.kind, LrSchedule::Kind::Cosine);
  EXPECT_EQ(c.train.epochs, 200);
  EXPECT_EQ(c.train.batch_size, 8);
  EXPECT_EQ(c.loss.type, losses::LossType::LogitAdjusted);
  EXPECT_DOUBLE_EQ(c.posthoc.tau2, 0.5);
  EXPECT_EQ(c.posthoc.sweep.size(), 10u);
  EXPECT_EQ(c.output.dir, "runs/medconv");
  // A document of empty groups changes nothing either.
  EXPECT_EQ(parse_config("optim:\naugment:\n", "groups"), Config{});
}

TEST(ConfigDefaults, EnumSpellings) {
  EXPECT_EQ(to_string(losses::LossType::BalancedSoftmax), "balanced_softmax");
  EXPECT_EQ(to_string(Config::Train::Device::Auto), "auto");
  EXPECT_EQ(to_string(Config::Eval::SelectBy::MacroAUC), "macro_auc");
  // train.precision is the engine's enum, spelt as the engine spells it.
  for (Precision p : {Precision::FP32, Precision::TF32, Precision::BF16})
    EXPECT_EQ(to_string(p), precision_name(p));
  EXPECT_EQ(parse_config("", "x", {"train.precision=bf16"}).train.precision, Precision::BF16);
  EXPECT_EQ(model_arch(Config::Model::Name::MedConv), "resnet50");
  EXPECT_EQ(model_arch(Config::Model::Name::ResNet18), "resnet18");
  EXPECT_EQ(parse_config("model: {name: medconv}", "x").model.name, Config::Model::Name::MedConv);
}

TEST(ConfigDefaults, EveryKeyHasAGroupMeaningAndValidDefault) {
  std::set<std::string> groups;
  for (const auto& g : config_groups()) groups.insert(g.path);
  const Config defaults;
  for (const auto& k : config_schema()) {
    EXPECT_TRUE(groups.count(k.path.substr(0, k.path.rfind('.')))) << k.path;
    EXPECT_FALSE(k.meaning.empty()) << k.path;
    // Writing each default back explicitly must be accepted on its own.
    auto flat = config_flat(defaults);
    auto it = std::find_if(flat.begin(), flat.end(), [&](auto& kv) { return kv.first == k.path; });
    ASSERT_NE(it, flat.end());
    EXPECT_NO_THROW(parse_config("", "x", {k.path + "=" + it->second})) << k.path;
  }
}

TEST(ConfigFiles, MedconvRecipe) {
  Config c = load_config(std::string(MC_SOURCE_DIR) + "/configs/medconv.yaml");
  EXPECT_EQ(model_arch(c.model.name), "resnet50");
  EXPECT_EQ(c.model.num_classes, 3);
  EXPECT_EQ(c.optim.kind, OptimizerKind::AdamW);
  EXPECT_DOUBLE_EQ(c.optim.lr, 1e-3);
  EXPECT_DOUBLE_EQ(c.optim.weight_decay, 0.01);
  EXPECT_EQ(c.schedule.kind, LrSchedule::Kind::Cosine);
  EXPECT_EQ(c.train.epochs, 200);
  EXPECT_EQ(c.train.batch_size, 8);
  EXPECT_EQ(c.loss.type, losses::LossType::LogitAdjusted);
  EXPECT_DOUBLE_EQ(c.loss.tau1, 1.0);
  EXPECT_DOUBLE_EQ(c.posthoc.tau2, 0.5);
  EXPECT_EQ(c.data.preprocess.volume, 128);
  EXPECT_EQ(c.data.preprocess.windows, (std::vector<io::HUWindow>{{400, 2000}}));
  EXPECT_EQ(c.data.preprocess.label_id, 31);
}

TEST(ConfigFiles, Demo) {
  Config c = load_config(std::string(MC_SOURCE_DIR) + "/configs/demo.yaml");
  EXPECT_EQ(c.model.name, Config::Model::Name::ResNet10);
  EXPECT_EQ(c.data.preprocess.volume, 32);
  EXPECT_EQ(c.train.batch_size, 8);
  EXPECT_LE(c.train.epochs, 10);
  EXPECT_DOUBLE_EQ(c.optim.lr, 1e-3);
  EXPECT_EQ(c.data.raw.ct_dir, "data/demo/ct");
  EXPECT_EQ(c.data.raw.labels_csv, "data/demo/labels.csv");
  EXPECT_EQ(split_cache_path(c.data, "train"), "data/demo/cache/train.safetensors");
}

TEST(ConfigFiles, MissingFileIsNamed) {
  try {
    load_config("/nonexistent/run.yaml");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_TRUE(contains_all(e.what(), {"/nonexistent/run.yaml", "cannot read"}));
  }
}

// Issue 11: a directory or an empty file is an error naming it, not a run with defaults.
TEST(ConfigFiles, DirectoryAndEmptyFileAreErrors) {
  const std::string dir = test::temp_dir();
  test::expect_error([&] { load_config(dir); }, {dir, "is a directory"});
  for (const char* text : {"", "# only a comment\n", "\n\n", "~\n"}) {
    std::ofstream(dir + "/empty.yaml") << text;
    test::expect_error([&] { load_config(dir + "/empty.yaml"); }, {dir + "/empty.yaml", "is empty"});
  }
  std::ofstream(dir + "/one.yaml") << "train:\n  epochs: 3\n";
  EXPECT_EQ(load_config(dir + "/one.yaml").train.epochs, 3);
}

TEST(ConfigFiles, SplitCachePath) {
  Config::Data d;
  d.cache_dir = "/c";
  d.val_cache = "/elsewhere/v.bin";
  EXPECT_EQ(split_cache_path(d, "train"), "/c/train.safetensors");
  EXPECT_EQ(split_cache_path(d, "val"), "/elsewhere/v.bin");
  EXPECT_EQ(split_cache_path(d, "test"), "/c/test.safetensors");
  EXPECT_THROW(split_cache_path(d, "dev"), Error);
}

TEST(ConfigOverrides, ScalarListNestedAndOrder) {
  const std::string yaml = "optim:\n  lr: 0.01\ntrain:\n  epochs: 30\n";
  Config c = parse_config(yaml, "run.yaml",
                          {"optim.lr=3e-4", "train.epochs=50", "train.epochs=60",
                           "data.windows=[[400,2000],[40,400]]", "model.in_chans=2",
                           "data.raw.label_id=22", "train.deterministic=true",
                           "posthoc.sweep=[]", "model.pretrained_skip=[fc., head]"});
  EXPECT_DOUBLE_EQ(c.optim.lr, 3e-4);  // the command line beats the file
  EXPECT_EQ(c.train.epochs, 60);       // and later overrides beat earlier ones
  EXPECT_EQ(c.data.preprocess.windows, (std::vector<io::HUWindow>{{400, 2000}, {40, 400}}));
  EXPECT_EQ(c.model.in_chans, 2);
  EXPECT_EQ(c.data.preprocess.label_id, 22);
  EXPECT_TRUE(c.train.deterministic);
  EXPECT_TRUE(c.posthoc.sweep.empty());
  EXPECT_EQ(c.model.pretrained_skip, (std::vector<std::string>{"fc.", "head"}));
  // The rest stays as the file and the defaults had it.
  EXPECT_EQ(c.train.batch_size, 8);
}

TEST(ConfigOverrides, WholeGroupAndStrings) {
  Config c = parse_config("", "x",
                          {"optim={name: sgd, lr: 0.1, nesterov: yes}", "model.pretrained=",
                           "output.dir=runs/a b: c", "data.split.file=splits/[fold 1].csv"});
  EXPECT_EQ(c.optim.kind, OptimizerKind::SGD);
  EXPECT_DOUBLE_EQ(c.optim.lr, 0.1);
  EXPECT_TRUE(c.optim.nesterov);
  EXPECT_EQ(c.model.pretrained, "");
  // A string key keeps text that is not a plain YAML scalar as written.
  EXPECT_EQ(c.output.dir, "runs/a b: c");
  EXPECT_EQ(c.data.split.file, "splits/[fold 1].csv");
}

TEST(ConfigErrors, UnknownKeySuggestsAcrossGroups) {
  std::string m = error_of("train:\n  epochs: 10\n  lr: 0.1\n");
  EXPECT_TRUE(contains_all(m, {"run.yaml:3:", "unknown key 'train.lr'", "did you mean 'optim.lr'?"}));
  m = error_of("optim:\n  lrr: 0.1\n");
  EXPECT_TRUE(contains_all(m, {"run.yaml:2:", "'optim.lrr'", "did you mean 'optim.lr'?"}));
  m = error_of("optimizer:\n  lr: 0.1\n");
  EXPECT_TRUE(contains_all(m, {"run.yaml:1:", "'optimizer'", "did you mean 'optim'?"}));
  m = error_of("train:\n  epoch: 5\n");
  EXPECT_TRUE(contains_all(m, {"'train.epoch'", "did you mean 'train.epochs'?"}));
  // With nothing close, the group's keys are listed instead.
  m = error_of("augment:\n  zzzzzzzzzzzz: 1\n");
  EXPECT_TRUE(contains_all(m, {"'augment.zzzzzzzzzzzz'", "keys of augment are", "flip_prob"}));
}

TEST(ConfigErrors, WrongType) {
  std::string m = error_of("optim:\n  lr: fast\n");
  EXPECT_TRUE(contains_all(m, {"run.yaml:2:7", "optim.lr", "expected a number", "'fast'"}));
  m = error_of("train:\n  epochs: 2.5\n");
  EXPECT_TRUE(contains_all(m, {"train.epochs", "expected an integer", "'2.5'"}));
  m = error_of("train:\n  sync_bn: maybe\n");
  EXPECT_TRUE(contains_all(m, {"train.sync_bn", "expected true or false", "'maybe'"}));
  m = error_of("optim:\n  betas: 0.9\n");
  EXPECT_TRUE(contains_all(m, {"optim.betas", "expected a list of numbers", "'0.9'"}));
  m = error_of("posthoc:\n  sweep: [1.0, x, 0.5]\n");
  EXPECT_TRUE(contains_all(m, {"posthoc.sweep[1]", "expected a number", "'x'"}));
  m = error_of("data:\n  windows: [400, 2000]\n");
  EXPECT_TRUE(contains_all(m, {"data.windows[0]", "[level, width] pair", "'400'", "[[400, 2000]"}));
  m = error_of("optim:\n  lr: [1, 2]\n");
  EXPECT_TRUE(contains_all(m, {"optim.lr", "expected a number", "[1, 2]"}));
  m = error_of("optim:\n  lr: .nan\n");
  EXPECT_TRUE(contains_all(m, {"optim.lr", "number", "'.nan'"}));
  m = error_of("optim:\n  lr:\n");
  EXPECT_TRUE(contains_all(m, {"optim.lr", "expected a number", "no value"}));
}

TEST(ConfigErrors, OutOfRange) {
  std::string m = error_of("train:\n  epochs: 0\n");
  EXPECT_TRUE(contains_all(m, {"train.epochs", "0 is out of range", "must be >= 1"}));
  m = error_of("optim:\n  lr: -1e-3\n");
  EXPECT_TRUE(contains_all(m, {"optim.lr", "-1e-3 is out of range", "must be in (0, 10]"}));
  m = error_of("augment:\n  flip_prob: 1.5\n");
  EXPECT_TRUE(contains_all(m, {"augment.flip_prob", "1.5", "must be in [0, 1]"}));
  m = error_of("loss:\n  beta: 1\n");
  EXPECT_TRUE(contains_all(m, {"loss.beta", "1 is out of range", "must be in (0, 1)"}));
  m = error_of("data:\n  volume: 4\n");
  EXPECT_TRUE(contains_all(m, {"data.volume", "4 is out of range", "must be in [8, 512]"}));
  m = error_of("optim:\n  betas: [0.9, 1.0]\n");
  EXPECT_TRUE(contains_all(m, {"optim.betas[1]", "1.0 is out of range", "must be in [0, 1)"}));
  m = error_of("optim:\n  betas: [0.9, 0.99, 0.999]\n");
  EXPECT_TRUE(contains_all(m, {"optim.betas", "expected 2 numbers, got 3"}));
  m = error_of("data:\n  tscore_thresholds: [-2.5]\n");
  EXPECT_TRUE(contains_all(m, {"data.classes", "must name the 2 classes", "data.tscore_thresholds ([-2.5]"}));
  m = error_of("data:\n  tscore_thresholds: [-1.0, -2.5]\n");
  EXPECT_TRUE(contains_all(m, {"data.tscore_thresholds", "strictly increase", "-1.0"}));
  m = error_of("data:\n  windows: [[400, -5]]\n");
  EXPECT_TRUE(contains_all(m, {"data.windows[0]", "width -5", "must be > 0"}));
  m = error_of("", {"data.split.folds=2"});
  EXPECT_TRUE(contains_all(m, {"data.split.folds", "2 is out of range", "must be in [3, 100]"}));
  m = error_of("", {"train.seed=-1"});
  EXPECT_TRUE(contains_all(m, {"command line", "train.seed", "-1 is out of range", ">= 0"}));
  // Beyond what the C++ field holds, though no documented bound is passed.
  m = error_of("", {"schedule.step_size=99999999999"});
  EXPECT_TRUE(contains_all(m, {"schedule.step_size", "99999999999 is out of range", "2147483647"}));
}

TEST(ConfigErrors, BadEnum) {
  std::string m = error_of("loss:\n  type: focal\n");
  EXPECT_TRUE(contains_all(m, {"run.yaml:2:", "loss.type", "'focal' is not one of",
                               "ce, logit_adjusted, weighted, balanced_softmax, class_balanced"}));
  m = error_of("model:\n  name: ResNet50\n");
  EXPECT_TRUE(contains_all(m, {"model.name", "'ResNet50'", "did you mean 'resnet50'?"}));
  m = error_of("", {"train.precision=fp16"});
  EXPECT_TRUE(contains_all(m, {"command line", "train.precision", "'fp16'", "fp32, tf32, bf16"}));
}

TEST(ConfigErrors, MalformedYamlReportsLineAndColumn) {
  std::string m = error_of("optim:\n  lr: 0.1\n  betas: [0.9, 0.99\ntrain:\n  epochs: 3\n");
  // yaml-cpp reports this one where it gave up looking for the ']'.
  EXPECT_TRUE(std::regex_search(m, std::regex("run\\.yaml:[0-9]+:[0-9]+: malformed YAML: .*flow")))
      << m;
  m = error_of("optim:\n  lr: 0.1\n lr2: 3\n");
  EXPECT_TRUE(contains_all(m, {"run.yaml:3:", "malformed YAML"}));
  m = error_of("", {"data.windows=[[400,2000]"});
  EXPECT_TRUE(contains_all(m, {"command line", "data.windows", "malformed YAML value", "[[400,2000]"}));
}

TEST(ConfigErrors, Overrides) {
  std::string m = error_of("", {"optim.lr"});
  EXPECT_TRUE(contains_all(m, {"command line", "'optim.lr'", "no '='", "key=value"}));
  m = error_of("", {"train.lr=0.1"});
  EXPECT_TRUE(contains_all(m, {"command line", "unknown key 'train.lr'", "did you mean 'optim.lr'?"}));
  m = error_of("", {"optimizer={lr: 0.1}"});
  EXPECT_TRUE(contains_all(m, {"command line", "unknown key 'optimizer'", "did you mean 'optim'?"}));
  m = error_of("", {"=3"});
  EXPECT_TRUE(contains_all(m, {"command line", "'=3'", "no key before '='"}));
}

TEST(ConfigErrors, GroupGivenAScalarOrKeyGivenAMapping) {
  std::string m = error_of("optim: 5\n");
  EXPECT_TRUE(contains_all(m, {"run.yaml:1:8", "optim", "is a group of keys", "name, lr", "'5'"}));
  m = error_of("data:\n  raw: /data/ct\n");
  EXPECT_TRUE(contains_all(m, {"data.raw", "group of keys", "ct_dir", "'/data/ct'"}));
  m = error_of("", {"optim=fast"});
  EXPECT_TRUE(contains_all(m, {"command line", "optim", "group of keys", "'fast'"}));
  m = error_of("- 1\n- 2\n");
  EXPECT_TRUE(contains_all(m, {"run.yaml", "top level must be a mapping", "data, model"}));
  m = error_of("output:\n  dir: {a: 1}\n");
  EXPECT_TRUE(contains_all(m, {"output.dir", "expected a string", "mapping"}));
}

TEST(ConfigErrors, DuplicateKey) {
  std::string m = error_of("train:\n  epochs: 5\n  epochs: 6\n");
  EXPECT_TRUE(contains_all(m, {"run.yaml:3:", "train.epochs", "given twice"}));
}

TEST(ConfigErrors, RulesAcrossKeysNameEveryKeyAndOrigin) {
  std::string m = error_of("schedule:\n  warmup_epochs: 5\n", {"train.epochs=3"});
  EXPECT_TRUE(contains_all(m, {"schedule.warmup_epochs (5, from run.yaml:2:", "train.epochs (3, from command line",
                               "must be less than"}));
  m = error_of("data:\n  split:\n    ratios: [0.5, 0.2, 0.2]\n");
  EXPECT_TRUE(contains_all(m, {"data.split.ratios", "sum to 1", "0.9"}));
  m = error_of("", {"data.windows=[[400,2000],[40,400]]"});
  EXPECT_TRUE(contains_all(m, {"model.in_chans (1, the default)", "number of data.windows, 2"}));
  m = error_of("", {"model.num_classes=4"});
  EXPECT_TRUE(contains_all(m, {"model.num_classes (4, from command line", "contradicts the task",
                               "data.tscore_thresholds ([-2.5, -1.0]", "make 3 classes"}));
  m = error_of("", {"data.split.folds=5", "data.split.fold=5"});
  EXPECT_TRUE(contains_all(m, {"data.split.fold (5", "data.split.folds (5", "less than"}));
  m = error_of("", {"data.split.mode=file"});
  EXPECT_TRUE(contains_all(m, {"data.split.mode (file", "data.split.file"}));
  m = error_of("", {"schedule.min_lr=0.1", "optim.lr=0.01"});
  EXPECT_TRUE(contains_all(m, {"schedule.min_lr (0.1", "optim.lr (0.01"}));
  m = error_of("", {"optim.name=sgd", "optim.nesterov=true", "optim.momentum=0"});
  EXPECT_TRUE(contains_all(m, {"optim.nesterov (true", "optim.momentum (0.0"}));
  m = error_of("", {"model.inflate_2d=true"});
  EXPECT_TRUE(contains_all(m, {"model.inflate_2d (true", "model.pretrained (\"\""}));
}

TEST(ConfigErrors, VertebralHuKeys) {
  std::string m = error_of("", {"data.hu.vertebrae=L9"});
  EXPECT_TRUE(contains_all(m, {"data.hu.vertebrae", "L9"})) << m;
  m = error_of("", {"data.raw.label_id=40"});  // auto cannot tell the scheme
  EXPECT_TRUE(contains_all(m, {"data.hu.labels", "data.raw.label_id (40"})) << m;
  m = error_of("", {"data.hu.calibration=[0.8]"});
  EXPECT_TRUE(contains_all(m, {"data.hu.calibration", "[slope, intercept]"})) << m;
  m = error_of("", {"data.hu.body_map=discs"});
  EXPECT_TRUE(contains_all(m, {"data.hu.body_map", "per_vertebra", "bodies"})) << m;
  // Explicit schemes, switched off, or precropped scans need no L1 label to tell the scheme.
  EXPECT_NO_THROW(parse_config("", "x", {"data.raw.label_id=40", "data.hu.labels=verse"}));
  EXPECT_NO_THROW(parse_config("", "x", {"data.raw.label_id=40", "data.hu.enabled=false"}));
  const Config c = parse_config("", "x", {"data.hu.vertebrae=T12,L1", "data.hu.calibration=[0.8, -1.5]",
                                          "data.hu.body_seg=b/{id}.nii.gz", "data.raw.dicom_series=1.2.3"});
  const io::PrepOptions o = prep_options_from_config(c);
  EXPECT_EQ(o.hu.vertebrae, "T12,L1");
  EXPECT_EQ(o.hu.calibration, (std::vector<double>{0.8, -1.5}));
  EXPECT_EQ(io::body_seg_path(o.hu, "s1"), "b/s1.nii.gz");
  EXPECT_EQ(o.preprocess.dicom_series, "1.2.3");
  const io::RoiOptions ro = io::roi_options(o.hu, o.preprocess.label_id);
  EXPECT_EQ(ro.vertebrae, (std::vector<std::string>{"T12", "L1"}));
  EXPECT_EQ(ro.vertebra_labels.at("L1"), 31);  // auto from label 31: TotalSegmentator v2
  ASSERT_TRUE(ro.calibration);
  EXPECT_DOUBLE_EQ(ro.calibration->slope, 0.8);
}

TEST(ConfigErrors, EveryProblemIsListed) {
  std::string m = error_of("optim:\n  lr: fast\ntrain:\n  epochs: 0\n", {"loss.type=focal"});
  EXPECT_TRUE(contains_all(m, {"3 problems", "optim.lr", "train.epochs", "loss.type"}));
}

TEST(ConfigRoundTrip, ToYamlParsesBackEqual) {
  EXPECT_EQ(parse_config(to_yaml(Config{}), "saved"), Config{});
  Config c = parse_config(
      "", "x",
      {"optim.lr=3.3e-4", "optim.eps=1e-10", "optim.name=sgd", "loss.beta=0.99999",
       "loss.type=class_balanced", "data.windows=[[400,2000],[-600,1500.5],[40,400]]",
       "model.in_chans=3", "model.name=medconv", "train.seed=123456789012",
       "output.dir=runs/with \"quotes\" and: colon #hash", "posthoc.sweep=[0.123456789, 0.1]",
       "model.pretrained_skip=[]", "data.tscore_thresholds=[-3, -0.5]",
       "train.precision=bf16", "augment.enabled=false", "schedule.min_lr=1e-6"});
  ASSERT_NE(c, Config{});
  std::string y = to_yaml(c);
  Config back = parse_config(y, "saved");
  EXPECT_EQ(back, c) << y;
  // Every key is written, with its meaning as a comment.
  for (const auto& k : config_schema())
    EXPECT_NE(y.find(" " + k.path.substr(k.path.rfind('.') + 1) + ": "), std::string::npos) << k.path;
  EXPECT_NE(y.find("# peak learning rate"), std::string::npos);
  // Floats carry a '.' so that YAML 1.1 readers (PyYAML) read them as floats too.
  EXPECT_NE(y.find("eps: 1.0e-10"), std::string::npos) << y;
  EXPECT_NE(y.find("epochs: 200 "), std::string::npos) << y;
  EXPECT_NE(y.find("tau1: 1.0 "), std::string::npos) << y;
}

TEST(ConfigRoundTrip, FlatView) {
  Config c;
  c.optim.lr = 2.5e-4;
  c.data.preprocess.windows = {{400, 2000}, {40, 400}};
  auto flat = config_flat(c);
  EXPECT_EQ(flat.size(), config_schema().size());
  std::map<std::string, std::string> m(flat.begin(), flat.end());
  EXPECT_EQ(m.at("optim.lr"), "0.00025");
  EXPECT_EQ(m.at("data.windows"), "[[400.0, 2000.0], [40.0, 400.0]]");
  EXPECT_EQ(m.at("model.name"), "resnet50");
  EXPECT_EQ(m.at("output.dir"), "\"runs/medconv\"");
  EXPECT_EQ(m.at("train.deterministic"), "false");
}

TEST(ConfigHelp, ListsEveryKeyWithTypeDefaultAndChoices) {
  std::string h = config_help();
  // Meanings are word-wrapped: compare with whitespace runs collapsed.
  std::string flat = std::regex_replace(h, std::regex("\\s+"), " ");
  for (const auto& k : config_schema()) {
    EXPECT_NE(h.find("  " + k.path + " = "), std::string::npos) << k.path;
    EXPECT_NE(flat.find(k.meaning), std::string::npos) << k.path;
    for (const auto& ch : k.choices) EXPECT_NE(h.find(ch), std::string::npos) << k.path;
  }
  for (const auto& g : config_groups()) EXPECT_NE(h.find(g.path + ": " + g.meaning), std::string::npos);
  EXPECT_NE(h.find("optim.lr = 0.001\n      float in (0, 10]"), std::string::npos) << h;
  EXPECT_NE(h.find("loss.type = logit_adjusted\n      one of ce|logit_adjusted|"), std::string::npos);
  EXPECT_NE(h.find("optim.betas = [0.9, 0.999]\n      list of 2 floats in [0, 1)"), std::string::npos);
  EXPECT_NE(h.find("train.epochs = 200\n      int >= 1:"), std::string::npos);
}

}  // namespace
}  // namespace mc::pipeline

namespace mc::pipeline {
namespace {

// Keys that fill the library's own option structs reach them unchanged.
TEST(ConfigLibraryStructs, KeysFillTheLibrarysOptions) {
  Config c = parse_config("", "x",
                          {"loss.type=weighted", "loss.adjust=true", "loss.tau1=0.65",
                           "augment.balaug=true", "augment.balaug_power=1.0", "augment.balaug_cap=3",
                           "augment.flip_prob=0.25", "augment.rotate_prob=0.3", "train.sampling=balanced",
                           "data.num_workers=2", "train.epoch_samples=64", "train.sync_every=25",
                           "train.grad_clip=1.5", "eval.every_epochs=2", "optim.betas=[0.8, 0.99]",
                           "schedule.name=step", "schedule.gamma=0.5", "data.resize=fit"});
  EXPECT_EQ(c.loss.type, losses::LossType::Weighted);
  EXPECT_TRUE(c.loss.adjust);
  EXPECT_DOUBLE_EQ(c.loss.tau1, 0.65);
  EXPECT_TRUE(c.loader.balaug);
  EXPECT_DOUBLE_EQ(c.loader.balaug_power, 1.0);
  EXPECT_DOUBLE_EQ(c.loader.balaug_cap, 3.0);
  for (float p : c.loader.aug.flip_p) EXPECT_EQ(p, 0.25f);  // every axis
  EXPECT_EQ(c.loader.aug.rotate_p, 0.3f);
  EXPECT_EQ(c.loader.sampling, io::Sampling::ClassBalanced);
  EXPECT_EQ(c.loader.workers, 2);
  EXPECT_EQ(c.loader.epoch_samples, 64);
  EXPECT_EQ(c.trainer.sync_every, 25);
  EXPECT_DOUBLE_EQ(c.trainer.grad_clip, 1.5);
  EXPECT_EQ(c.trainer.validate_every, 2);
  EXPECT_EQ(c.optim.betas, (std::array<double, 2>{0.8, 0.99}));
  EXPECT_EQ(c.schedule.kind, LrSchedule::Kind::Step);
  EXPECT_DOUBLE_EQ(c.schedule.gamma, 0.5);
  EXPECT_EQ(c.data.preprocess.resize, io::ResizeMode::Fit);
  // loss.adjust is LossSpec::adjust: class weights and a logit offset together.
  const losses::ClassTerms t = losses::class_terms(c.loss, {10, 20, 70});
  EXPECT_EQ(t.weight.size(), 3u);
  ASSERT_EQ(t.offset.size(), 3u);
  EXPECT_DOUBLE_EQ(t.offset[0], 0.65 * std::log(0.1));
  // balaug's strengths: min(cap, (n_max / n_c)^power).
  EXPECT_EQ(io::balaug_strengths({10, 20, 70}, c.loader.balaug_power, c.loader.balaug_cap),
            (std::vector<float>{3.0f, 3.0f, 1.0f}));
  // Float fields show what was written, and read back equal.
  auto flat = config_flat(c);
  std::map<std::string, std::string> m(flat.begin(), flat.end());
  EXPECT_EQ(m.at("augment.rotate_prob"), "0.3");
  EXPECT_EQ(m.at("augment.flip_prob"), "0.25");
  EXPECT_EQ(parse_config(to_yaml(c), "saved"), c);
}

TEST(ConfigLibraryStructs, DefaultsAreTheTrainingDefaults) {
  const Config c;
  EXPECT_FALSE(c.loss.adjust);
  EXPECT_TRUE(c.loader.augment);
  EXPECT_FALSE(c.loader.balaug);
  EXPECT_DOUBLE_EQ(c.loader.balaug_power, 0.5);
  EXPECT_DOUBLE_EQ(c.loader.balaug_cap, 2.0);
  EXPECT_EQ(c.loader.aug.rot90_p, 0.25f);
  EXPECT_EQ(c.loader.aug.rotate_p, 0.3f);
  EXPECT_EQ(c.loader.aug.scale_range, 0.0f);  // HU carries the label
  EXPECT_EQ(c.loader.aug.shift_range, 0.0f);
  EXPECT_EQ(c.loader.workers, 4);
  EXPECT_EQ(c.trainer.sync_every, 10);
  EXPECT_EQ(c.trainer.validate_every, 1);
  EXPECT_DOUBLE_EQ(c.optim.momentum, 0.9);
  // The config spells library enums as the libraries do.
  for (losses::LossType t : {losses::LossType::CE, losses::LossType::LogitAdjusted, losses::LossType::Weighted, losses::LossType::BalancedSoftmax,
                     losses::LossType::ClassBalanced})
    EXPECT_EQ(to_string(t), losses::loss_type_name(t));
  for (OptimizerKind k : {OptimizerKind::AdamW, OptimizerKind::SGD, OptimizerKind::SAM, OptimizerKind::ScheduleFreeAdamW}) EXPECT_EQ(to_string(k), optimizer_name(k));
  for (io::ResizeMode r : {io::ResizeMode::Pad, io::ResizeMode::Fit, io::ResizeMode::Stretch}) EXPECT_EQ(to_string(r), io::resize_mode_name(r));
  EXPECT_THROW(to_string(io::Sampling::Sequential), Error);  // evaluation order: not a training choice
}

TEST(ConfigLibraryStructs, NewKeysRangesAndRules) {
  std::string m = error_of("", {"augment.balaug_power=-1"});
  EXPECT_TRUE(contains_all(m, {"augment.balaug_power", "-1 is out of range", "must be in [0, 4]"}));
  m = error_of("", {"augment.balaug_cap=0.5"});
  EXPECT_TRUE(contains_all(m, {"augment.balaug_cap", "0.5 is out of range", "must be in [1, 10]"}));
  m = error_of("", {"train.sync_every=0"});
  EXPECT_TRUE(contains_all(m, {"train.sync_every", "0 is out of range", "must be in [1, 100000]"}));
  m = error_of("loss:\n  adjust: sometimes\n");
  EXPECT_TRUE(contains_all(m, {"loss.adjust", "expected true or false", "'sometimes'"}));
  m = error_of("", {"loss.adjust=true"});
  EXPECT_TRUE(contains_all(m, {"loss.adjust (true, from command line", "loss.type (logit_adjusted, the default)",
                               "weighted or class_balanced"}));
  EXPECT_NO_THROW(parse_config("", "x", {"loss.type=class_balanced", "loss.adjust=true"}));
  m = error_of("augment:\n  balaug_pwr: 1\n");
  EXPECT_TRUE(contains_all(m, {"'augment.balaug_pwr'", "did you mean 'augment.balaug_power'?"}));
}

TEST(PrepConfig, MaskModeAndPreprocessing) {
  Config c = parse_config("", "x", {"data.raw.label_id=22", "data.volume=64", "data.windows=[[400,2000],[40,400]]",
                                    "model.in_chans=2", "data.mask_outside=true", "data.num_workers=0"});
  io::PreprocessOptions p = preprocess_options_from_config(c);
  EXPECT_EQ(p.label_id, 22);
  EXPECT_FALSE(p.precropped);
  EXPECT_EQ(p.volume, 64);
  EXPECT_TRUE(p.mask_outside);
  EXPECT_EQ(p.windows, (std::vector<io::HUWindow>{{400, 2000}, {40, 400}}));
  c.data.raw.mask_mode = Config::Raw::MaskMode::Binary;
  EXPECT_EQ(preprocess_options_from_config(c).label_id, -1);
  c.data.raw.mask_mode = Config::Raw::MaskMode::Precropped;
  EXPECT_TRUE(preprocess_options_from_config(c).precropped);
  const io::PrepOptions o = prep_options_from_config(c);
  EXPECT_EQ(o.workers, 2);  // preparation uses at least two threads
  EXPECT_EQ(o.preprocess.volume, 64);
  EXPECT_DOUBLE_EQ(o.task.thresholds.at(0), -2.5);
  EXPECT_DOUBLE_EQ(o.ratios.val, 0.15);
}

}  // namespace
}  // namespace mc::pipeline
