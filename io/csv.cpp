#include "io/csv.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <istream>
#include <iterator>

#include "engine/check.h"
#include "io/text.h"

namespace mc::io {
namespace {

// The reader works on the whole text: a quoted field may span lines.
class Scanner {
 public:
  Scanner(std::string text, const std::string& name) : t_(std::move(text)), name_(name) {
    if (t_.starts_with("\xEF\xBB\xBF")) i_ = 3;
  }
  bool done() const { return i_ >= t_.size(); }
  int64_t line() const { return line_; }

  // The current line without its end, not consumed.
  std::string_view peek_line() const {
    const size_t e = t_.find('\n', i_);
    std::string_view l(t_.data() + i_, (e == std::string::npos ? t_.size() : e) - i_);
    if (l.ends_with('\r')) l.remove_suffix(1);
    return l;
  }
  void skip_line() {
    const size_t e = t_.find('\n', i_);
    i_ = e == std::string::npos ? t_.size() : e + 1;
    ++line_;
  }

  std::vector<std::string> record(char sep) {
    std::vector<std::string> cells;
    const int64_t start = line_;
    for (;;) {
      std::string cell;
      while (i_ < t_.size() && (t_[i_] == ' ' || t_[i_] == '\t') && t_[i_] != sep) ++i_;
      if (i_ < t_.size() && t_[i_] == '"') {
        ++i_;
        for (;;) {
          MC_CHECK(i_ < t_.size(), name_, ":", start, ": a quoted field is never closed");
          const char c = t_[i_++];
          if (c == '"' && i_ < t_.size() && t_[i_] == '"') cell += '"', ++i_;
          else if (c == '"') break;
          else {
            if (c == '\n') ++line_;
            cell += c;
          }
        }
        while (i_ < t_.size() && (t_[i_] == ' ' || t_[i_] == '\t' || t_[i_] == '\r') && t_[i_] != sep) ++i_;
        MC_CHECK(i_ >= t_.size() || t_[i_] == sep || t_[i_] == '\n', name_, ":", line_,
                 ": text after the closing quote of a field");
      } else {
        while (i_ < t_.size() && t_[i_] != sep && t_[i_] != '\n') cell += t_[i_++];
        cell = std::string(trim(cell));
      }
      cells.push_back(std::move(cell));
      if (i_ < t_.size() && t_[i_] == sep) {
        ++i_;
        continue;
      }
      if (i_ < t_.size()) ++i_, ++line_;  // the '\n'
      return cells;
    }
  }

 private:
  std::string t_;
  const std::string& name_;
  size_t i_ = 0;
  int64_t line_ = 1;
};

char detect_separator(std::string_view line) {
  for (char c : {',', ';', '\t'})
    if (line.find(c) != std::string_view::npos) return c;
  return ',';
}

}  // namespace

int CsvTable::column(std::string_view name) const {
  for (size_t i = 0; i < header.size(); ++i)
    if (header[i] == name) return int(i);
  return -1;
}

std::string CsvTable::where(const CsvRow& row) const { return source + ":" + std::to_string(row.line); }

CsvTable parse_csv(std::istream& in, const std::string& name, const CsvOptions& o) {
  CsvTable t;
  t.source = name;
  Scanner s(std::string(std::istreambuf_iterator<char>(in), {}), name);
  bool first = true;
  while (!s.done()) {
    const std::string_view l = trim(s.peek_line());
    if (l.empty() || (o.comments && l[0] == '#')) {
      s.skip_line();
      continue;
    }
    if (first) t.separator = o.separator ? o.separator : detect_separator(s.peek_line());
    const int64_t line = s.line();
    std::vector<std::string> cells = s.record(t.separator);
    if (first && o.header) {
      t.header = std::move(cells);
      t.header_line = line;
    } else {
      MC_CHECK(!o.header || cells.size() == t.header.size(), name, ":", line, ": ", cells.size(),
               " fields, but the header has ", t.header.size(), " columns");
      t.rows.push_back({line, std::move(cells)});
    }
    first = false;
  }
  return t;
}

CsvTable read_csv(const std::string& path, const CsvOptions& o) {
  std::ifstream in(path, std::ios::binary);
  MC_CHECK(in, path, ": cannot open ", o.what, " (", std::strerror(errno), ")");
  return parse_csv(in, path, o);
}

std::string csv_field(std::string_view f) {
  if (f.find_first_of(",;\"\n\r\t") == std::string_view::npos && trim(f) == f) return std::string(f);
  std::string s = "\"";
  for (char c : f) s += c == '"' ? std::string("\"\"") : std::string(1, c);
  return s + "\"";
}

}  // namespace mc::io
