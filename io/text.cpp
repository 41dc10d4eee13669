#include "io/text.h"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace mc::io {

std::string shortest(double v) {
  char b[32];
  return std::string(b, std::to_chars(b, b + sizeof b, v).ptr);
}

std::string fixed(double v, int decimals) {
  char b[400];  // 1e308 in fixed notation needs 309 digits
  auto r = std::to_chars(b, b + sizeof b, v, std::chars_format::fixed, decimals);
  if (r.ec != std::errc()) return shortest(v);
  std::string s(b, r.ptr);
  if (s[0] == '-' && s.find_first_not_of("-0.") == std::string::npos) s.erase(0, 1);
  return s;
}

std::string general(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%g", v);
  return b;
}

namespace {
template <class T>
std::optional<T> parse(std::string_view s) {
  if (s.size() > 1 && s[0] == '+' && s[1] != '-') s.remove_prefix(1);
  T v{};
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}
}  // namespace

std::optional<double> parse_double(std::string_view s) { return parse<double>(s); }
std::optional<int64_t> parse_int(std::string_view s) { return parse<int64_t>(s); }

std::optional<std::vector<double>> parse_numbers(std::string_view s, char sep) {
  std::vector<double> v;
  for (size_t start = 0;;) {
    const size_t end = s.find(sep, start);
    const auto x = parse_double(trim(s.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start)));
    if (!x) return std::nullopt;
    v.push_back(*x);
    if (end == std::string_view::npos) return v;
    start = end + 1;
  }
}

std::string joined(const std::vector<std::string>& v, std::string_view sep) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) (s += i ? sep : "") += v[i];
  return s;
}

std::string lower(std::string_view s) {
  std::string o(s);
  for (char& c : o)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  return o;
}

std::string_view trim(std::string_view s) {
  const char* ws = " \t\r\n";
  const size_t a = s.find_first_not_of(ws);
  if (a == std::string_view::npos) return {};
  return s.substr(a, s.find_last_not_of(ws) - a + 1);
}

}  // namespace mc::io
