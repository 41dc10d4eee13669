#include "pipeline/config_scalars.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

namespace mc::pipeline::config_detail {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1])});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string suggest_choice(const std::string& v, const std::vector<std::string>& choices) {
  std::string lower = v;
  std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
  std::string best;
  size_t best_d = std::numeric_limits<size_t>::max();
  for (const auto& c : choices) {
    size_t d = edit_distance(lower, c);
    if (d < best_d) best = c, best_d = d;
  }
  return best_d <= std::max<size_t>(2, v.size() / 3) ? best : "";
}

// ---- scalar parsing ----

std::optional<double> parse_float(std::string s) {
  if (!s.empty() && s[0] == '+') s.erase(0, 1);
  double d;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return d;
}

std::optional<int64_t> parse_int(std::string s) {
  if (!s.empty() && s[0] == '+') s.erase(0, 1);
  int64_t i;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), i);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return i;
}

std::optional<bool> parse_bool(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), ::tolower);
  if (s == "true" || s == "yes" || s == "on") return true;
  if (s == "false" || s == "no" || s == "off") return false;
  return std::nullopt;
}

bool finite_number(const YAML::Node& n, double& out) {
  auto d = n.IsScalar() ? parse_float(n.Scalar()) : std::nullopt;
  if (!d || !std::isfinite(*d)) return false;
  out = *d;
  return true;
}

// What a node holds, for "got ..." in messages.
std::string describe(const YAML::Node& n) {
  if (!n.IsDefined() || n.IsNull()) return "no value";
  if (n.IsScalar()) return "'" + n.Scalar() + "'";
  YAML::Emitter e;
  e << YAML::Flow << n;
  std::string s = e.c_str();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return (n.IsSequence() ? "the list " : "the mapping ") + s;
}

}  // namespace mc::pipeline::config_detail
