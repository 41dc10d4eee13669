// Subject labels: a CSV of subject id and T-score (or class name / index) -> WHO classes.
#pragma once
#include <array>
#include <cmath>
#include <cstdint>
#include <istream>
#include <map>
#include <string>
#include <vector>

#include "io/task.h"

namespace mc::io {

// The WHO task's classes, numbered as the reference code numbers them (Task::who(); any other
// task is io/task.h's data). Kept for the generator of WHO-banded data and its callers.
inline constexpr int kNumClasses = 3;
inline constexpr std::array<const char*, kNumClasses> kClassNames = {"osteoporosis", "osteopenia",
                                                                     "normal"};
const char* class_name(int64_t label);           // "unknown" for -1 (or anything out of range)
int64_t class_index(const std::string& name);    // case-insensitive name or "0".."2"; -1 if neither
std::string class_names_csv();                   // "osteoporosis,osteopenia,normal"

// WHO bands: osteoporosis T <= -2.5, osteopenia -2.5 < T < -1, normal T >= -1.
struct TScoreBands {
  double osteoporosis_max = -2.5;  // T <= this: osteoporosis
  double normal_min = -1.0;        // T >= this: normal; in between: osteopenia
};
int64_t classify_tscore(double t, const TScoreBands& bands = {});

struct LabelEntry {
  std::string id;
  int64_t label = -1;  // -1: no usable label on this row
  double tscore = std::nan("");
  int line = 0;        // 1-based line in the file
};

struct LabelTable {
  std::string path;
  std::vector<LabelEntry> entries;  // in file order
  std::map<std::string, size_t> by_id;
  const LabelEntry* find(const std::string& id) const;
};

// Header row required. Columns (case, spaces, '_' and '-' ignored): the subject id
// (id, subject, subject_id, patient_id, case_id, ...), and a T-score (tscore, t, t_score) and/or
// a class (label, class, diagnosis: a name of task.classes or its index). A task without
// thresholds needs the class column, a regression task the T-score column (the class is then
// derived from it). When a row has both and the task has thresholds they must agree (the class
// the T-score gives is the class given); subjects where they disagree are an error listing
// them, so neither column silently wins. Comma, semicolon or tab separated, quoted as io/csv.h reads
// it; '#' lines are comments.
// Empty, NA or NaN cells mean "no label" for that subject. Errors name the file, the line and
// the value: a T-score that is not a number, an unknown class, a duplicate subject, a missing
// column.
LabelTable read_labels(const std::string& path, const Task& task);
LabelTable parse_labels(std::istream& in, const std::string& name, const Task& task);
// The WHO task with these two band edges.
Task who_task(const TScoreBands& bands);
LabelTable read_labels(const std::string& path, const TScoreBands& bands = {});
LabelTable parse_labels(std::istream& in, const std::string& name, const TScoreBands& bands = {});

}  // namespace mc::io
