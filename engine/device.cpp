#include "engine/device.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "engine/dispatch.h"

namespace mc {

void synchronize(Device d) {
  if (d.is_cuda()) on_cuda(d, "synchronize", [&] { cuda::synchronize(d.index); });
}

void check_device_flags(Device d) {
  if (d.is_cuda()) on_cuda(d, "check_device_flags", [&] { cuda::check_device_flags(d.index); });
}

DeviceFlagCheck::DeviceFlagCheck(Device d, int64_t every) : d_(d), every_(every) {
  MC_CHECK(every >= 1, "DeviceFlagCheck: check every N >= 1 steps, got ", every);
}

void DeviceFlagCheck::step() {
  if (++count_ % every_ != 0) return;
  ++checks_;
  check_device_flags(d_);
}

double time_ms(Device d, int warmup, int repeats, const std::function<void()>& f) {
  MC_CHECK(repeats >= 1 && warmup >= 0, "time_ms: repeats must be >= 1 and warmup >= 0, got ",
           repeats, " and ", warmup);
  if (d.is_cuda())
    return on_cuda(d, "time_ms", [&] { return cuda::time_ms(d.index, warmup, repeats, f); });
  using Clock = std::chrono::steady_clock;
  for (int i = 0; i < warmup; ++i) f();
  std::vector<double> t;
  for (int i = 0; i < repeats; ++i) {
    const auto a = Clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(Clock::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

std::string device_description(Device d) {
  if (d.is_cpu()) return "cpu";
  return on_cuda(d, "device_description", [&] { return cuda::device_description(d.index); });
}

size_t cache_bytes(Device d) {
  if (d.is_cpu()) return 0;
  return on_cuda(d, "cache_bytes", [&] { return cuda::l2_cache_bytes(d.index); });
}

MemoryStats memory_stats(Device d) {
  if (d.is_cpu()) return {};
  return on_cuda(d, "memory_stats", [&] {
    auto& a = cuda::allocator(d.index);
    return MemoryStats{a.current_bytes, a.peak_bytes, a.reserved_bytes()};
  });
}

void reset_peak(Device d) {
  if (d.is_cuda()) on_cuda(d, "reset_peak", [&] { cuda::allocator(d.index).reset_peak(); });
}

void empty_cache(Device d) {
  if (d.is_cuda()) on_cuda(d, "empty_cache", [&] { cuda::allocator(d.index).empty_cache(); });
}

}  // namespace mc
