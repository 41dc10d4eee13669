// Labels CSV (subject id, T-score and/or class) from text.
#include <sstream>

#include "fuzz/fuzz_util.h"
#include "io/labels.h"

namespace {

void check(std::string_view input) {
  std::istringstream in{std::string(input)};
  const mc::io::LabelTable t = mc::io::parse_labels(in, "fuzz.csv");
  FUZZ_CHECK(t.by_id.size() == t.entries.size(), t.entries.size(), " rows, ", t.by_id.size(),
             " distinct ids");
  for (const auto& e : t.entries) {
    FUZZ_CHECK(!e.id.empty() && t.find(e.id) == &e, "subject '", e.id, "' is not found by its id");
    FUZZ_CHECK(e.label >= -1 && e.label < mc::io::kNumClasses, "subject '", e.id, "': label ", e.label);
    FUZZ_CHECK(e.line >= 2, "subject '", e.id, "' on line ", e.line, " (line 1 is the header)");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mc::fuzz::run([&] { check(mc::fuzz::as_text(data, size)); });
  return 0;
}
