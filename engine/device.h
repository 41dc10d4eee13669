// Device services for programs, benchmarks and tests: waiting for a device, the error flags its
// kernels raise, and timing. Each works for the CPU and for CUDA devices.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "engine/dtype.h"

namespace mc {

// Waits for the work enqueued on `d` (nothing to wait for on the CPU).
void synchronize(Device d);

// Throws mc::Error naming the fault when a kernel on `d` raised a device flag since the last
// check (e.g. a label outside [0, C) in the GPU loss: that row was left out), then clears the
// flags. One small host sync on CUDA; nothing on the CPU, whose ops throw at once.
void check_device_flags(Device d);

// The cheap way for a training loop to check the flags: step() checks every `every` calls
// (every >= 1), so a bad label on the GPU surfaces within `every` steps, not never.
class DeviceFlagCheck {
 public:
  DeviceFlagCheck(Device d, int64_t every);
  void step();  // call once per training step
  int64_t checks() const { return checks_; }

 private:
  Device d_;
  int64_t every_, count_ = 0, checks_ = 0;
};

// Median milliseconds of f() over `repeats` runs after `warmup` runs: CUDA events on the
// device's stream, or the steady clock on the CPU.
double time_ms(Device d, int warmup, int repeats, const std::function<void()>& f);
// "cpu" or the GPU's name, memory and library versions.
std::string device_description(Device d);
// The GPU's L2 cache in bytes (benchmarks size their buffers past it); 0 for the CPU.
size_t cache_bytes(Device d);

// The caching allocator's view of a GPU (all zero for the CPU): bytes held by tensors now and at
// most since reset_peak, and bytes obtained from the driver.
struct MemoryStats {
  size_t current = 0, peak = 0, reserved = 0;
};
MemoryStats memory_stats(Device d);
void reset_peak(Device d);
// Returns the allocator's cached blocks to the driver (synchronises the device).
void empty_cache(Device d);

}  // namespace mc
