#include "io/labels.h"

#include <algorithm>
#include <cctype>
#include <fstream>

#include "engine/check.h"
#include "io/csv.h"
#include "io/text.h"

namespace mc::io {
namespace {

// Column names compare without case, spaces, '_' or '-': "Subject ID" == "subject_id".
std::string column_key(const std::string& s) {
  std::string k;
  for (char c : s)
    if (std::isalnum(static_cast<unsigned char>(c))) k += char(std::tolower(c));
  return k;
}

int find_column(const std::vector<std::string>& header, std::initializer_list<const char*> names) {
  for (const char* n : names)
    for (size_t i = 0; i < header.size(); ++i)
      if (column_key(header[i]) == n) return int(i);
  return -1;
}

bool is_missing(const std::string& v) {
  const std::string l = lower(v);
  return l.empty() || l == "na" || l == "n/a" || l == "nan" || l == "none" || l == "null";
}

}  // namespace

const char* class_name(int64_t label) {
  return label >= 0 && label < kNumClasses ? kClassNames[size_t(label)] : "unknown";
}

int64_t class_index(const std::string& name) {
  const std::string l = lower(trim(name));
  for (int i = 0; i < kNumClasses; ++i)
    if (l == kClassNames[size_t(i)] || l == std::to_string(i)) return i;
  return -1;
}

std::string class_names_csv() {
  std::string s;
  for (int i = 0; i < kNumClasses; ++i) s += (i ? "," : "") + std::string(kClassNames[size_t(i)]);
  return s;
}

int64_t classify_tscore(double t, const TScoreBands& b) {
  MC_CHECK(b.osteoporosis_max < b.normal_min, "T-score bands: osteoporosis_max (",
           b.osteoporosis_max, ") must be below normal_min (", b.normal_min, ")");
  if (!std::isfinite(t)) return -1;
  if (t <= b.osteoporosis_max) return 0;
  if (t < b.normal_min) return 1;
  return 2;
}

const LabelEntry* LabelTable::find(const std::string& id) const {
  auto it = by_id.find(id);
  return it == by_id.end() ? nullptr : &entries[it->second];
}

Task who_task(const TScoreBands& bands) {
  Task t = Task::who();
  t.thresholds = {bands.osteoporosis_max, bands.normal_min};
  return t;
}

LabelTable parse_labels(std::istream& in, const std::string& name, const TScoreBands& bands) {
  return parse_labels(in, name, who_task(bands));
}

LabelTable parse_labels(std::istream& in, const std::string& name, const Task& task) {
  task.validate(name + " (task)");
  LabelTable t;
  t.path = name;
  const CsvTable csv = parse_csv(in, name, {.comments = true});
  const auto& header = csv.header;
  MC_CHECK(!header.empty(), name, ": empty labels file (no header row)");
  const int id_col = find_column(header, {"id", "subject", "subjectid", "patient", "patientid", "case",
                                          "caseid", "name", "pid"});
  const int t_col = find_column(header, {"tscore", "t", "l1tscore"});
  const int class_col = find_column(header, {"label", "class", "classname", "category", "diagnosis"});
  std::string found;
  for (auto& h : header) found += (found.empty() ? "" : ", ") + h;
  MC_CHECK(id_col >= 0, name, ": missing column: no subject id column (id, subject, ",
           "subject_id, patient_id, case_id); found: ", found);
  MC_CHECK(t_col >= 0 || class_col >= 0, name, ": missing column: need tscore or class ",
           "(label); found: ", found);
  MC_CHECK(!task.regression() || t_col >= 0, name, ": missing column: a regression task (model.head: regression) ",
           "learns the T-score, and there is no tscore column; found: ", found);
  MC_CHECK(task.from_tscores() || class_col >= 0, name, ": missing column: the task's classes (", task.names_csv(),
           ") come from a class column (data.tscore_thresholds is empty), and there is none (label, class, ",
           "diagnosis); found: ", found);
  int64_t disagree = 0;
  std::string disagreeing;
  for (const CsvRow& row : csv.rows) {
    const auto& f = row.cells;
    const int lineno = int(row.line);
    LabelEntry e;
    e.id = f[size_t(id_col)];
    e.line = lineno;
    MC_CHECK(!e.id.empty(), name, ":", lineno, ": empty subject id");
    if (t_col >= 0 && !is_missing(f[size_t(t_col)])) {
      const std::string& v = f[size_t(t_col)];
      const auto x = parse_double(v);
      MC_CHECK(x && std::isfinite(*x), name, ":", lineno, ": T-score \"", v, "\" of subject ", e.id,
               " is not a number");
      e.tscore = *x;
      if (task.from_tscores()) e.label = task.classify(*x);
    }
    // A regression task's class is the one its T-score falls in, whatever a class column says.
    if (class_col >= 0 && !task.regression() && !is_missing(f[size_t(class_col)])) {
      const std::string& v = f[size_t(class_col)];
      const int64_t from_t = e.label;
      e.label = task.index_of(v);
      MC_CHECK(e.label >= 0, name, ":", lineno, ": class \"", v, "\" of subject ", e.id,
               " is not one of the task's classes ", task.names_csv(), " (data.classes; or an index 0..",
               task.num_classes() - 1, ")");
      // Both given and different: neither may silently win.
      if (from_t >= 0 && from_t != e.label && disagree++ < 10)
        disagreeing += "\n  " + e.id + " (line " + std::to_string(lineno) + "): T-score " +
                       shortest(e.tscore) + " is " + task.name(from_t) + ", the class column says " +
                       task.name(e.label);
    }
    auto [it, fresh] = t.by_id.emplace(e.id, t.entries.size());
    MC_CHECK(fresh, name, ":", lineno, ": duplicate subject ", e.id, " (first on line ",
             t.entries[it->second].line, ")");
    t.entries.push_back(std::move(e));
  }
  MC_CHECK(disagree == 0, name, ": the T-score and the class column disagree for ", disagree,
           " subject(s)", disagreeing, disagree > 10 ? "\n  ..." : "",
           "\nkeep one of the two columns (or make them agree)");
  return t;
}

LabelTable read_labels(const std::string& path, const Task& task) {
  std::ifstream in(path, std::ios::binary);
  MC_CHECK(in, path, ": cannot open labels file");
  return parse_labels(in, path, task);
}

LabelTable read_labels(const std::string& path, const TScoreBands& bands) {
  return read_labels(path, who_task(bands));
}

}  // namespace mc::io
