// Predictions CSV (id, label, K scores) from text. A table the reader accepts must read back
// exactly from predictions_csv() (eval/predictions.h promises it), unless the writer refuses
// an id it cannot write.
#include "eval/predictions.h"

#include <cmath>
#include <sstream>

#include "fuzz/fuzz_util.h"

namespace {

mc::eval::PredictionTable parse(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  return mc::eval::parse_predictions_csv(in, name);
}

void check(std::string_view input) {
  const mc::eval::PredictionTable p = parse(std::string(input), "fuzz.csv");
  const int64_t n = p.size(), k = p.num_classes();
  FUZZ_CHECK(k >= 2 && int64_t(p.ids.size()) == n && int64_t(p.scores.size()) == n * k,
             n, " rows, ", k, " classes, ", p.ids.size(), " ids, ", p.scores.size(), " scores");
  for (int64_t y : p.labels) FUZZ_CHECK(y >= 0 && y < k, "label ", y, " of ", k, " classes");
  for (double s : p.scores) FUZZ_CHECK(std::isfinite(s), "score ", s);
  std::string text;
  try {
    text = mc::eval::predictions_csv(p);
  } catch (const mc::Error&) {
    return;  // an id the format cannot hold: the writer says so
  }
  const mc::eval::PredictionTable q = mc::fuzz::must("reading predictions_csv(p)", [&] {
    try {
      return parse(text, "predictions_csv");
    } catch (...) {
      std::fprintf(stderr, "--- written:\n%s\n", text.c_str());
      throw;
    }
  });
  FUZZ_CHECK(q.ids == p.ids && q.labels == p.labels && q.num_classes() == k,
             "ids, labels or classes changed in a write and read\n--- written:\n", text);
  for (size_t i = 0; i < p.scores.size(); ++i)
    FUZZ_CHECK(q.scores[i] == p.scores[i] && std::signbit(q.scores[i]) == std::signbit(p.scores[i]),
               "score ", i, " was ", p.scores[i], ", reads back as ", q.scores[i]);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mc::fuzz::run([&] { check(mc::fuzz::as_text(data, size)); });
  return 0;
}
