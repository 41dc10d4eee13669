#include "engine/check.h"

namespace mc {
void throw_error(const char* file, int line, const std::string& msg) {
  const char* base = file;
  for (const char* p = file; *p; ++p)
    if (*p == '/') base = p + 1;
  throw Error(msg + " [" + base + ":" + std::to_string(line) + "]");
}
}  // namespace mc
