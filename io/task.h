// What a model is asked: the class names (in index order), how labels map to them (T-score
// thresholds of any count, or a class column of names / indices), and the head (classification,
// or regression of the T-score whose class is derived with the thresholds). A task is data: it
// comes from the config (data.classes, data.tscore_thresholds, data.positive_class, model.head)
// and travels in cache and checkpoint metadata (task_meta / task_from_meta), so programs that
// read those files name the classes without a config. The WHO bands are only the default.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mc::io {

struct Task {
  enum class Head { Classification, Regression };
  std::vector<std::string> classes{"osteoporosis", "osteopenia", "normal"};
  // Strictly increasing T-score cut points; n of them make n + 1 classes, numbered from the
  // lowest T: class 0 is T <= t0 (inclusive, as WHO's osteoporosis T <= -2.5), class k >= 1
  // holds t_{k-1} < T < t_k for the middle bands and T >= t_{n-1} for the last (WHO: normal
  // T >= -1); a T equal to an inner threshold t_k (k >= 1) goes up. Empty: labels come from a
  // class column only.
  std::vector<double> thresholds{-2.5, -1.0};
  Head head = Head::Classification;
  // Binary tasks: the class a screening report calls positive. -1 = default: class 0 (the
  // lowest T-score band, the disease) when the classes come from thresholds, else class 1 (the
  // second name, as "normal,mass").
  int positive = -1;

  static Task who() { return {}; }

  int64_t num_classes() const { return int64_t(classes.size()); }
  int64_t num_outputs() const { return head == Head::Regression ? 1 : num_classes(); }
  bool regression() const { return head == Head::Regression; }
  bool binary() const { return classes.size() == 2; }
  bool from_tscores() const { return !thresholds.empty(); }
  int positive_class() const;
  // "unknown" for -1 or anything out of range.
  const std::string& name(int64_t k) const;
  // A name (case-insensitive) or an index "0".."K-1"; -1 if neither.
  int64_t index_of(const std::string& s) const;
  // The class of a T-score by the thresholds; -1 for a non-finite T. Needs thresholds.
  int64_t classify(double t) const;
  std::string names_csv() const;  // "osteoporosis,osteopenia,normal"
  // "3 classes: osteoporosis (T <= -2.5), osteopenia, normal (T >= -1); classification"
  std::string describe() const;
  // Throws mc::Error naming `where` (e.g. "config", a file) and what is wrong: fewer than two
  // classes, duplicate / empty / numeric names or names with ',' '"' or line breaks,
  // thresholds not strictly increasing or not finite, class count != thresholds + 1, regression
  // without thresholds, a positive class out of range.
  void validate(const std::string& where) const;
  // "" when equal; else what differs, in words.
  std::string difference(const Task& other) const;
  bool operator==(const Task& o) const { return difference(o).empty(); }
};

const char* head_name(Task::Head h);  // "classification", "regression"

// Metadata entries (string to string): task.classes, task.thresholds, task.head, task.positive.
std::map<std::string, std::string> task_meta(const Task& t);
// The task of a file's metadata; nullopt when it has none (files written before tasks were
// data: the caller decides, usually WHO). Malformed entries are an error naming `source`.
std::optional<Task> task_from_meta(const std::map<std::string, std::string>& meta, const std::string& source);

}  // namespace mc::io
