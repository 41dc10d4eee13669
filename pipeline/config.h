// The run configuration: one YAML file plus key=value overrides, checked against a typed schema.
//
// Every key has a type, a default, an allowed range or set of values and a one-line meaning
// (config_schema(), printed by config_help()). The defaults are the member initialisers below:
// the schema reads them from a default-constructed Config, so they live in one place only.
// Precedence: defaults < config file < command-line overrides, left to right.
//
// Where a layer has an options struct of its own, Config holds that struct and the keys fill
// its fields directly (config_schema.cpp maps each key to its field): a new option of the loss,
// the loader, the optimiser, the schedule, the trainer or preprocessing needs one schema line.
// Fields of those structs that no key names (the loader's rank, world and device, ...) are set
// by the code that runs them.
#pragma once
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "engine/check.h"
#include "engine/precision.h"
#include "engine/schedule.h"
#include "engine/train_optim.h"
#include "engine/trainer.h"
#include "io/loader.h"
#include "io/prep_hu.h"
#include "io/preprocess.h"
#include "io/task.h"
#include "losses/losses.h"

namespace mc::pipeline {

// ---- the resolved configuration ----
//
// Group structs and enums of Config's own are nested in it (Config::Train::Device) so that
// their names never meet the library's types of similar names.

struct Config {
  struct Raw {
    enum class MaskMode { Multilabel, Binary, Precropped };
    std::string ct_dir;
    std::string seg_dir;
    std::string labels_csv;
    // data.raw.label_id is data.preprocess.label_id; preprocess_options_from_config applies
    // the mask mode to it.
    MaskMode mask_mode = MaskMode::Multilabel;
  };

  struct Split {
    enum class Mode { Ratio, KFold, File };
    Mode mode = Mode::Ratio;
    std::vector<double> ratios{0.7, 0.15, 0.15};  // train, val, test
    int folds = 5;
    int fold = 0;
    std::string file;
  };

  struct Data {
    std::string cache_dir = "data/cache";
    std::string train_cache;  // "" = split_cache_path(data, "train")
    std::string val_cache;
    std::string test_cache;
    // data.{volume, spacing_mm, margin_mm, resize, windows, mask_outside} and data.raw.label_id.
    // Its defaults are the config's: 96 voxels of 1.25 mm (a 120 mm field holds a whole L1 with
    // its processes), margin 5 mm, one bone window L 400 / W 2000.
    io::PreprocessOptions preprocess;
    std::vector<double> tscore_thresholds{-2.5, -1.0};  // WHO bands; [] = labels from a class column
    // Class names in index order; [] = the WHO names (with two thresholds). task_of() is the
    // task these keys and model.head make.
    std::vector<std::string> classes;
    std::string positive_class;  // binary reports; "" = Task's default
    io::HuOptions hu;  // data.hu.*: mc_prep's per-vertebra HU measurements (io/prep_hu.h)
    Raw raw;
    Split split;
  };

  struct Model {
    // MedConv is the paper's name for its 3D ResNet-50: the two names build the same network.
    enum class Name {
      ResNet10, ResNet18, ResNet34, ResNet50, ResNet101, ResNet152, MedConv,
      // Table II (models/zoo.h)
      ResNet10t, ResNet14t, ResNeXt50_32x4d, MobileNetV2_100, EfficientNetB0
    };
    Name name = Name::ResNet50;
    int in_chans = 1;
    int num_classes = 3;  // derived from the task when not set; checked against it when set
    io::Task::Head head = io::Task::Head::Classification;
    std::string pretrained;
    bool inflate_2d = false;
    // false: chosen by measurement (README "Initialisation"); timm's true starts dead
    // at volumes up to 32^3 on background-padded cubes.
    bool zero_init_last = false;
    std::vector<std::string> pretrained_skip{"fc."};
  };

  struct Posthoc {
    double tau2 = 0.5;
    std::vector<double> sweep{1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1};
  };

  struct Train {
    enum class Device { Auto, CPU, CUDA };
    int epochs = 200;
    int batch_size = 8;  // global: divided over the ranks
    Precision precision = Precision::FP32;
    int64_t seed = 0;  // every random draw: init, split, sampling, augmentation
    Device device = Device::Auto;
    bool deterministic = false;
    bool sync_bn = false;
    // Cross-validation as one run (pipeline/crossval.h): every one of data.split.folds folds
    // trained into <output.dir>/fold_<k>/, then one report of the pooled out-of-fold predictions.
    bool all_folds = false;
  };

  struct Eval {
    // auto: macro_auc for classification, mae for regression.
    enum class SelectBy { Auto, MacroAUC, BalancedAccuracy, Accuracy, Loss, MAE };
    SelectBy select_by = SelectBy::Auto;
    int bootstrap = 1000;
    double target_sensitivity = 0.90;  // binary: the operating point chosen on validation
  };

  struct Output {
    std::string dir = "runs/medconv";
    int checkpoint_every = 10;
    bool keep_last = true;
  };

  Data data;
  Model model;
  losses::LossSpec loss;  // loss.*
  Posthoc posthoc;
  OptimizerOptions optim;  // optim.*
  LrSchedule schedule;     // schedule.*
  Train train;
  TrainerOptions trainer;  // train.grad_clip, train.sync_every, eval.every_epochs
  // train.sampling, train.epoch_samples, data.num_workers, augment.*.
  io::LoaderOptions loader = default_training_loader();
  Eval eval;
  Output output;

  // The loader's settings as training starts from them: augmentation on, and the intensity
  // scale and shift off (in this task the intensity IS the label: trabecular HU tracks the
  // T-score, ~45 HU per T unit; a shift of 0.1 in a 2000 HU window is 200 HU and erased the
  // signal in our runs on generated data, balanced accuracy 0.49 -> 0.65 without it).
  static io::LoaderOptions default_training_loader();
};

// The task of a resolved config: data.classes (or the WHO names), data.tscore_thresholds,
// data.positive_class, model.head.
io::Task task_of(const Config& c);

// Equal when every key has the same value (config_flat): fields no key names are not compared.
bool operator==(const Config& a, const Config& b);

// ---- YAML spellings of the enums: EnumNames<E>::values pairs each value with its spelling ----

template <class E> struct EnumNames;
#define MC_CONFIG_ENUM(E, ...)                                                    \
  template <> struct EnumNames<E> {                                                \
    static constexpr std::pair<E, std::string_view> values[] = {__VA_ARGS__};      \
  };
MC_CONFIG_ENUM(Config::Raw::MaskMode, {Config::Raw::MaskMode::Multilabel, "multilabel"},
               {Config::Raw::MaskMode::Binary, "binary"}, {Config::Raw::MaskMode::Precropped, "precropped"})
MC_CONFIG_ENUM(Config::Split::Mode, {Config::Split::Mode::Ratio, "ratio"}, {Config::Split::Mode::KFold, "kfold"},
               {Config::Split::Mode::File, "file"})
MC_CONFIG_ENUM(io::BodyMap, {io::BodyMap::PerVertebra, "per_vertebra"}, {io::BodyMap::Bodies, "bodies"})
MC_CONFIG_ENUM(io::ResizeMode, {io::ResizeMode::Pad, "pad"}, {io::ResizeMode::Fit, "fit"}, {io::ResizeMode::Stretch, "stretch"})
MC_CONFIG_ENUM(Config::Model::Name, {Config::Model::Name::ResNet10, "resnet10"},
               {Config::Model::Name::ResNet18, "resnet18"}, {Config::Model::Name::ResNet34, "resnet34"},
               {Config::Model::Name::ResNet50, "resnet50"}, {Config::Model::Name::ResNet101, "resnet101"},
               {Config::Model::Name::ResNet152, "resnet152"}, {Config::Model::Name::MedConv, "medconv"},
               {Config::Model::Name::ResNet10t, "resnet10t"}, {Config::Model::Name::ResNet14t, "resnet14t"},
               {Config::Model::Name::ResNeXt50_32x4d, "resnext50_32x4d"},
               {Config::Model::Name::MobileNetV2_100, "mobilenetv2_100"},
               {Config::Model::Name::EfficientNetB0, "efficientnet_b0"})
MC_CONFIG_ENUM(losses::LossType, {losses::LossType::CE, "ce"}, {losses::LossType::LogitAdjusted, "logit_adjusted"},
               {losses::LossType::Weighted, "weighted"}, {losses::LossType::BalancedSoftmax, "balanced_softmax"},
               {losses::LossType::ClassBalanced, "class_balanced"})  // as loss_type_name()
MC_CONFIG_ENUM(OptimizerKind, {OptimizerKind::AdamW, "adamw"}, {OptimizerKind::SGD, "sgd"},
               {OptimizerKind::SAM, "sam"},
               {OptimizerKind::ScheduleFreeAdamW, "schedulefree_adamw"})  // as optimizer_name()
MC_CONFIG_ENUM(LrSchedule::Kind, {LrSchedule::Kind::Cosine, "cosine"}, {LrSchedule::Kind::Step, "step"},
               {LrSchedule::Kind::Constant, "constant"})
MC_CONFIG_ENUM(Precision, {Precision::FP32, "fp32"}, {Precision::TF32, "tf32"},
               {Precision::BF16, "bf16"})  // as precision_name()
// Training draws in random order; the loader's Sequential order is for evaluation only.
MC_CONFIG_ENUM(io::Sampling, {io::Sampling::Shuffle, "shuffle"}, {io::Sampling::ClassBalanced, "balanced"})
MC_CONFIG_ENUM(Config::Train::Device, {Config::Train::Device::Auto, "auto"}, {Config::Train::Device::CPU, "cpu"},
               {Config::Train::Device::CUDA, "cuda"})
MC_CONFIG_ENUM(io::Task::Head, {io::Task::Head::Classification, "classification"}, {io::Task::Head::Regression, "regression"})
MC_CONFIG_ENUM(losses::RegressionLoss, {losses::RegressionLoss::Huber, "huber"}, {losses::RegressionLoss::MSE, "mse"})
MC_CONFIG_ENUM(Config::Eval::SelectBy, {Config::Eval::SelectBy::Auto, "auto"},
               {Config::Eval::SelectBy::MacroAUC, "macro_auc"}, {Config::Eval::SelectBy::MAE, "mae"},
               {Config::Eval::SelectBy::BalancedAccuracy, "balanced_accuracy"},
               {Config::Eval::SelectBy::Accuracy, "accuracy"}, {Config::Eval::SelectBy::Loss, "loss"})
#undef MC_CONFIG_ENUM

template <class E>
concept ConfigEnum = std::is_enum_v<E> && requires { EnumNames<E>::values; };

// "logit_adjusted" for LossType::LogitAdjusted. Throws for a value the config cannot spell
// (Sampling::Sequential).
template <ConfigEnum E>
std::string_view to_string(E e) {
  for (const auto& [v, name] : EnumNames<E>::values)
    if (v == e) return name;
  throw Error("config: value " + std::to_string(static_cast<int64_t>(e)) +
              " of this enum has no spelling in a config");
}

// The model registry's name: "medconv" and "resnet50" are the same network.
inline std::string_view model_arch(Config::Model::Name m) {
  return m == Config::Model::Name::MedConv ? "resnet50" : to_string(m);
}

// ---- loading, saving, help ----

// Reads the YAML file, applies the overrides ("optim.lr=3e-4", "data.windows=[[400,2000]]": the
// value part is YAML) and validates everything. Throws mc::Error naming the file and line (or
// "command line"), the full key, the bad value and what is allowed; every problem found is
// listed, one per line.
Config load_config(const std::string& yaml_path, const std::vector<std::string>& overrides = {});
// The same from text; source_name stands in for the file name in messages. Empty text gives
// the defaults (plus overrides).
Config parse_config(const std::string& yaml_text, const std::string& source_name,
                    const std::vector<std::string>& overrides = {});

// Every key, grouped, with type, default, allowed values and meaning (for --help).
std::string config_help();
// The resolved configuration, every key present, each with its meaning as a comment, to save in
// the run folder. parse_config(to_yaml(c), ...) == c.
std::string to_yaml(const Config& c);
// ("optim.lr", "0.001") for every key in schema order, values in YAML flow style: for logs and
// checkpoint metadata (safetensors metadata is string to string).
std::vector<std::pair<std::string, std::string>> config_flat(const Config& c);

// The cache file of one split ("train", "val", "test"): the explicit data.<split>_cache when
// set, else <cache_dir>/<split>.safetensors (what mc_prep writes).
std::string split_cache_path(const Config::Data& d, std::string_view split);

// ---- the schema (for help, tests and tools) ----

enum class KeyType { Bool, Int, Float, String, FloatList, StringList, Enum, WindowList };

using ConfigValue = std::variant<bool, int64_t, double, std::string, std::vector<double>,
                                 std::vector<std::string>, std::vector<io::HUWindow>>;

struct ConfigKey {
  std::string path;  // "optim.lr"
  KeyType type = KeyType::Float;
  std::string meaning;
  // Allowed range of Int and Float values and of each FloatList element.
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  bool lo_open = false, hi_open = false;
  // Int keys: what the C++ field can hold, checked apart from the documented range.
  int64_t int_min = std::numeric_limits<int64_t>::min();
  int64_t int_max = std::numeric_limits<int64_t>::max();
  // Lists: number of elements, and whether they must strictly increase.
  size_t min_len = 0, max_len = std::numeric_limits<size_t>::max();
  bool increasing = false;
  std::vector<std::string> choices;  // Enum
  // Enum values carried as their spelling (std::string), the rest as their variant type.
  std::function<void(Config&, const ConfigValue&)> set;
  std::function<ConfigValue(const Config&)> get;

  // A value in YAML flow style: 0.001, "runs/x", adamw, [0.9, 0.999], [[400.0, 2000.0]].
  std::string format(const ConfigValue& v) const;
  bool in_range(double v) const;
  std::string range_text() const;   // "in [0, 1)", ">= 1", "" when unbounded
  std::string length_text() const;  // "2", "1 to 8", "at least 1"
  std::string type_text() const;    // "float in (0, 10]", "one of adamw|sgd", "list of 2 floats"
};

struct ConfigGroup {
  std::string path;  // "data.raw"
  std::string meaning;
};

const std::vector<ConfigKey>& config_schema();  // in the order of help and to_yaml
const std::vector<ConfigGroup>& config_groups();

}  // namespace mc::pipeline
