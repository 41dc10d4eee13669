// PredictionTable: its tensors and its CSV form (format in eval/predictions.h).
#include <cmath>
#include <fstream>
#include <istream>
#include <map>

#include "eval/predictions.h"
#include "io/csv.h"
#include "io/text.h"

namespace mc::eval {
namespace {

// The score columns are either score_0..score_{K-1} in order (class names "0".."K-1") or names.
std::vector<std::string> class_names_of(const std::vector<std::string>& cols, const std::string& where) {
  bool indexed = true;
  for (size_t k = 0; k < cols.size(); ++k) indexed &= io::lower(cols[k]).starts_with("score_");
  std::vector<std::string> names;
  for (size_t k = 0; k < cols.size(); ++k) {
    if (indexed) {
      MC_CHECK(io::lower(cols[k]) == "score_" + std::to_string(k), where, ": score column ", k + 1,
               " is '", cols[k], "'; expected score_0..score_", cols.size() - 1, " in order");
      names.push_back(std::to_string(k));
    } else {
      MC_CHECK(!cols[k].empty(), where, ": a score column has an empty name");
      names.push_back(cols[k]);
    }
  }
  for (size_t a = 0; a < names.size(); ++a)
    for (size_t b = a + 1; b < names.size(); ++b)
      MC_CHECK(io::lower(names[a]) != io::lower(names[b]), where, ": class '", names[a], "' appears twice");
  return names;
}

}  // namespace

ScoreKind parse_score_kind(const std::string& s) {
  if (s == "auto") return ScoreKind::Auto;
  if (s == "logits") return ScoreKind::Logits;
  if (s == "probabilities") return ScoreKind::Probabilities;
  MC_FAIL("unknown score kind '", s, "' (allowed: auto, logits, probabilities)");
}

const char* score_kind_name(ScoreKind k) {
  return k == ScoreKind::Auto ? "auto" : k == ScoreKind::Logits ? "logits" : "probabilities";
}

Tensor PredictionTable::labels_tensor() const { return Tensor::from(labels, {size()}); }

Tensor PredictionTable::scores_tensor(DType dt) const {
  MC_CHECK(int64_t(scores.size()) == size() * num_classes(), source, ": ", scores.size(), " scores for ",
           size(), " rows of ", num_classes(), " classes");
  const Tensor t = Tensor::from(scores, {size(), num_classes()});
  return dt == DType::F64 ? t : t.to(dt);
}

PredictionTable parse_predictions_csv(std::istream& in, const std::string& name) {
  const io::CsvTable csv = io::parse_csv(in, name);
  PredictionTable p;
  p.source = name;
  const auto& header = csv.header;
  MC_CHECK(!header.empty(), name, ": empty file (expected a header id,label,score_0,...)");
  const std::string where = name + ":" + std::to_string(csv.header_line);
  int64_t id_col = -1, label_col = -1;
  std::vector<int64_t> score_cols;
  std::vector<std::string> score_names;
  for (size_t c = 0; c < header.size(); ++c) {
    const std::string h = io::lower(header[c]);
    if (h == "id" && id_col < 0) id_col = int64_t(c);
    else if (h == "label" && label_col < 0) label_col = int64_t(c);
    else score_cols.push_back(int64_t(c)), score_names.push_back(header[c]);
  }
  MC_CHECK(id_col >= 0, where, ": missing column 'id' (header: id,label,score_0,...)");
  MC_CHECK(label_col >= 0, where, ": missing column 'label' (header: id,label,score_0,...)");
  MC_CHECK(score_cols.size() >= 2, where, ": need at least 2 score columns, found ", score_cols.size());
  p.class_names = class_names_of(score_names, where);
  const int64_t K = int64_t(score_cols.size());
  auto class_list = [&] {
    std::string s;
    for (const auto& n : p.class_names) s += (s.empty() ? "" : ", ") + n;
    return s;
  };
  std::map<std::string, std::string> seen;  // id -> where it first appeared
  for (const io::CsvRow& row : csv.rows) {
    const auto& f = row.cells;
    const std::string at = csv.where(row);
    const auto [first, fresh] = seen.emplace(f[size_t(id_col)], at);
    MC_CHECK(fresh, at, ": id '", f[size_t(id_col)], "' appears twice (first at ", first->second,
             "): one prediction per subject");
    p.ids.push_back(f[size_t(id_col)]);
    const std::string& lab = f[size_t(label_col)];
    const std::string lat = at + ":" + std::to_string(label_col + 1);
    int64_t y = -1;
    if (const auto v = io::parse_int(lab)) {
      y = *v;
      MC_CHECK(y >= 0 && y < K, lat, ": label ", y, " outside [0, ", K, ")");
    } else {
      for (int64_t k = 0; k < K && y < 0; ++k)
        if (io::lower(lab) == io::lower(p.class_names[size_t(k)])) y = k;
      MC_CHECK(y >= 0, lat, ": label '", lab, "' is neither a class index in [0, ", K, ") nor a class name (",
               class_list(), ")");
    }
    p.labels.push_back(y);
    for (int64_t k = 0; k < K; ++k) {
      const size_t c = size_t(score_cols[size_t(k)]);
      const auto v = io::parse_double(f[c]);
      MC_CHECK(v && std::isfinite(*v), at, ":", c + 1, ": score '", f[c], "' in column '", header[c],
               "' is not a finite number");
      p.scores.push_back(*v);
    }
  }
  MC_CHECK(!p.labels.empty(), name, ": no prediction rows after the header");
  return p;
}

PredictionTable read_predictions_csv(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  MC_CHECK(in.good(), path, ": cannot open predictions file");
  return parse_predictions_csv(in, path);
}

std::string predictions_csv(const PredictionTable& p) {
  const int64_t N = p.size(), K = p.num_classes();
  MC_CHECK(K >= 2 && int64_t(p.ids.size()) == N && int64_t(p.scores.size()) == N * K, p.source,
           ": predictions need an id and K >= 2 scores per row");
  // The task's class names head the score columns when they can (the reader takes either);
  // else score_0..score_{K-1}.
  bool named = true;
  for (int64_t k = 0; k < K; ++k) {
    const std::string& n = p.class_names[size_t(k)];
    const std::string l = io::lower(n);
    named &= !n.empty() && n.find_first_of(",\"\r\n") == std::string::npos && io::trim(n) == n && l != "id" &&
             l != "label" && !l.starts_with("score_") && !io::parse_int(n);
    for (int64_t j = 0; j < k; ++j) named &= io::lower(p.class_names[size_t(j)]) != l;
  }
  std::string s = "id,label";
  for (int64_t k = 0; k < K; ++k) s += "," + (named ? p.class_names[size_t(k)] : "score_" + std::to_string(k));
  s += "\n";
  for (int64_t i = 0; i < N; ++i) {
    const std::string& id = p.ids[size_t(i)];
    // Refused rather than quoted: the file stays readable by a plain split on ','.
    MC_CHECK(id.find_first_of(",\"\r\n") == std::string::npos && io::trim(id) == id && !id.empty(),
             "subject id '", id, "' cannot be written to a predictions CSV (empty, or holds a comma, "
             "quote, line break or surrounding space)");
    s += id + "," + std::to_string(p.labels[size_t(i)]);
    for (int64_t k = 0; k < K; ++k) s += "," + io::shortest(p.scores[size_t(i * K + k)]);
    s += "\n";
  }
  return s;
}

}  // namespace mc::eval
