// A model's scores over N subjects: the one type for "logits over N subjects" that predicting a
// cache gives (pipeline/predictions.h), mc_eval reads and writes as CSV, and every report
// evaluates.
//
// CSV: a header naming an `id` column, a `label` column and K >= 2 score columns, either
// `score_0..score_{K-1}` (in that order) or class names (`normal,osteopenia,osteoporosis`).
// Labels are class indices or class names. Scores are logits or probabilities (ScoreKind).
#pragma once
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace mc::eval {

// Auto: probabilities when every score is in [0, 1] and every row sums to 1 within 1e-6.
enum class ScoreKind { Auto, Logits, Probabilities };
ScoreKind parse_score_kind(const std::string& s);  // "auto", "logits", "probabilities"
const char* score_kind_name(ScoreKind k);

struct PredictionTable {
  std::string source;  // file or cache name, for messages
  std::vector<std::string> ids, class_names;
  std::vector<int64_t> labels;   // class index per row, -1 = unknown
  std::vector<double> scores;    // N x K, row-major
  ScoreKind kind = ScoreKind::Auto;
  std::vector<int64_t> indices;  // cache row of each entry when predicted from a cache, else empty

  int64_t size() const { return int64_t(labels.size()); }
  int64_t num_classes() const { return int64_t(class_names.size()); }
  Tensor labels_tensor() const;                       // i64 [N], CPU
  Tensor scores_tensor(DType dt = DType::F64) const;  // [N, K] on the CPU, f64 or f32
};

// Errors name the file, line and column (1-based): "preds.csv:7:3: score 'abc' ... ".
PredictionTable read_predictions_csv(const std::string& path);
PredictionTable parse_predictions_csv(std::istream& in, const std::string& name);
// The CSV text parse_predictions_csv reads back exactly: id,label and the class names as score
// columns (score_0..score_{K-1} when a name cannot be a column: numeric, "id", "label", ...), labels
// as indices, scores as the shortest decimals that round-trip. Ids may not hold ',' '"', line
// breaks or surrounding spaces (an error names the id).
std::string predictions_csv(const PredictionTable& p);

}  // namespace mc::eval
