#include "io/task.h"

#include <cmath>
#include <set>

#include "engine/check.h"
#include "io/text.h"

namespace mc::io {

int Task::positive_class() const {
  if (positive >= 0) return positive;
  return from_tscores() ? 0 : 1;
}

const std::string& Task::name(int64_t k) const {
  static const std::string unknown = "unknown";
  return k >= 0 && k < num_classes() ? classes[size_t(k)] : unknown;
}

int64_t Task::index_of(const std::string& s) const {
  const std::string l = lower(trim(s));
  for (int64_t k = 0; k < num_classes(); ++k)
    if (l == lower(classes[size_t(k)]) || l == std::to_string(k)) return k;
  return -1;
}

int64_t Task::classify(double t) const {
  MC_CHECK(from_tscores(), "task ", names_csv(), ": no T-score thresholds to classify a T-score with");
  if (!std::isfinite(t)) return -1;
  if (t <= thresholds[0]) return 0;
  int64_t k = 1;
  for (size_t i = 1; i < thresholds.size(); ++i)
    if (t >= thresholds[i]) k = int64_t(i) + 1;
  return k;
}

std::string Task::names_csv() const {
  std::string s;
  for (size_t k = 0; k < classes.size(); ++k) s += (k ? "," : "") + classes[k];
  return s;
}

std::string Task::describe() const {
  std::string s = std::to_string(classes.size()) + " classes: ";
  const size_t n = thresholds.size();
  for (size_t k = 0; k < classes.size(); ++k) {
    s += (k ? ", " : "") + classes[k];
    if (n == 0) continue;
    if (k == 0) s += " (T <= " + general(thresholds[0]) + ")";
    else if (k == n) s += " (T >= " + general(thresholds[n - 1]) + ")";
    else if (k < n) s += " (" + general(thresholds[k - 1]) + " < T < " + general(thresholds[k]) + ")";
  }
  if (n == 0) s += " (from a class column)";
  s += "; " + std::string(head_name(head));
  if (binary()) s += ", positive class " + name(positive_class());
  return s;
}

void Task::validate(const std::string& where) const {
  MC_CHECK(classes.size() >= 2, where, ": a task needs at least 2 classes, got ", classes.size(),
           " (", names_csv(), ")");
  std::set<std::string> seen;
  for (const std::string& c : classes) {
    MC_CHECK(!trim(c).empty(), where, ": empty class name in ", names_csv());
    MC_CHECK(c.find_first_of(",\"\r\n") == std::string::npos && trim(c) == c, where, ": class name \"", c,
             "\" may not hold ',', '\"', line breaks or surrounding spaces (it becomes a CSV column)");
    MC_CHECK(!parse_int(c), where, ": class name \"", c, "\" is a number: names must not be read as class indices");
    MC_CHECK(seen.insert(lower(c)).second, where, ": class name \"", c, "\" appears twice (names compare without case)");
  }
  for (size_t i = 0; i < thresholds.size(); ++i) {
    MC_CHECK(std::isfinite(thresholds[i]), where, ": T-score threshold ", i, " is not finite");
    MC_CHECK(i == 0 || thresholds[i] > thresholds[i - 1], where, ": T-score thresholds must strictly increase, got ",
             general(thresholds[i - 1]), " then ", general(thresholds[i]));
  }
  MC_CHECK(thresholds.empty() || classes.size() == thresholds.size() + 1, where, ": ", thresholds.size(),
           " T-score threshold(s) make ", thresholds.size() + 1, " classes, but ", classes.size(),
           " class names are given (", names_csv(), ")");
  MC_CHECK(head != Head::Regression || from_tscores(), where,
           ": a regression head predicts the T-score and derives the class from T-score thresholds: give at least one");
  MC_CHECK(positive < int(classes.size()), where, ": positive class ", positive, " is not one of the ", classes.size(),
           " classes");
}

std::string Task::difference(const Task& o) const {
  std::string d;
  if (classes != o.classes) d += "classes " + names_csv() + " vs " + o.names_csv();
  if (thresholds != o.thresholds) {
    auto list = [](const std::vector<double>& v) {
      std::string s = "[";
      for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + general(v[i]);
      return s + "]";
    };
    d += (d.empty() ? "" : "; ") + std::string("T-score thresholds ") + list(thresholds) + " vs " + list(o.thresholds);
  }
  if (head != o.head) d += (d.empty() ? "" : "; ") + std::string("head ") + head_name(head) + " vs " + head_name(o.head);
  if (binary() && positive_class() != o.positive_class())
    d += (d.empty() ? "" : "; ") + std::string("positive class ") + name(positive_class()) + " vs " +
         o.name(o.positive_class());
  return d;
}

const char* head_name(Task::Head h) { return h == Task::Head::Regression ? "regression" : "classification"; }

std::map<std::string, std::string> task_meta(const Task& t) {
  std::string th;
  for (size_t i = 0; i < t.thresholds.size(); ++i) th += (i ? "," : "") + shortest(t.thresholds[i]);
  return {{"task.classes", t.names_csv()},
          {"task.thresholds", th},
          {"task.head", head_name(t.head)},
          {"task.positive", std::to_string(t.positive_class())}};
}

std::optional<Task> task_from_meta(const std::map<std::string, std::string>& meta, const std::string& source) {
  auto it = meta.find("task.classes");
  if (it == meta.end()) return std::nullopt;
  auto get = [&](const char* key) {
    auto f = meta.find(key);
    MC_CHECK(f != meta.end(), source, ": metadata has task.classes but no ", key);
    return f->second;
  };
  Task t;
  t.classes.clear();
  std::string cur;
  for (char c : it->second + ",") {
    if (c != ',') {
      cur += c;
      continue;
    }
    t.classes.push_back(cur);
    cur.clear();
  }
  const std::string th = get("task.thresholds");
  t.thresholds.clear();
  if (!th.empty()) {
    const auto v = parse_numbers(th);
    MC_CHECK(v, source, ": metadata task.thresholds \"", th, "\" is not a list of numbers");
    t.thresholds = *v;
  }
  const std::string head = get("task.head");
  MC_CHECK(head == "classification" || head == "regression", source, ": metadata task.head \"", head,
           "\" is not classification or regression");
  t.head = head == "regression" ? Task::Head::Regression : Task::Head::Classification;
  const auto pos = parse_int(get("task.positive"));
  MC_CHECK(pos, source, ": metadata task.positive is not an integer");
  t.positive = int(*pos);
  t.validate(source + " (metadata task.*)");
  return t;
}

}  // namespace mc::io
