// The one CSV reader behind every table MedConv reads (labels, split files, saved predictions,
// mc_prep's manifest, run logs), and the field quoting its writers use.
//
// RFC 4180 with the leniencies real exports need: fields quoted with '"' ("" inside quotes is one
// quote; separators and line breaks inside quotes are data), LF or CRLF line ends, a UTF-8 byte
// order mark, blank lines skipped, spaces around a field ignored (inside quotes they are kept),
// the separator given or found in the header line (the first of ',', ';', tab that occurs).
// Every row must have as many fields as the header; errors name the file and the line.
#pragma once
#include <cstdint>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

namespace mc::io {

struct CsvOptions {
  char separator = 0;    // 0: detected from the first record's line
  bool header = true;    // the first record names the columns; rows must match its length
  bool comments = false; // lines whose first non-space character is '#' are skipped
  std::string what = "CSV file";  // for "cannot open <what>" errors
};

struct CsvRow {
  int64_t line = 0;  // 1-based line where the record starts
  std::vector<std::string> cells;
};

struct CsvTable {
  std::string source;               // file name, for messages
  char separator = ',';
  int64_t header_line = 0;          // 0 when there is no header (or the file is empty)
  std::vector<std::string> header;  // empty when CsvOptions::header is false or the file is empty
  std::vector<CsvRow> rows;
  // Index of the first header cell equal to `name`, or -1.
  int column(std::string_view name) const;
  // "file:line" of a row, the prefix of every message about it.
  std::string where(const CsvRow& row) const;
};

// Errors (mc::Error): a row whose field count differs from the header's ("f.csv:7: 3 fields,
// but the header has 4 columns"), an unterminated quote, text after a closing quote.
CsvTable parse_csv(std::istream& in, const std::string& name, const CsvOptions& options = {});
CsvTable read_csv(const std::string& path, const CsvOptions& options = {});

// A field as our writers put it: quoted (with "" for a quote) when it holds a separator (',' ';'
// tab), a quote, a line break or surrounding spaces; as it is otherwise.
std::string csv_field(std::string_view field);

}  // namespace mc::io
