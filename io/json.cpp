#include "io/json.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "io/text.h"

namespace mc::io {
namespace {

// Levels of containers in j: 0 for a scalar, 1 for [1, 2], 2 for [[1], [2]].
int depth(const Json& j) {
  if (!j.is_structured()) return 0;
  int d = 0;
  for (const auto& v : j) d = std::max(d, depth(v));
  return d + 1;
}

// Bytes that are not UTF-8 (a Latin-1 file name) become U+FFFD instead of an exception.
std::string escaped(const std::string& s) {
  return Json(s).dump(-1, ' ', false, Json::error_handler_t::replace);
}

void put(std::string& out, const Json& j, int indent) {
  switch (j.type()) {
    case Json::value_t::number_float: {
      const double v = j.get<double>();
      out += std::isfinite(v) ? shortest(v) : "null";
      return;
    }
    case Json::value_t::object:
    case Json::value_t::array: {
      const bool obj = j.is_object();
      if (j.empty()) {
        out += obj ? "{}" : "[]";
        return;
      }
      const bool inline_ = depth(j) <= 2;
      const std::string pad = inline_ ? "" : "\n" + std::string(size_t(indent + 2), ' ');
      out += obj ? '{' : '[';
      bool first = true;
      for (auto it = j.begin(); it != j.end(); ++it) {
        out += first ? pad : "," + (inline_ ? std::string(" ") : pad);
        first = false;
        if (obj) out += escaped(it.key()) + ": ";
        put(out, it.value(), indent + 2);
      }
      if (!inline_) out += "\n" + std::string(size_t(indent), ' ');
      out += obj ? '}' : ']';
      return;
    }
    case Json::value_t::string:
      out += escaped(j.get_ref<const std::string&>());
      return;
    default:
      out += j.dump();  // integers, booleans, null
  }
}

}  // namespace

std::string json_text(const Json& j) {
  std::string out;
  put(out, j, 0);
  return out;
}

}  // namespace mc::io
