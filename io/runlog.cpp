#include "io/runlog.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/check.h"

namespace mc {
namespace fs = std::filesystem;

namespace {
std::string num(double v) {
  if (std::isnan(v)) return "nan";
  std::ostringstream s;
  s.precision(10);
  s << v;
  return s.str();
}
}  // namespace

std::vector<LogRow> RunLog::read_csv(const std::string& path) {
  std::ifstream in(path);
  MC_CHECK(in, "cannot read metrics log '", path, "'");
  std::string line;
  std::vector<std::string> cols;
  std::vector<LogRow> rows;
  for (int n = 0; std::getline(in, line); ++n) {
    std::vector<std::string> cells;
    std::stringstream ss(line);
    for (std::string c; std::getline(ss, c, ',');) cells.push_back(c);
    if (n == 0) { cols = cells; continue; }
    MC_CHECK(cells.size() == cols.size(), path, ":", n + 1, ": ", cells.size(), " cells, header has ",
             cols.size());
    LogRow r;
    for (size_t i = 0; i < cols.size(); ++i) r.emplace_back(cols[i], cells[i] == "nan" ? NAN : std::stod(cells[i]));
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

void RunLog::append(const LogRow& row) {
  if (columns_.empty()) {
    for (auto& [k, v] : row) columns_.push_back(k);
    std::ofstream h(csv_);
    for (size_t i = 0; i < columns_.size(); ++i) h << (i ? "," : "") << columns_[i];
    h << "\n";
  }
  MC_CHECK(row.size() == columns_.size(), "metrics log: row with ", row.size(), " columns, log has ",
           columns_.size());
  std::ofstream c(csv_, std::ios::app), j(jsonl_, std::ios::app);
  MC_CHECK(c && j, "cannot append to the metrics log in '", fs::path(csv_).parent_path().string(), "'");
  j << "{";
  for (size_t i = 0; i < row.size(); ++i) {
    MC_CHECK(row[i].first == columns_[i], "metrics log: column '", row[i].first, "' where '",
             columns_[i], "' was expected");
    c << (i ? "," : "") << num(row[i].second);
    j << (i ? ", " : "") << '"' << row[i].first << "\": "
      << (std::isfinite(row[i].second) ? num(row[i].second) : "null");
  }
  c << "\n";
  j << "}\n";
}

}  // namespace mc
