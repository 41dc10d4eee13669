#include "io/runlog.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/check.h"
#include "io/csv.h"
#include "io/json.h"
#include "io/text.h"

namespace mc::io {
namespace fs = std::filesystem;

std::vector<LogRow> RunLog::read_csv(const std::string& path) {
  const CsvTable t = mc::io::read_csv(path, {.separator = ',', .what = "metrics log"});
  std::vector<LogRow> rows;
  for (const CsvRow& row : t.rows) {
    LogRow r;
    for (size_t i = 0; i < t.header.size(); ++i) {
      const auto v = parse_double(row.cells[i]);
      MC_CHECK(v, t.where(row), ": column '", t.header[i], "' holds '", row.cells[i], "', not a number");
      r.emplace_back(t.header[i], *v);
    }
    rows.push_back(std::move(r));
  }
  return rows;
}

RunLog::RunLog(const std::string& dir, int64_t keep_epochs)
    : csv_((fs::path(dir) / "metrics.csv").string()), jsonl_((fs::path(dir) / "metrics.jsonl").string()) {
  fs::create_directories(dir);
  std::vector<LogRow> kept;
  if (keep_epochs >= 0 && fs::exists(csv_)) {
    for (auto& r : read_csv(csv_))
      for (auto& [k, v] : r)
        if (k == "epoch" && v <= double(keep_epochs)) kept.push_back(r);
  }
  fs::remove(csv_);
  fs::remove(jsonl_);
  for (auto& r : kept) append(r);
}

// Appended, not replaced atomically: a row at a time is the point (a killed run keeps every
// finished epoch), and a torn last line only loses that epoch.
void RunLog::append(const LogRow& row) {
  if (columns_.empty()) {
    for (auto& [k, v] : row) columns_.push_back(k);
    std::ofstream h(csv_);
    for (size_t i = 0; i < columns_.size(); ++i) h << (i ? "," : "") << csv_field(columns_[i]);
    h << "\n";
  }
  MC_CHECK(row.size() == columns_.size(), "metrics log: row with ", row.size(), " columns, log has ",
           columns_.size());
  std::ofstream c(csv_, std::ios::app), j(jsonl_, std::ios::app);
  MC_CHECK(c && j, "cannot append to the metrics log in '", fs::path(csv_).parent_path().string(), "'");
  Json line = Json::object();
  for (size_t i = 0; i < row.size(); ++i) {
    MC_CHECK(row[i].first == columns_[i], "metrics log: column '", row[i].first, "' where '",
             columns_[i], "' was expected");
    c << (i ? "," : "") << shortest(row[i].second);  // NaN: "nan", which read_csv reads back
    line[row[i].first] = row[i].second;             // NaN: null
  }
  c << "\n";
  j << json_text(line) << "\n";
}

}  // namespace mc::io
