// The table of every configuration key (type, range, meaning, the Config field it fills); its
// text forms (--help, the resolved YAML of a run, the flat view) are in config_text.cpp. Defaults are not written here:
// they are read from a default-constructed Config.
#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <type_traits>

#include "engine/check.h"
#include "engine/metrics.h"
#include "pipeline/config.h"

namespace mc::pipeline {
namespace {

template <class T> struct is_array : std::false_type {};
template <size_t N> struct is_array<std::array<double, N>> : std::true_type {};

template <class T>
constexpr KeyType key_type_of() {
  if constexpr (std::is_same_v<T, bool>) return KeyType::Bool;
  else if constexpr (ConfigEnum<T>) return KeyType::Enum;
  else if constexpr (std::is_integral_v<T>) return KeyType::Int;
  else if constexpr (std::is_floating_point_v<T>) return KeyType::Float;
  else if constexpr (std::is_same_v<T, std::string>) return KeyType::String;
  else if constexpr (std::is_same_v<T, std::vector<double>> || is_array<T>::value) return KeyType::FloatList;
  else if constexpr (std::is_same_v<T, std::vector<std::string>>) return KeyType::StringList;
  else if constexpr (std::is_same_v<T, std::vector<io::HUWindow>>) return KeyType::WindowList;
  else static_assert(!sizeof(T), "no KeyType for this field type");
}

// A float field's value as the double its shortest text spells (0.3f -> 0.3, not
// 0.30000001192092896), so help, to_yaml and the flat view show what was written.
double widen(float f) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, f);
  double d = 0;
  std::from_chars(buf, end, d);
  return d;
}

// Fluent construction of one key: key("optim.lr", field, "meaning").gt(0).
class KeyBuilder {
 public:
  explicit KeyBuilder(ConfigKey k) : k_(std::move(k)) {}
  KeyBuilder& ge(double v) { k_.lo = v; k_.lo_open = false; return *this; }
  KeyBuilder& gt(double v) { k_.lo = v; k_.lo_open = true; return *this; }
  KeyBuilder& le(double v) { k_.hi = v; k_.hi_open = false; return *this; }
  KeyBuilder& lt(double v) { k_.hi = v; k_.hi_open = true; return *this; }
  KeyBuilder& len(size_t lo, size_t hi) { k_.min_len = lo; k_.max_len = hi; return *this; }
  KeyBuilder& increasing() { k_.increasing = true; return *this; }
  KeyBuilder& prob() { return ge(0).le(1); }
  operator ConfigKey() && { return std::move(k_); }

 private:
  ConfigKey k_;
};

// The setter and getter of a field of type T (field: Config& -> T&), the value carried as
// ConfigValue's type for T: enums as their spelling, integers as int64_t, floats as double,
// fixed arrays as a list.
template <class T, class Field>
void bind(ConfigKey& k, Field field) {
  // Reading through the accessor (which takes Config&) does not modify the Config.
  auto ref = [field](const Config& c) -> const T& { return field(const_cast<Config&>(c)); };
  if constexpr (ConfigEnum<T>) {
    for (const auto& [v, name] : EnumNames<T>::values) k.choices.emplace_back(name);
    k.set = [field](Config& c, const ConfigValue& v) {
      const auto& s = std::get<std::string>(v);
      for (const auto& [value, name] : EnumNames<T>::values)
        if (name == s) {
          field(c) = value;
          return;
        }
      MC_FAIL("config: '", s, "' is not a value of this enum");  // the parser checked already
    };
    k.get = [ref](const Config& c) { return ConfigValue(std::string(to_string(ref(c)))); };
  } else if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    k.int_min = std::numeric_limits<T>::min();
    k.int_max = static_cast<int64_t>(std::numeric_limits<T>::max());
    k.set = [field](Config& c, const ConfigValue& v) { field(c) = static_cast<T>(std::get<int64_t>(v)); };
    k.get = [ref](const Config& c) { return ConfigValue(static_cast<int64_t>(ref(c))); };
  } else if constexpr (std::is_same_v<T, float>) {
    k.set = [field](Config& c, const ConfigValue& v) { field(c) = static_cast<float>(std::get<double>(v)); };
    k.get = [ref](const Config& c) { return ConfigValue(widen(ref(c))); };
  } else if constexpr (is_array<T>::value) {
    k.min_len = k.max_len = std::tuple_size_v<T>;
    k.set = [field](Config& c, const ConfigValue& v) {
      const auto& list = std::get<std::vector<double>>(v);  // length checked by the parser
      std::copy(list.begin(), list.end(), field(c).begin());
    };
    k.get = [ref](const Config& c) { return ConfigValue(std::vector<double>(ref(c).begin(), ref(c).end())); };
  } else {
    k.set = [field](Config& c, const ConfigValue& v) { field(c) = std::get<T>(v); };
    k.get = [ref](const Config& c) { return ConfigValue(ref(c)); };
  }
}

// field: a captureless lambda Config& -> T& naming the member the key fills.
template <class Field>
KeyBuilder key(std::string path, Field field, std::string meaning) {
  using T = std::remove_reference_t<decltype(field(std::declval<Config&>()))>;
  ConfigKey k;
  k.path = std::move(path);
  k.type = key_type_of<T>();
  k.meaning = std::move(meaning);
  bind<T>(k, field);
  return KeyBuilder(std::move(k));
}

// One value for every element of a fixed-size array field (augment.flip_prob: each axis alike).
template <class Field>
KeyBuilder key_all(std::string path, Field field, std::string meaning) {
  using A = std::remove_reference_t<decltype(field(std::declval<Config&>()))>;
  using T = std::remove_extent_t<A>;
  auto first = [field](Config& c) -> T& { return field(c)[0]; };
  ConfigKey k;
  k.path = std::move(path);
  k.type = key_type_of<T>();
  k.meaning = std::move(meaning);
  bind<T>(k, first);
  k.set = [set = k.set, field](Config& c, const ConfigValue& v) {
    set(c, v);
    std::fill(std::begin(field(c)), std::end(field(c)), field(c)[0]);
  };
  return KeyBuilder(std::move(k));
}

#define F(expr) [](Config& c) -> auto& { return c.expr; }

// Keys by group, in the order of help and to_yaml (each group's keys contiguous).
using Add = const std::function<void(KeyBuilder)>&;

void data_keys(Add add) {
  add(key("data.cache_dir", F(data.cache_dir),
          "folder of the preprocessed per-split cache files that mc_prep writes"));
  add(key("data.train_cache", F(data.train_cache),
          "training cache file; \"\" = <cache_dir>/train.safetensors"));
  add(key("data.val_cache", F(data.val_cache),
          "validation cache file; \"\" = <cache_dir>/val.safetensors"));
  add(key("data.test_cache", F(data.test_cache), "test cache file; \"\" = <cache_dir>/test.safetensors"));
  add(key("data.volume", F(data.preprocess.volume), "edge of the cubic network input in voxels")
          .ge(8).le(512));
  add(key("data.spacing_mm", F(data.preprocess.spacing_mm),
          "voxel size of the cube in resize mode pad (field of view = volume x spacing_mm)")
          .gt(0).le(20));
  add(key("data.margin_mm", F(data.preprocess.margin_mm), "margin added around the L1 bounding box")
          .ge(0).le(200));
  add(key("data.spacing_range_mm", F(data.preprocess.spacing_range_mm),
          "plausible CT voxel edges [min, max] in mm; a scan outside is that subject's failure "
          "(metres or microns in a header)")
          .len(2, 2).increasing().gt(0).le(1000));
  add(key("data.min_fov_mm", F(data.preprocess.min_fov_mm),
          "a scan narrower than this along any axis cannot hold a vertebra: that subject fails")
          .ge(0).le(1000));
  add(key("data.resize", F(data.preprocess.resize),
          "how the crop becomes the cube: pad: spacing_mm voxels, centred and padded or cropped "
          "to the cube; fit: the longest side fills the cube; stretch: each axis to the cube"));
  add(key("data.windows", F(data.preprocess.windows),
          "HU windows as [level, width] pairs, one input channel each, mapped to [0, 1]")
          .len(1, 8));
  add(key("data.mask_outside", F(data.preprocess.mask_outside),
          "zero the voxels outside the L1 mask (after windowing)"));
  add(key("data.tscore_thresholds", F(data.tscore_thresholds),
          "T-score cut points, increasing: n make n + 1 classes from the lowest T (class 0: T <= "
          "first; last: T >= last; WHO: [-2.5, -1]); [] = labels from a class column")
          .len(0, 64).increasing().ge(-10).le(10));
  add(key("data.classes", F(data.classes),
          "class names in index order (labels may use names or indices); [] = osteoporosis, "
          "osteopenia, normal (two thresholds)").len(0, 1000));
  add(key("data.positive_class", F(data.positive_class),
          "binary tasks: the class screening metrics call positive; \"\" = the first class with "
          "thresholds (lowest T), else the second"));
  add(key("data.num_workers", F(loader.workers),
          "loader threads for sampling and augmentation (0 = in the training thread)")
          .ge(0).le(256));
  add(key("data.raw.ct_dir", F(data.raw.ct_dir),
          "folder of CT volumes, one <subject>.nii.gz or DICOM series folder <subject>/ each "
          "(read by mc_prep only)"));
  add(key("data.raw.seg_dir", F(data.raw.seg_dir),
          "folder of segmentations, <subject>.nii.gz on the CT's grid (unused when precropped)"));
  add(key("data.raw.labels_csv", F(data.raw.labels_csv),
          "CSV with a header row: subject id, and a T-score and/or class column"));
  add(key("data.raw.label_id", F(data.preprocess.label_id),
          "segmentation label of L1: TotalSegmentator v2 31, v1 22, VerSe 20")
          .ge(1).le(65535));
  add(key("data.raw.mask_mode", F(data.raw.mask_mode),
          "multilabel: pick label_id from a multi-label map; binary: segmentation is the L1 "
          "mask; precropped: CTs are already L1 crops"));
  add(key("data.raw.dicom_series", F(data.preprocess.dicom_series),
          "SeriesInstanceUID to read when a subject's DICOM folder holds several series "
          "(\"\" = it must hold one; the error lists them with their descriptions)"));
  add(key("data.hu.enabled", F(data.hu.enabled),
          "mc_prep measures each vertebra's body and trabecular ROI HU into the manifest "
          "(mc_eval's HU baseline uses them)"));
  add(key("data.hu.vertebrae", F(data.hu.vertebrae), "vertebrae to measure: L1-L5, T12,L1, L1"));
  add(key("data.hu.labels", F(data.hu.labels),
          "label scheme of the vertebrae segmentation: totalseg_v2, totalseg_v1, verse, or auto "
          "(from data.raw.label_id)"));
  add(key("data.hu.body_seg", F(data.hu.body_seg),
          "vertebral-body segmentation per subject, {id} = subject id (e.g. "
          "\"bodies/{id}.nii.gz\"); \"\" = bodies estimated from the vertebra masks"));
  add(key("data.hu.body_map", F(data.hu.body_map),
          "per_vertebra: body_seg has one label per body (TotalSegmentator vertebrae_pp, VerSe "
          "numbers, L1 = 20); bodies: body_seg marks bodies with body_label (vertebrae_body task)"));
  add(key("data.hu.body_label", F(data.hu.body_label), "label of the bodies in a body_map bodies segmentation")
          .ge(1).le(65535));
  add(key("data.hu.margin_mm", F(data.hu.margin_mm),
          "the trabecular ROI is the body eroded by this much (cortex and partial volume left out)")
          .ge(0).le(30));
  add(key("data.hu.estimate_radius_mm", F(data.hu.estimate_radius_mm),
          "radius of the opening that estimates a body from its vertebra mask (no body_seg)")
          .gt(0).le(30));
  add(key("data.hu.calibration", F(data.hu.calibration),
          "scanner calibration [slope, intercept]: BMD mg/cm^3 = slope * HU + intercept, for "
          "volumetric BMD and ACR QCT categories; [] = none")
          .len(0, 2));
  add(key("data.split.mode", F(data.split.mode),
          "ratio: random stratified split by ratios; kfold: stratified folds, fold <fold> is "
          "test, fold <fold>+1 (mod folds) validation, the rest train; file: read from split.file"));
  add(key("data.split.ratios", F(data.split.ratios),
          "train, val, test fractions of the subjects for mode ratio; sum to 1")
          .prob().len(3, 3));
  add(key("data.split.folds", F(data.split.folds), "number of folds for mode kfold (one test, one validation, the rest train)")
          .ge(3).le(100));
  add(key("data.split.fold", F(data.split.fold), "which fold is the test fold (0-based)").ge(0));
  add(key("data.split.file", F(data.split.file),
          "CSV of subject,split (split = train|val|test) for mode file"));
}

void model_and_loss_keys(Add add) {
  // model
  add(key("model.name", F(model.name), "network (timm names); medconv is the paper's name for resnet50; resnet10t, resnet14t, resnext50_32x4d, mobilenetv2_100, efficientnet_b0 are Table II's other backbones"));
  add(key("model.in_chans", F(model.in_chans),
          "input channels; must equal the number of data.windows").ge(1).le(64));
  add(key("model.num_classes", F(model.num_classes),
          "classes of the task; derived from data.classes / data.tscore_thresholds, an error "
          "when set to another number").ge(2).le(1000));
  add(key("model.head", F(model.head),
          "classification: one logit per class; regression: one output, the T-score (the class "
          "is derived with data.tscore_thresholds)"));
  add(key("model.zero_init_last", F(model.zero_init_last),
          "zero the last batch norm of each residual block at init, so blocks start as their "
          "shortcut (timm's default; torchvision's is off). Off by default: at volumes up to "
          "32^3 the shortcut path then sees only the input's corner and every volume gives the "
          "same features (a dead start)"));
  add(key("model.pretrained", F(model.pretrained),
          "safetensors weights to start from, in PyTorch key names; \"\" = random init"));
  add(key("model.inflate_2d", F(model.inflate_2d),
          "the pretrained weights are 2D (ImageNet): inflate k x k kernels to k x k x k and sum "
          "RGB filters"));
  add(key("model.pretrained_skip", F(model.pretrained_skip),
          "key prefixes of the pretrained weights not loaded (the classifier, whose shape "
          "differs)"));

  // loss
  add(key("loss.type", F(loss.type),
          "ce; logit_adjusted: CE(logits + tau1 log prior) (the paper's Bal-CE); weighted: "
          "inverse-frequency class weights; balanced_softmax: CE(logits + log n_y); "
          "class_balanced: Cui et al. effective-number weights"));
  add(key("loss.regression", F(loss.regression),
          "regression head: huber or mse on the T-score"));
  add(key("loss.huber_delta", F(loss.huber_delta),
          "huber: quadratic within +-delta T-score units, linear beyond").gt(0).le(100));
  add(key("loss.tau1", F(loss.tau1), "logit-adjustment strength during training").ge(0).le(10));
  add(key("loss.beta", F(loss.beta),
          "class_balanced: weight (1 - beta) / (1 - beta^n_y)").gt(0).lt(1));
  add(key("loss.adjust", F(loss.adjust),
          "weighted, class_balanced: also add tau1 log prior to the logits (class weights and "
          "logit adjustment together)"));

  // posthoc
  add(key("posthoc.tau2", F(posthoc.tau2),
          "evaluation scores = logits - tau2 log prior (0 = off)").ge(0).le(10));
  add(key("posthoc.sweep", F(posthoc.sweep),
          "tau2 values also evaluated and reported, as in the paper's table").ge(0).le(10).len(0, 100));
}

void optimisation_keys(Add add) {
  // optim
  add(key("optim.name", F(optim.kind),
          "optimiser; sam: sharpness-aware minimisation around optim.sam_base (two forward and "
          "backward passes per step); schedulefree_adamw: needs schedule.name constant"));
  add(key("optim.lr", F(optim.lr), "peak learning rate (reached after warm-up)").gt(0).le(10));
  add(key("optim.weight_decay", F(optim.weight_decay),
          "decoupled (adamw) or L2 (sgd) weight decay").ge(0).le(10));
  add(key("optim.betas", F(optim.betas), "adamw: moment decay rates [beta1, beta2]")
          .ge(0).lt(1).len(2, 2));
  add(key("optim.eps", F(optim.eps), "adamw: denominator epsilon").gt(0).le(1));
  add(key("optim.momentum", F(optim.momentum), "sgd: momentum").ge(0).lt(1));
  add(key("optim.nesterov", F(optim.nesterov), "sgd: Nesterov momentum (needs momentum > 0)"));
  add(key("optim.sam_base", F(optim.sam_base), "sam: the optimiser it wraps, adamw or sgd"));
  add(key("optim.sam_rho", F(optim.sam_rho), "sam: radius of the ascent step").gt(0).le(10));
  add(key("optim.warmup_steps", F(optim.warmup_steps),
          "schedulefree_adamw: optimiser steps of linear learning-rate warm-up").ge(0));

  // schedule
  add(key("schedule.name", F(schedule.kind),
          "learning-rate schedule after warm-up, set before every optimiser step: cosine to "
          "min_lr over the remaining steps (PyTorch's CosineAnnealingLR(T_max = all steps) "
          "stepped per step), step (x gamma every step_size epochs) or constant"));
  add(key("schedule.warmup_epochs", F(schedule.warmup_epochs),
          "epochs of linear warm-up from 0 to optim.lr, ramped per step; less than train.epochs").ge(0));
  add(key("schedule.step_size", F(schedule.step_size), "step: epochs between decays").ge(1));
  add(key("schedule.gamma", F(schedule.gamma), "step: decay factor").gt(0).le(1));
  add(key("schedule.min_lr", F(schedule.min_lr), "cosine: final learning rate; <= optim.lr")
          .ge(0));
}

void training_keys(Add add) {
  add(key("train.epochs", F(train.epochs), "passes over the training set").ge(1));
  add(key("train.batch_size", F(train.batch_size),
          "volumes per optimiser step (over all GPUs)").ge(1).le(4096));
  add(key("train.precision", F(train.precision),
          "compute precision; weights, batch-norm statistics and loss stay fp32"));
  add(key("train.sampling", F(loader.sampling),
          "shuffle: each volume once per epoch; balanced: classes drawn equally often"));
  add(key("train.seed", F(train.seed),
          "seed of every random draw (init, split, sampling, augmentation)").ge(0));
  add(key("train.device", F(train.device), "auto: CUDA when a GPU is present, else CPU"));
  add(key("train.deterministic", F(train.deterministic),
          "bit-reproducible GPU runs (deterministic algorithms, maybe slower)"));
  add(key("train.grad_clip", F(trainer.grad_clip),
          "clip the global gradient L2 norm to this (0 = off)").ge(0));
  add(key("train.sync_every", F(trainer.sync_every),
          "steps between host reads of the step losses (progress, NaN/Inf check, GPU error flags); "
          "each read waits for the GPU").ge(1).le(100000));
  add(key("train.epoch_samples", F(loader.epoch_samples),
          "samples drawn per epoch (global); 0 = the training set once (class-balanced: its labelled size)")
          .ge(0));
  add(key("train.all_folds", F(train.all_folds),
          "cross-validation as one run: train every one of data.split.folds folds into output.dir/fold_<k>/ "
          "and report the pooled out-of-fold predictions (mc_train --folds K)"));
  add(key("train.sync_bn", F(train.sync_bn),
          "synchronise batch-norm statistics over GPUs (matches one GPU's batch)"));
}

void augmentation_keys(Add add) {
  add(key("augment.enabled", F(loader.augment), "augment training volumes"));
  add(key_all("augment.flip_prob", F(loader.aug.flip_p), "probability of a flip, for each axis on its own").prob());
  add(key("augment.rot90_prob", F(loader.aug.rot90_p),
          "probability of a random 90-degree rotation").prob());
  add(key("augment.rotate_deg", F(loader.aug.rotate_deg),
          "small rotations are drawn from [-rotate_deg, rotate_deg] degrees").ge(0).le(180));
  add(key("augment.rotate_prob", F(loader.aug.rotate_p),
          "probability of a small rotation").prob());
  add(key("augment.intensity_prob", F(loader.aug.intensity_p),
          "probability of an intensity scale and shift").prob());
  add(key("augment.intensity_scale", F(loader.aug.scale_range),
          "intensities multiplied by 1 + U(-s, s); off by default: HU carries the label").ge(0).le(1));
  add(key("augment.intensity_shift", F(loader.aug.shift_range),
          "U(-s, s) added to the [0, 1] intensities (0.1 = 200 HU in a 2000 HU window)").ge(0).le(1));
  add(key("augment.noise_prob", F(loader.aug.noise_p), "probability of added Gaussian noise")
          .prob());
  add(key("augment.noise_std", F(loader.aug.noise_std),
          "the noise's standard deviation is drawn from U(0, noise_std) (0 = none)").ge(0).le(1));
  add(key("augment.balaug", F(loader.balaug),
          "the paper's balaug: rarer classes are augmented with higher probability"));
  add(key("augment.balaug_power", F(loader.balaug_power),
          "balaug: class c's strength is min(balaug_cap, (n_max / n_c)^balaug_power), scaling "
          "the perturbations' probabilities and magnitudes (0 = every class alike)").ge(0).le(4));
  add(key("augment.balaug_cap", F(loader.balaug_cap),
          "balaug: the largest strength a class gets (1 = every class alike)").ge(1).le(10));
}

void evaluation_and_output_keys(Add add) {
  // eval
  add(key("eval.select_by", F(eval.select_by),
          "validation metric that picks the best checkpoint (loss, mae: lowest; auto: macro_auc, "
          "or mae for a regression head)"));
  add(key("eval.target_sensitivity", F(eval.target_sensitivity),
          "binary tasks: the report's operating point is the highest threshold reaching this "
          "sensitivity on the validation split, then applied to the evaluated split").gt(0).le(1));
  add(key("eval.bootstrap", F(eval.bootstrap),
          "bootstrap resamples for 95% confidence intervals (0 = none)").ge(0).le(double(kMaxBootstrapResamples)));
  add(key("eval.every_epochs", F(trainer.validate_every), "validate every this many epochs").ge(1));

  // output
  add(key("output.dir", F(output.dir),
          "run folder: resolved config, log, metrics, plots, checkpoints"));
  add(key("output.checkpoint_every", F(output.checkpoint_every),
          "save a checkpoint every this many epochs (0 = only best and last)").ge(0));
  add(key("output.keep_last", F(output.keep_last),
          "keep only the newest periodic checkpoint (the best one is always kept)"));
}

std::vector<ConfigKey> build_schema() {
  std::vector<ConfigKey> s;
  auto add = [&](KeyBuilder b) { s.push_back(std::move(b)); };
  for (auto group : {data_keys, model_and_loss_keys, optimisation_keys, training_keys, augmentation_keys,
                     evaluation_and_output_keys})
    group(add);
  return s;
}

#undef F

}  // namespace

const std::vector<ConfigKey>& config_schema() {
  static const std::vector<ConfigKey> schema = build_schema();
  return schema;
}

const std::vector<ConfigGroup>& config_groups() {
  static const std::vector<ConfigGroup> groups{
      {"data", "what to train on and how it is preprocessed"},
      {"data.raw", "the source files mc_prep turns into caches"},
      {"data.hu", "per-vertebra HU of the vertebral body and its trabecular ROI (mc_prep's manifest)"},
      {"data.split", "how subjects are divided into train, validation and test"},
      {"model", "the network"},
      {"loss", "training loss (long-tail aware)"},
      {"posthoc", "post-hoc logit adjustment at evaluation"},
      {"optim", "optimiser"},
      {"schedule", "learning-rate schedule"},
      {"train", "the training loop"},
      {"augment", "training-time augmentation"},
      {"eval", "validation and test"},
      {"output", "where results go"},
  };
  return groups;
}

}  // namespace mc::pipeline
