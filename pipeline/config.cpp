// Loading and validating a run configuration: YAML text and key=value overrides against the
// schema of config_schema.cpp.
#include "pipeline/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "engine/check.h"
#include "pipeline/config_scalars.h"

namespace mc::pipeline {
namespace {

using namespace config_detail;

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

// ---- lookups and suggestions ----

struct Index {
  std::map<std::string, const ConfigKey*> keys;
  std::set<std::string> groups;
  Index() {
    for (const auto& k : config_schema()) keys[k.path] = &k;
    for (const auto& g : config_groups()) groups.insert(g.path);
  }
  const ConfigKey* key(const std::string& p) const {
    auto it = keys.find(p);
    return it == keys.end() ? nullptr : it->second;
  }
  bool is_group(const std::string& p) const { return groups.count(p) > 0; }
  // Direct children of a group ("" = the top level), in schema order.
  std::vector<std::string> children(const std::string& group) const {
    std::vector<std::string> out;
    auto add = [&](const std::string& path) {
      auto dot = path.rfind('.');
      std::string parent = dot == std::string::npos ? "" : path.substr(0, dot);
      std::string leaf = dot == std::string::npos ? path : path.substr(dot + 1);
      if (parent == group && std::find(out.begin(), out.end(), leaf) == out.end())
        out.push_back(leaf);
    };
    for (const auto& k : config_schema()) {
      // A key deeper down makes its intermediate group a child too (data.raw under data).
      std::string p = k.path;
      while (true) {
        add(p);
        auto dot = p.rfind('.');
        if (dot == std::string::npos) break;
        p = p.substr(0, dot);
      }
    }
    return out;
  }
};

const Index& index() {
  static const Index idx;
  return idx;
}

std::string leaf_of(const std::string& p) {
  auto dot = p.rfind('.');
  return dot == std::string::npos ? p : p.substr(dot + 1);
}

enum class Want { Key, Group, Either };

// The known key or group closest to an unknown path. A key with the same leaf in another group
// counts as close ("train.lr" -> "optim.lr"): a key put in the wrong group is a common slip.
// An unknown name holding a mapping is compared with groups only, one holding a value with keys.
std::string suggest(const std::string& path, Want want) {
  std::string best;
  size_t best_d = std::numeric_limits<size_t>::max(), best_full = best_d;
  auto consider = [&](const std::string& cand) {
    size_t full = edit_distance(path, cand);
    size_t d = std::min(full, edit_distance(leaf_of(path), leaf_of(cand)) + 2);
    if (d < best_d || (d == best_d && full < best_full)) {
      best = cand;
      best_d = d;
      best_full = full;
    }
  };
  if (want != Want::Group)
    for (const auto& [p, k] : index().keys) consider(p);
  if (want != Want::Key)
    for (const auto& g : index().groups) consider(g);
  size_t limit = std::max<size_t>(2, leaf_of(path).size() * 2 / 5 + 1);
  return best_d <= limit ? best : "";
}


// ---- the parser ----

class Parser {
 public:
  Config cfg;
  std::vector<std::string> errors;
  std::map<std::string, std::string> origin;  // key -> where its value was set

  void apply_document(const std::string& text, const std::string& src) {
    YAML::Node root;
    try {
      root = YAML::Load(text);
    } catch (const YAML::ParserException& e) {
      MC_FAIL("invalid configuration: ", src, ":", e.mark.line + 1, ":", e.mark.column + 1,
              ": malformed YAML: ", e.msg);
    } catch (const YAML::Exception& e) {
      MC_FAIL("invalid configuration: ", src, ": malformed YAML: ", e.what());
    }
    if (root.IsNull()) return;
    if (!root.IsMap()) {
      error(src, root, true, "",
            "the top level must be a mapping of groups (" + join(index().children(""), ", ") +
                "), got " + describe(root));
      return;
    }
    walk(root, "", src, true);
  }

  void apply_override(const std::string& arg) {
    const std::string src = "command line ('" + arg + "')";
    auto eq = arg.find('=');
    if (eq == std::string::npos) {
      errors.push_back("command line: override '" + arg +
                       "' has no '=': write key=value, e.g. optim.lr=3e-4");
      return;
    }
    std::string path = arg.substr(0, eq), text = arg.substr(eq + 1);
    path.erase(0, path.find_first_not_of(" \t"));
    path.erase(path.find_last_not_of(" \t") + 1);
    if (path.empty()) {
      errors.push_back("command line: override '" + arg + "' has no key before '='");
      return;
    }
    const ConfigKey* k = index().key(path);
    if (!k && !index().is_group(path)) {
      YAML::Node v;
      try {
        v = YAML::Load(text);
      } catch (const YAML::Exception&) {
        v = YAML::Node(text);  // unparseable: a value, so compare with keys
      }
      unknown(src + ": ", path, v);
      return;
    }
    YAML::Node value;
    try {
      value = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      // A string key takes the text as it is (a path may hold characters YAML dislikes).
      if (k && k->type == KeyType::String) {
        set(*k, ConfigValue(text), src);
        return;
      }
      errors.push_back(src + ": " + path + ": malformed YAML value '" + text + "' (column " +
                       std::to_string(e.mark.column + 1) + ": " + e.msg + ")");
      return;
    }
    if (k && k->type == KeyType::String && !value.IsScalar() && !value.IsNull()) {
      set(*k, ConfigValue(text), src);
      return;
    }
    if (k)
      apply_value(*k, value, src);
    else
      walk(value, path, src, false);
  }

  void check_consistency();
  void check_task(const std::function<void(const std::string&)>& fail);

 private:
  // "run.yaml:12:7" for a node of a file; an override's nodes have no useful position.
  static std::string at(const std::string& src, const YAML::Node& n, bool from_file) {
    if (!from_file || n.Mark().line < 0) return src;
    return src + ":" + std::to_string(n.Mark().line + 1) + ":" + std::to_string(n.Mark().column + 1);
  }

  void error(const std::string& src, const YAML::Node& n, bool from_file, const std::string& path,
             const std::string& msg) {
    errors.push_back(at(src, n, from_file) + ": " + (path.empty() ? "" : path + ": ") + msg);
  }

  void unknown(const std::string& where, const std::string& path, const YAML::Node& value) {
    std::string msg = where + "unknown key '" + path + "'";
    Want want = value.IsMap() ? Want::Group : value.IsNull() ? Want::Either : Want::Key;
    std::string s = suggest(path, want);
    auto dot = path.rfind('.');
    std::string parent = dot == std::string::npos ? "" : path.substr(0, dot);
    if (!s.empty())
      msg += " (did you mean '" + s + "'?)";
    else if (index().is_group(parent))
      msg += "; the keys of " + parent + " are " + join(index().children(parent), ", ");
    else
      msg += "; the groups are " + join(index().children(""), ", ") + " (see --help)";
    errors.push_back(msg);
  }

  // A mapping of keys under group `prefix` ("" = top level).
  void walk(const YAML::Node& node, const std::string& prefix, const std::string& src,
            bool from_file) {
    if (node.IsNull()) return;  // "augment:" with nothing under it changes nothing
    if (!node.IsMap()) {
      error(src, node, from_file, prefix,
            "is a group of keys (" + join(index().children(prefix), ", ") +
                "), expected a mapping of them, got " + describe(node));
      return;
    }
    std::set<std::string> seen;
    for (const auto& kv : node) {
      if (!kv.first.IsScalar()) {
        error(src, kv.first, from_file, prefix, "keys must be plain names, got " + describe(kv.first));
        continue;
      }
      const std::string name = kv.first.Scalar();
      const std::string path = prefix.empty() ? name : prefix + "." + name;
      if (!seen.insert(name).second) {
        error(src, kv.first, from_file, path, "is given twice");
        continue;
      }
      if (index().is_group(path)) {
        walk(kv.second, path, src, from_file);
      } else if (const ConfigKey* k = index().key(path)) {
        apply_value(*k, kv.second, at(src, kv.second, from_file));
      } else {
        unknown(at(src, kv.first, from_file) + ": ", path, kv.second);
      }
    }
  }

  void set(const ConfigKey& k, const ConfigValue& v, const std::string& where) {
    k.set(cfg, v);
    origin[k.path] = where;
  }

  void bad(const std::string& where, const std::string& path, const std::string& msg) {
    errors.push_back(where + ": " + path + ": " + msg);
  }

  // A number of a Float key or FloatList element, range-checked; nullopt after an error.
  std::optional<double> number(const ConfigKey& k, const YAML::Node& n, const std::string& where,
                               const std::string& path) {
    if (!n.IsScalar()) {
      bad(where, path, "expected a number, got " + describe(n));
      return std::nullopt;
    }
    auto d = parse_float(n.Scalar());
    if (!d) {
      bad(where, path, "expected a number, got " + describe(n));
      return std::nullopt;
    }
    if (!std::isfinite(*d)) {
      bad(where, path, "expected a finite number, got " + describe(n));
      return std::nullopt;
    }
    if (!k.in_range(*d)) {
      bad(where, path, n.Scalar() + " is out of range, must be " + k.range_text());
      return std::nullopt;
    }
    return d;
  }

  bool check_len(const ConfigKey& k, size_t n, const std::string& where, const std::string& what) {
    if (n >= k.min_len && n <= k.max_len) return true;
    bad(where, k.path, "expected " + k.length_text() + " " + what + ", got " + std::to_string(n));
    return false;
  }

  void apply_value(const ConfigKey& k, const YAML::Node& n, const std::string& where) {
    const std::string& path = k.path;
    switch (k.type) {
      case KeyType::Bool: {
        auto b = n.IsScalar() ? parse_bool(n.Scalar()) : std::nullopt;
        if (!b) return bad(where, path, "expected true or false, got " + describe(n));
        return set(k, ConfigValue(*b), where);
      }
      case KeyType::Int: {
        auto i = n.IsScalar() ? parse_int(n.Scalar()) : std::nullopt;
        if (!i) return bad(where, path, "expected an integer, got " + describe(n));
        if (!k.in_range(static_cast<double>(*i)))
          return bad(where, path, n.Scalar() + " is out of range, must be " + k.range_text());
        if (*i < k.int_min || *i > k.int_max)
          return bad(where, path, n.Scalar() + " is out of range, must be in [" +
                                      std::to_string(k.int_min) + ", " + std::to_string(k.int_max) + "]");
        return set(k, ConfigValue(*i), where);
      }
      case KeyType::Float: {
        auto d = number(k, n, where, path);
        if (d) set(k, ConfigValue(*d), where);
        return;
      }
      case KeyType::String: {
        if (n.IsNull()) return set(k, ConfigValue(std::string()), where);
        if (!n.IsScalar()) return bad(where, path, "expected a string, got " + describe(n));
        return set(k, ConfigValue(n.Scalar()), where);
      }
      case KeyType::Enum: {
        std::string v = n.IsScalar() ? n.Scalar() : "";
        if (std::find(k.choices.begin(), k.choices.end(), v) != k.choices.end())
          return set(k, ConfigValue(v), where);
        std::string msg = (n.IsScalar() ? "'" + v + "'" : describe(n)) + " is not one of " +
                          join(k.choices, ", ");
        std::string s = n.IsScalar() ? suggest_choice(v, k.choices) : "";
        if (!s.empty()) msg += " (did you mean '" + s + "'?)";
        return bad(where, path, msg);
      }
      case KeyType::FloatList: return apply_float_list(k, n, where);
      case KeyType::StringList: return apply_string_list(k, n, where);
      case KeyType::WindowList: return apply_window_list(k, n, where);
    }
  }

  void apply_float_list(const ConfigKey& k, const YAML::Node& n, const std::string& where) {
    const std::string& path = k.path;
    if (!n.IsSequence() && !n.IsNull())
      return bad(where, path, "expected a list of numbers like [1.0, 0.5], got " + describe(n));
    std::vector<double> v;
    bool ok = true;
    for (size_t i = 0; n.IsSequence() && i < n.size(); ++i) {
      auto d = number(k, n[i], where, path + "[" + std::to_string(i) + "]");
      if (d) v.push_back(*d);
      ok = ok && d.has_value();
    }
    if (!ok || !check_len(k, v.size(), where, "numbers")) return;
    if (k.increasing)
      for (size_t i = 1; i < v.size(); ++i)
        if (!(v[i] > v[i - 1]))
          return bad(where, path, "values must strictly increase, got " + describe(n));
    return set(k, ConfigValue(v), where);
  }

  void apply_string_list(const ConfigKey& k, const YAML::Node& n, const std::string& where) {
    const std::string& path = k.path;
    if (!n.IsSequence() && !n.IsNull())
      return bad(where, path, "expected a list of strings like [\"a\", \"b\"], got " + describe(n));
    std::vector<std::string> v;
    for (size_t i = 0; n.IsSequence() && i < n.size(); ++i) {
      if (!n[i].IsScalar())
        return bad(where, path + "[" + std::to_string(i) + "]",
                   "expected a string, got " + describe(n[i]));
      v.push_back(n[i].Scalar());
    }
    if (!check_len(k, v.size(), where, "strings")) return;
    return set(k, ConfigValue(v), where);
  }

  void apply_window_list(const ConfigKey& k, const YAML::Node& n, const std::string& where) {
    const std::string& path = k.path;
    const std::string eg = "a list of [level, width] pairs like [[400, 2000], [40, 400]]";
    if (!n.IsSequence()) return bad(where, path, "expected " + eg + ", got " + describe(n));
    std::vector<io::HUWindow> v;
    for (size_t i = 0; i < n.size(); ++i) {
      const std::string item = path + "[" + std::to_string(i) + "]";
      const YAML::Node& w = n[i];
      if (!w.IsSequence() || w.size() != 2)
        return bad(where, item, "expected a [level, width] pair, got " + describe(w) +
                                    " (the whole value must be " + eg + ")");
      double level = 0, width = 0;
      if (!finite_number(w[0], level))
        return bad(where, item, "level: expected a number in HU, got " + describe(w[0]));
      if (!finite_number(w[1], width))
        return bad(where, item, "width: expected a number in HU, got " + describe(w[1]));
      if (!(width > 0))
        return bad(where, item, "width " + w[1].Scalar() + " is out of range, must be > 0");
      v.push_back({level, width});
    }
    if (!check_len(k, v.size(), where, "windows")) return;
    return set(k, ConfigValue(v), where);
  }

  // "train.epochs (3, from command line ('train.epochs=3'))"
  std::string show(const std::string& path) {
    const ConfigKey* k = index().key(path);
    auto it = origin.find(path);
    return path + " (" + k->format(k->get(cfg)) + ", " +
           (it == origin.end() ? std::string("the default") : "from " + it->second) + ")";
  }
};

// The task (data.classes, data.tscore_thresholds, data.positive_class, model.head) and
// model.num_classes, which is derived from it unless set, and then must agree.
void Parser::check_task(const std::function<void(const std::string&)>& fail) {
  const Config& c = cfg;
  const auto& th = c.data.tscore_thresholds;
  if (c.data.classes.empty() && th.size() != 2) {
    fail(show("data.classes") + " must name the " + std::to_string(th.size() + 1) + " classes that " +
         show("data.tscore_thresholds") + " make" +
         (th.empty() ? " (with no thresholds the labels come from a class column: list its classes)" : "") +
         "; only two thresholds default to the WHO names osteoporosis, osteopenia, normal");
    return;
  }
  io::Task t = task_of(c);
  if (!c.data.positive_class.empty()) {
    const int64_t k = t.index_of(c.data.positive_class);
    if (k < 0) fail(show("data.positive_class") + " is not one of the classes " + t.names_csv() + " (data.classes)");
    else if (!t.binary()) fail(show("data.positive_class") + " needs a binary task; this one has " + std::to_string(t.num_classes()) + " classes");
  }
  try {
    t.validate("task");
  } catch (const Error& e) {
    std::string m = e.what();
    m = m.substr(0, m.rfind(" ["));  // the source line of the check adds nothing here
    fail(show("data.classes") + ", " + show("data.tscore_thresholds") + ", " + show("model.head") + ": " + m);
    return;
  }
  if (origin.count("model.num_classes") && c.model.num_classes != t.num_classes())
    fail(show("model.num_classes") + " contradicts the task: " + show("data.classes") + " and " +
         show("data.tscore_thresholds") + " make " + std::to_string(t.num_classes()) + " classes (" + t.names_csv() +
         "); leave model.num_classes out, it is derived");
  else
    cfg.model.num_classes = int(t.num_classes());
  const auto sel = c.eval.select_by;
  using S = Config::Eval::SelectBy;
  if (t.regression() && sel != S::Auto && sel != S::MAE && sel != S::Loss)
    fail(show("eval.select_by") + " does not apply to " + show("model.head") + ": use auto, mae or loss");
  if (!t.regression() && sel == S::MAE)
    fail(show("eval.select_by") + " needs " + show("model.head") + " regression");
}

// Rules that involve more than one key. Each message names every key involved, its value and
// where that value came from, since the fix may be in either place.
void Parser::check_consistency() {
  const Config& c = cfg;
  auto fail = [&](const std::string& msg) { errors.push_back(msg); };
  double ratio_sum = 0;
  for (double r : c.data.split.ratios) ratio_sum += r;
  if (std::fabs(ratio_sum - 1.0) > 1e-6)
    fail(show("data.split.ratios") + ": the fractions must sum to 1, they sum to " +
         (std::ostringstream() << ratio_sum).str());
  if (c.data.split.ratios.size() == 3 && !(c.data.split.ratios[0] > 0))
    fail(show("data.split.ratios") + ": the training fraction must be > 0");
  if (c.data.split.fold >= c.data.split.folds)
    fail(show("data.split.fold") + " must be less than " + show("data.split.folds") +
         " (folds count from 0)");
  if (c.data.split.mode == Config::Split::Mode::File && c.data.split.file.empty())
    fail(show("data.split.mode") + " needs data.split.file, the CSV of subject,split");
  if (static_cast<size_t>(c.model.in_chans) != c.data.preprocess.windows.size())
    fail(show("model.in_chans") + " must equal the number of data.windows, " +
         std::to_string(c.data.preprocess.windows.size()) + " (" + show("data.windows") +
         "): each HU window is one input channel");
  check_task(fail);
  if (c.schedule.warmup_epochs >= c.train.epochs)
    fail(show("schedule.warmup_epochs") + " must be less than " + show("train.epochs"));
  if (c.schedule.min_lr > c.optim.lr)
    fail(show("schedule.min_lr") + " must be <= " + show("optim.lr"));
  const OptimizerKind base = c.optim.kind == OptimizerKind::SAM ? c.optim.sam_base : c.optim.kind;
  if (c.optim.sam_base != OptimizerKind::AdamW && c.optim.sam_base != OptimizerKind::SGD)
    fail(show("optim.sam_base") + " must be adamw or sgd");
  if (c.optim.kind == OptimizerKind::ScheduleFreeAdamW &&
      (c.schedule.kind != LrSchedule::Kind::Constant || c.schedule.warmup_epochs != 0))
    fail(show("optim.name") + " schedulefree_adamw replaces the schedule: set schedule.name " +
         "constant and schedule.warmup_epochs 0 (warm up with optim.warmup_steps), got " +
         show("schedule.name") + ", " + show("schedule.warmup_epochs"));
  if (c.optim.kind == OptimizerKind::ScheduleFreeAdamW && c.optim.betas[0] == 0)
    fail(show("optim.betas") + ": schedulefree_adamw needs beta1 > 0 (x is recovered from y and z through it)");
  if (base == OptimizerKind::SGD && c.optim.nesterov && c.optim.momentum == 0)
    fail(show("optim.nesterov") + " needs " + show("optim.momentum") + " > 0");
  if (c.loss.adjust && c.loss.type != losses::LossType::Weighted && c.loss.type != losses::LossType::ClassBalanced)
    fail(show("loss.adjust") + " needs " + show("loss.type") +
         " weighted or class_balanced (the other types have no class weights to combine with)");
  if (c.data.hu.calibration.size() == 1)
    fail(show("data.hu.calibration") + ": expected [] or [slope, intercept]");
  else if (c.data.hu.enabled && c.data.raw.mask_mode != Config::Raw::MaskMode::Precropped) {
    try {
      io::roi_options(c.data.hu, c.data.raw.mask_mode == Config::Raw::MaskMode::Binary ? -1 : c.data.preprocess.label_id);
    } catch (const Error& e) {
      fail(e.what() + std::string(" (") + show("data.hu.vertebrae") + ", " + show("data.hu.labels") + ", " +
           show("data.raw.label_id") + ")");
    }
  }
  if (c.model.inflate_2d && c.model.pretrained.empty())
    fail(show("model.inflate_2d") + " needs " + show("model.pretrained") +
         ", the 2D weights to inflate");
}

}  // namespace

// ---- public API ----

Config parse_config(const std::string& yaml_text, const std::string& source_name,
                    const std::vector<std::string>& overrides) {
  Parser p;
  p.apply_document(yaml_text, source_name);
  for (const auto& o : overrides) p.apply_override(o);
  if (p.errors.empty()) p.check_consistency();
  if (p.errors.size() == 1) MC_FAIL("invalid configuration: ", p.errors[0]);
  if (!p.errors.empty())
    MC_FAIL("invalid configuration, ", p.errors.size(), " problems:\n  ", join(p.errors, "\n  "),
            "\n");
  return p.cfg;
}

Config load_config(const std::string& yaml_path, const std::vector<std::string>& overrides) {
  // A directory opens as an empty stream on Linux, and an empty file parses as "no keys": both
  // would silently train resnet50 with defaults.
  std::error_code ec;
  MC_CHECK(!std::filesystem::is_directory(yaml_path, ec), "config file '", yaml_path,
           "' is a directory, not a YAML file");
  std::ifstream f(yaml_path, std::ios::binary);
  MC_CHECK(f, "cannot read config file '", yaml_path, "'");
  std::stringstream text;
  text << f.rdbuf();
  MC_CHECK(!f.bad(), "error reading config file '", yaml_path, "'");
  bool empty = false;
  try {
    empty = YAML::Load(text.str()).IsNull();
  } catch (const YAML::Exception&) {  // parse_config reports syntax errors with their line
  }
  MC_CHECK(!empty, "config file '", yaml_path, "' is empty (no keys; only comments or nothing): "
           "start from configs/medconv.yaml");
  return parse_config(text.str(), yaml_path, overrides);
}

io::LoaderOptions Config::default_training_loader() {
  io::LoaderOptions lo;
  lo.augment = true;
  lo.aug.rot90_p = 0.25f;
  lo.aug.rotate_p = 0.3f;
  lo.aug.scale_range = 0.f;
  lo.aug.shift_range = 0.f;
  lo.workers = 4;
  return lo;
}

bool operator==(const Config& a, const Config& b) { return config_flat(a) == config_flat(b); }

io::Task task_of(const Config& c) {
  io::Task t;
  if (!c.data.classes.empty()) t.classes = c.data.classes;
  t.thresholds = c.data.tscore_thresholds;
  t.head = c.model.head;
  if (!c.data.positive_class.empty()) t.positive = int(t.index_of(c.data.positive_class));
  return t;
}

std::string split_cache_path(const Config::Data& d, std::string_view split) {
  const std::string* explicit_path = split == "train" ? &d.train_cache
                                     : split == "val" ? &d.val_cache
                                     : split == "test" ? &d.test_cache
                                                       : nullptr;
  MC_CHECK(explicit_path, "split_cache_path: unknown split '", split, "' (train, val or test)");
  if (!explicit_path->empty()) return *explicit_path;
  return (std::filesystem::path(d.cache_dir) / (std::string(split) + ".safetensors")).string();
}

}  // namespace mc::pipeline
