// One error type and the check macros for every library we call (DESIGN: "One error header").
// Library code throws mc::Error; it never calls exit().
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace mc {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] void throw_error(const char* file, int line, const std::string& msg);

namespace detail {
template <class... A>
std::string cat(const A&... a) {
  std::ostringstream s;
  (s << ... << a);
  return s.str();
}
}  // namespace detail
}  // namespace mc

// MC_CHECK(cond, parts...): throws mc::Error("file:line: parts...") when cond is false.
#define MC_CHECK(cond, ...)                                                    \
  do {                                                                         \
    if (!(cond)) ::mc::throw_error(__FILE__, __LINE__, ::mc::detail::cat(__VA_ARGS__)); \
  } while (0)
#define MC_FAIL(...) ::mc::throw_error(__FILE__, __LINE__, ::mc::detail::cat(__VA_ARGS__))
