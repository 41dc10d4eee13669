// What every harness shares: the pass rule, property checks, and inputs as files.
//
// Pass rule: the code under test returns, or throws mc::Error (or another std::exception) with a
// message. A crash, a sanitizer report, a timeout, a huge allocation, an empty error message or
// a broken property (FUZZ_CHECK) is a finding: libFuzzer saves the input and stops.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <string>
#include <string_view>

#include "engine/check.h"

namespace mc::fuzz {

// A property the reader promises (round trip, shapes, ranges). abort() is what libFuzzer
// reports as a crash, with the message above the stack.
#define FUZZ_CHECK(cond, ...)                                                             \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "FUZZ_CHECK failed at %s:%d: %s\n  %s\n", __FILE__, __LINE__, \
                   #cond, ::mc::detail::cat(__VA_ARGS__).c_str());                      \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)

// Runs one input through f. Errors with a message are a correct answer to bad input.
// MC_FUZZ_VERBOSE=1 prints each verdict (to see why a seed is refused: fuzz_x seed...).
template <class F>
void run(F&& f) {
  static const bool verbose = std::getenv("MC_FUZZ_VERBOSE") != nullptr;
  try {
    f();
    if (verbose) std::fprintf(stderr, "MC_FUZZ: accepted\n");
  } catch (const std::exception& e) {
    FUZZ_CHECK(e.what() && e.what()[0] != '\0', "an exception with an empty message");
    if (verbose) std::fprintf(stderr, "MC_FUZZ: refused: %s\n", e.what());
  }
}

// A step that must succeed on what the reader accepted (writing it back, reading that again):
// an exception here is a finding, not an answer to bad input.
template <class F>
auto must(const char* what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "FUZZ_CHECK failed: %s threw: %s\n", what, e.what());
    std::abort();
  }
}

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// The readers under test take a path: the input goes to one file per process, in memory
// (/dev/shm) when there is one, so several fuzzer processes never share a file.
inline std::string temp_path(const std::string& suffix) {
  const char* dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : std::getenv("TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/mc_fuzz_" + std::to_string(getpid()) + suffix;
}

inline void write_file(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  FUZZ_CHECK(out.good(), "cannot write the input to ", path);
}

// Removes the per-process file at exit, so long runs leave nothing behind in /dev/shm.
struct TempFile {
  explicit TempFile(std::string suffix) : path(temp_path(suffix)) {}
  ~TempFile() { std::remove(path.c_str()); }
  std::string path;
};

}  // namespace mc::fuzz
