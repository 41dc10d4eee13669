// Reader of prediction CSV files (format in losses/evaluation.h).
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <istream>

#include "losses/evaluation.h"

namespace mc {
namespace {

std::string trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  std::string t = s.substr(a, b - a);
  if (t.size() >= 2 && t.front() == '"' && t.back() == '"') t = t.substr(1, t.size() - 2);
  return t;
}

std::vector<std::string> split(const std::string& line) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t comma = line.find(',', start);
    out.push_back(trim(line.substr(start, comma - start)));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool parse_int(const std::string& s, int64_t& v) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const long long x = std::strtoll(s.c_str(), &end, 10);
  if (*end != '\0' || errno) return false;
  v = x;
  return true;
}

bool parse_double(const std::string& s, double& v) {
  if (s.empty()) return false;
  char* end = nullptr;
  v = std::strtod(s.c_str(), &end);
  return *end == '\0';
}

// The score columns are either score_0..score_{K-1} in order (class names "0".."K-1") or names.
std::vector<std::string> class_names_of(const std::vector<std::string>& cols,
                                        const std::string& where) {
  bool indexed = true;
  for (size_t k = 0; k < cols.size(); ++k) indexed &= lower(cols[k]).rfind("score_", 0) == 0;
  std::vector<std::string> names;
  for (size_t k = 0; k < cols.size(); ++k) {
    if (indexed) {
      MC_CHECK(lower(cols[k]) == "score_" + std::to_string(k), where, ": score column ", k + 1,
               " is '", cols[k], "'; expected score_0..score_", cols.size() - 1, " in order");
      names.push_back(std::to_string(k));
    } else {
      MC_CHECK(!cols[k].empty(), where, ": a score column has an empty name");
      names.push_back(cols[k]);
    }
  }
  for (size_t a = 0; a < names.size(); ++a)
    for (size_t b = a + 1; b < names.size(); ++b)
      MC_CHECK(lower(names[a]) != lower(names[b]), where, ": class '", names[a], "' appears twice");
  return names;
}

}  // namespace

PredictionTable parse_predictions_csv(std::istream& in, const std::string& name) {
  PredictionTable p;
  p.source = name;
  std::string line;
  int64_t line_no = 0;
  std::vector<std::string> header;
  while (header.empty() && std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line_no == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line = line.substr(3);  // UTF-8 BOM
    if (!trim(line).empty()) header = split(line);
  }
  MC_CHECK(!header.empty(), name, ": empty file (expected a header id,label,score_0,...)");
  const std::string where = name + ":" + std::to_string(line_no);
  int64_t id_col = -1, label_col = -1;
  std::vector<int64_t> score_cols;
  std::vector<std::string> score_names;
  for (size_t c = 0; c < header.size(); ++c) {
    const std::string h = lower(header[c]);
    if (h == "id" && id_col < 0) id_col = int64_t(c);
    else if (h == "label" && label_col < 0) label_col = int64_t(c);
    else { score_cols.push_back(int64_t(c)); score_names.push_back(header[c]); }
  }
  MC_CHECK(id_col >= 0, where, ": missing column 'id' (header: id,label,score_0,...)");
  MC_CHECK(label_col >= 0, where, ": missing column 'label' (header: id,label,score_0,...)");
  MC_CHECK(score_cols.size() >= 2, where, ": need at least 2 score columns, found ",
           score_cols.size());
  p.class_names = class_names_of(score_names, where);
  const int64_t K = int64_t(score_cols.size());
  auto class_list = [&] {
    std::string s;
    for (const auto& n : p.class_names) s += (s.empty() ? "" : ", ") + n;
    return s;
  };
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (trim(line).empty()) continue;
    const auto f = split(line);
    const std::string at = name + ":" + std::to_string(line_no);
    MC_CHECK(f.size() == header.size(), at, ": ", f.size(), " fields, but the header has ",
             header.size(), " columns");
    p.ids.push_back(f[size_t(id_col)]);
    const std::string& lab = f[size_t(label_col)];
    const std::string lat = at + ":" + std::to_string(label_col + 1);
    int64_t y = -1;
    if (parse_int(lab, y)) {
      MC_CHECK(y >= 0 && y < K, lat, ": label ", y, " outside [0, ", K, ")");
    } else {
      for (int64_t k = 0; k < K && y < 0; ++k)
        if (lower(lab) == lower(p.class_names[size_t(k)])) y = k;
      MC_CHECK(y >= 0, lat, ": label '", lab, "' is neither a class index in [0, ", K,
               ") nor a class name (", class_list(), ")");
    }
    p.labels.push_back(y);
    for (int64_t k = 0; k < K; ++k) {
      const size_t c = size_t(score_cols[size_t(k)]);
      double v = 0;
      MC_CHECK(parse_double(f[c], v) && std::isfinite(v), at, ":", c + 1, ": score '", f[c],
               "' in column '", header[c], "' is not a finite number");
      p.scores.push_back(v);
    }
  }
  MC_CHECK(!p.labels.empty(), name, ": no prediction rows after the header");
  return p;
}

PredictionTable read_predictions_csv(const std::string& path) {
  std::ifstream in(path);
  MC_CHECK(in.good(), path, ": cannot open predictions file");
  return parse_predictions_csv(in, path);
}

std::string predictions_csv(const PredictionTable& p) {
  const int64_t N = p.size(), K = p.num_classes();
  MC_CHECK(K >= 2 && int64_t(p.ids.size()) == N && int64_t(p.scores.size()) == N * K, p.source,
           ": predictions need an id and K >= 2 scores per row");
  std::string s = "id,label";
  for (int64_t k = 0; k < K; ++k) s += ",score_" + std::to_string(k);
  s += "\n";
  for (int64_t i = 0; i < N; ++i) {
    const std::string& id = p.ids[size_t(i)];
    MC_CHECK(id.find_first_of(",\"\r\n") == std::string::npos && trim(id) == id && !id.empty(),
             "subject id '", id, "' cannot be written to a predictions CSV (empty, or holds a comma, "
             "quote, line break or surrounding space)");
    s += id + "," + std::to_string(p.labels[size_t(i)]);
    for (int64_t k = 0; k < K; ++k) s += "," + json_number(p.scores[size_t(i * K + k)]);
    s += "\n";
  }
  return s;
}

}  // namespace mc
