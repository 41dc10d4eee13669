#include "io/bounds.h"

#include <unistd.h>

#include <limits>

#include "engine/check.h"

namespace mc::io {

int64_t machine_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return std::numeric_limits<int64_t>::max();
  if (pages > std::numeric_limits<int64_t>::max() / page) return std::numeric_limits<int64_t>::max();
  return int64_t(pages) * int64_t(page);
}

void check_allocation(const std::string& what, int64_t bytes, const std::string& why) {
  const int64_t have = machine_memory_bytes();
  if (bytes < 0 || bytes > have)
    MC_FAIL(what, ": needs ", bytes < 0 ? std::string("more than 2^63") : std::to_string(bytes),
            " bytes (", why, "), more than this machine's ", have, " bytes of memory");
}

int64_t checked_mul(int64_t a, int64_t b) {
  if (a < 0 || b < 0) return -1;
  if (a != 0 && b > std::numeric_limits<int64_t>::max() / a) return -1;
  return a * b;
}

}  // namespace mc::io
