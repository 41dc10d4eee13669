// The text forms of the configuration keys (config_schema.cpp): values as YAML writes them,
// ranges and types for messages, the resolved YAML of a run, the flat view and --help.
#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <type_traits>

#include "engine/check.h"
#include "engine/metrics.h"
#include "pipeline/config.h"

namespace mc::pipeline {

namespace {

// ---- text forms ----

// Shortest text that reads back to the same double. A '.' is always present so that YAML 1.1
// readers (PyYAML) also take the value as a float: they need "1.0e-08", not "1e-08".
std::string fmt_float(double d) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d);
  std::string s(buf, end);
  if (s.find_first_of(".ni") != std::string::npos) return s;  // has '.', or is inf / nan
  auto e = s.find('e');
  if (e == std::string::npos) return s + ".0";
  return s.insert(e, ".0");
}

std::string leaf_of(const std::string& path) { return path.substr(path.rfind('.') + 1); }

// Range bounds and values in messages: integers without a fraction, the rest shortest.
std::string fmt_plain(double d) {
  if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 1e15)
    return std::to_string(static_cast<long long>(d));
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d);
  return std::string(buf, end);
}

std::string quote(const std::string& s) {
  std::string q = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') q += '\\';
    if (c == '\n') { q += "\\n"; continue; }
    if (c == '\t') { q += "\\t"; continue; }
    q += c;
  }
  return q + "\"";
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

// A value in YAML flow style, as to_yaml writes it.
}  // namespace

std::string ConfigKey::format(const ConfigValue& v) const {
  switch (type) {
    case KeyType::Bool: return std::get<bool>(v) ? "true" : "false";
    case KeyType::Int: return std::to_string(std::get<int64_t>(v));
    case KeyType::Float: return fmt_float(std::get<double>(v));
    case KeyType::String: return quote(std::get<std::string>(v));
    case KeyType::Enum: return std::get<std::string>(v);
    case KeyType::FloatList: {
      std::vector<std::string> parts;
      for (double d : std::get<std::vector<double>>(v)) parts.push_back(fmt_float(d));
      return "[" + join(parts, ", ") + "]";
    }
    case KeyType::StringList: {
      std::vector<std::string> parts;
      for (const auto& s : std::get<std::vector<std::string>>(v)) parts.push_back(quote(s));
      return "[" + join(parts, ", ") + "]";
    }
    case KeyType::WindowList: {
      std::vector<std::string> parts;
      for (const auto& w : std::get<std::vector<io::HUWindow>>(v))
        parts.push_back("[" + fmt_float(w.level) + ", " + fmt_float(w.width) + "]");
      return "[" + join(parts, ", ") + "]";
    }
  }
  return "";
}

// "in [0, 1)", ">= 1", "> 0", "<= 10", or "" when unbounded.
std::string ConfigKey::range_text() const {
  bool has_lo = std::isfinite(lo), has_hi = std::isfinite(hi);
  if (has_lo && has_hi)
    return "in " + std::string(lo_open ? "(" : "[") + fmt_plain(lo) + ", " + fmt_plain(hi) +
           (hi_open ? ")" : "]");
  if (has_lo) return (lo_open ? "> " : ">= ") + fmt_plain(lo);
  if (has_hi) return (hi_open ? "< " : "<= ") + fmt_plain(hi);
  return "";
}

bool ConfigKey::in_range(double v) const {
  if (lo_open ? !(v > lo) : !(v >= lo)) return false;
  if (hi_open ? !(v < hi) : !(v <= hi)) return false;
  return true;
}

std::string ConfigKey::length_text() const {
  if (min_len == max_len) return std::to_string(min_len);
  if (max_len == std::numeric_limits<size_t>::max()) return "at least " + std::to_string(min_len);
  return std::to_string(min_len) + " to " + std::to_string(max_len);
}

// "float > 0", "one of adamw|sgd", "list of 2 floats in [0, 1)": the type line of --help.
std::string ConfigKey::type_text() const {
  std::string r = std::isfinite(lo) || std::isfinite(hi) ? " " + range_text() : "";
  bool any_len = min_len == 0 && max_len == std::numeric_limits<size_t>::max();
  std::string n = any_len ? "" : length_text() + " ";
  switch (type) {
    case KeyType::Bool: return "bool";
    case KeyType::Int: return "int" + r;
    case KeyType::Float: return "float" + r;
    case KeyType::String: return "string";
    case KeyType::Enum: return "one of " + join(choices, "|");
    case KeyType::FloatList:
      return "list of " + n + (increasing ? "increasing " : "") + "floats" + r;
    case KeyType::StringList: return "list of " + n + "strings";
    case KeyType::WindowList: return "list of " + n + "[level, width] pairs in HU, width > 0";
  }
  return "";
}

std::vector<std::pair<std::string, std::string>> config_flat(const Config& c) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& k : config_schema()) out.emplace_back(k.path, k.format(k.get(c)));
  return out;
}

std::string to_yaml(const Config& c) {
  std::map<std::string, std::string> group_meaning;
  for (const auto& g : config_groups()) group_meaning[g.path] = g.meaning;
  std::ostringstream out;
  out << "# MedConv run configuration, resolved: every key with the value in effect.\n";
  std::vector<std::string> open;  // the groups the current line is nested in
  std::set<std::string> closed;   // groups left already: re-opening one would duplicate its key
  for (const auto& k : config_schema()) {
    std::vector<std::string> parts;
    for (size_t b = 0, e; (e = k.path.find('.', b)) != std::string::npos; b = e + 1)
      parts.push_back(k.path.substr(0, e));
    size_t common = 0;
    while (common < open.size() && common < parts.size() && open[common] == parts[common]) ++common;
    while (open.size() > common) {
      closed.insert(open.back());
      open.pop_back();
    }
    for (size_t i = common; i < parts.size(); ++i) {
      MC_CHECK(!closed.count(parts[i]), "config schema: the keys of ", parts[i],
               " are not contiguous");
      std::string indent(2 * i, ' ');
      if (i == 0) out << "\n";
      out << indent << "# " << group_meaning[parts[i]] << "\n"
          << indent << leaf_of(parts[i]) << ":\n";
      open.push_back(parts[i]);
    }
    std::string line = std::string(2 * parts.size(), ' ') + leaf_of(k.path) + ": " +
                       k.format(k.get(c));
    if (line.size() < 40) line.resize(40, ' ');
    out << line << "  # " << k.meaning << "\n";
  }
  return out.str();
}

namespace {
// Words of `text` in lines of at most `width` columns (a longer word gets a line of its own).
std::string wrap(const std::string& text, const std::string& indent, size_t width) {
  std::istringstream words(text);
  std::string out, line, w;
  while (words >> w) {
    if (!line.empty() && indent.size() + line.size() + 1 + w.size() > width) {
      out += indent + line + "\n";
      line.clear();
    }
    line += (line.empty() ? "" : " ") + w;
  }
  return out + indent + line + "\n";
}
}  // namespace

std::string config_help() {
  std::ostringstream out;
  out << "Configuration keys. Set them in the YAML file given to --config, or on the command\n"
         "line as key=value with the value written in YAML, e.g.\n"
         "  optim.lr=3e-4  train.epochs=50  data.windows=[[400,2000],[40,400]]\n"
         "Later settings win: defaults, then the file, then overrides from left to right.\n";
  const Config defaults;
  std::string group;
  for (const auto& k : config_schema()) {
    std::string g = k.path.substr(0, k.path.rfind('.'));
    if (g != group) {
      group = g;
      for (const auto& cg : config_groups())
        if (cg.path == g) out << "\n" << g << ": " << cg.meaning << "\n";
    }
    out << "  " << k.path << " = " << k.format(k.get(defaults)) << "\n"
        << wrap(k.type_text() + ": " + k.meaning, "      ", 100);
  }
  return out.str();
}

}  // namespace mc::pipeline
