// Bounds on work that a file header or an option asks for, checked before allocating: a header
// claiming 32767^3 voxels or an option asking for 1e11 resamples is an error that names the file
// or option and what the machine can hold, never a bare std::bad_alloc minutes later.
#pragma once
#include <cstdint>
#include <string>

namespace mc::io {

// Physical memory of this machine in bytes (sysconf), or INT64_MAX when it cannot be told.
int64_t machine_memory_bytes();

// Throws mc::Error("<what>: needs N bytes (<why>), more than this machine's M bytes of memory")
// when bytes is negative or exceeds the machine's physical memory.
void check_allocation(const std::string& what, int64_t bytes, const std::string& why);

// a * b, or nullopt-like -1 when it overflows int64 or either is negative.
int64_t checked_mul(int64_t a, int64_t b);

}  // namespace mc::io
