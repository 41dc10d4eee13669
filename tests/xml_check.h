// A minimal XML well-formedness check for the SVG files the tests read: one root element, tags
// balanced and properly nested, attribute values quoted, '&' only in entities. Returns "" when
// fine, else the first problem with its byte offset. A test aid: the charts are built by
// construction and are not re-parsed at run time.
#pragma once
#include <cctype>
#include <cstring>
#include <string>
#include <vector>

namespace mc::test {

inline std::string xml_problem(const std::string& d) {
  const size_t n = d.size();
  auto at = [](size_t pos, const std::string& what) { return "byte " + std::to_string(pos) + ": " + what; };
  auto entity_ok = [&](size_t amp) {  // "&amp;", "&lt;", ..., "&#123;"
    const size_t semi = d.find(';', amp);
    if (semi == std::string::npos || semi - amp > 8) return false;
    const std::string e = d.substr(amp + 1, semi - amp - 1);
    return e == "amp" || e == "lt" || e == "gt" || e == "quot" || e == "apos" ||
           (e.size() > 1 && e[0] == '#');
  };
  std::vector<std::string> open;
  int roots = 0;
  for (size_t i = 0; i < n;) {
    const char c = d[i];
    if (c == '&') {
      if (!entity_ok(i)) return at(i, "'&' outside an entity");
      ++i;
      continue;
    }
    if (c != '<') {
      if (open.empty() && !std::isspace(static_cast<unsigned char>(c)))
        return at(i, "text outside the root element");
      ++i;
      continue;
    }
    size_t skip_to = 0;  // past a comment or processing instruction
    for (const auto& [start, end] : {std::pair{"<!--", "-->"}, std::pair{"<?", "?>"}})
      if (d.compare(i, std::strlen(start), start) == 0) {
        const size_t e = d.find(end, i);
        if (e == std::string::npos) return at(i, std::string("unterminated ") + start);
        skip_to = e + std::strlen(end);
      }
    if (skip_to) {
      i = skip_to;
    } else {
      const bool closing = i + 1 < n && d[i + 1] == '/';
      const size_t name_at = i + 1 + (closing ? 1 : 0);
      size_t k = name_at;
      while (k < n && (std::isalnum(static_cast<unsigned char>(d[k])) || std::strchr(":-_.", d[k]))) ++k;
      if (k == name_at) return at(i, "tag without a name");
      const std::string name = d.substr(name_at, k - name_at);
      bool self = false;
      for (;; ++k) {
        if (k >= n) return at(i, "unterminated tag <" + name);
        if (d[k] == '"' || d[k] == '\'') {
          const size_t e = d.find(d[k], k + 1);
          if (e == std::string::npos) return at(k, "unterminated attribute value in <" + name);
          for (size_t a = k + 1; a < e; ++a) {
            if (d[a] == '<') return at(a, "'<' in an attribute value");
            if (d[a] == '&' && !entity_ok(a)) return at(a, "'&' outside an entity");
          }
          k = e;
        } else if (d[k] == '=') {
          size_t v = k + 1;
          while (v < n && std::isspace(static_cast<unsigned char>(d[v]))) ++v;
          if (v >= n || (d[v] != '"' && d[v] != '\'')) return at(k, "unquoted attribute in <" + name);
        } else if (d[k] == '<') {
          return at(k, "'<' inside tag <" + name);
        } else if (d[k] == '/' && k + 1 < n && d[k + 1] == '>') {
          self = true;
          ++k;
          break;
        } else if (d[k] == '>') {
          break;
        }
      }
      if (closing) {
        if (open.empty() || open.back() != name)
          return at(i, "</" + name + "> closes " + (open.empty() ? "nothing" : "<" + open.back() + ">"));
        open.pop_back();
      } else {
        if (open.empty() && ++roots > 1) return at(i, "a second root element <" + name + ">");
        if (!self) open.push_back(name);
      }
      i = k + 1;
    }
  }
  if (!open.empty()) return "<" + open.back() + "> is never closed";
  if (roots == 0) return "no root element";
  return "";
}

}  // namespace mc::test
