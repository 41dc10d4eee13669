// One error type and the check macros (DESIGN: "One error header"). Library code throws
// mc::Error; it never calls exit(). Header-only, so kernels/ (which links no engine code) throws
// the same error; engine/cuda/check.h adds the CUDA, cuDNN, cuBLAS and NCCL checks.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace mc {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// "msg [file.cpp:42]" (the file's base name).
[[noreturn]] inline void throw_error(const char* file, int line, const std::string& msg) {
  const char* base = file;
  for (const char* p = file; *p; ++p)
    if (*p == '/') base = p + 1;
  throw Error(msg + " [" + base + ":" + std::to_string(line) + "]");
}

namespace detail {
template <class... A>
std::string cat(const A&... a) {
  std::ostringstream s;
  (s << ... << a);
  return s.str();
}
}  // namespace detail
}  // namespace mc

// MC_CHECK(cond, parts...): throws mc::Error("parts... [file:line]") when cond is false.
#define MC_CHECK(cond, ...)                                                    \
  do {                                                                         \
    if (!(cond)) ::mc::throw_error(__FILE__, __LINE__, ::mc::detail::cat(__VA_ARGS__)); \
  } while (0)
#define MC_FAIL(...) ::mc::throw_error(__FILE__, __LINE__, ::mc::detail::cat(__VA_ARGS__))
