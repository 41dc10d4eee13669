// The run's metrics log: one row per epoch, appended to metrics.csv and metrics.jsonl (both
// flushed per row, so a killed run keeps every finished epoch). Columns are fixed by the first
// row; reopening an existing log (resume) keeps its rows up to the resumed epoch.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace mc::io {

using LogRow = std::vector<std::pair<std::string, double>>;

class RunLog {
 public:
  // keep_epochs: on resume, rows with epoch > keep_epochs are dropped (they were not kept).
  RunLog(const std::string& dir, int64_t keep_epochs = -1);
  void append(const LogRow& row);  // must contain "epoch"
  static std::vector<LogRow> read_csv(const std::string& path);

 private:
  std::string csv_, jsonl_;
  std::vector<std::string> columns_;
};

}  // namespace mc::io
