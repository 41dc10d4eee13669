#include "engine/precision.h"

#include <atomic>

#include "engine/check.h"

namespace mc {
namespace {
std::atomic<Precision> g_precision{Precision::FP32};
std::atomic<bool> g_deterministic{false};
}  // namespace

void set_precision(Precision p) { g_precision = p; }
Precision precision() { return g_precision; }

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::FP32: return "fp32";
    case Precision::TF32: return "tf32";
    case Precision::BF16: return "bf16";
  }
  return "?";
}

Precision parse_precision(const std::string& s) {
  for (Precision p : {Precision::FP32, Precision::TF32, Precision::BF16})
    if (s == precision_name(p)) return p;
  MC_FAIL("precision: unknown value '", s, "' (allowed: fp32, tf32, bf16)");
}

DType activation_dtype() { return precision() == Precision::BF16 ? DType::BF16 : DType::F32; }

ComputeMode compute_mode_for(Precision p, Device d) {
  const bool cl = d.is_cuda() && (p == Precision::TF32 || p == Precision::BF16);
  return {p, cl ? Layout::NDHWC : Layout::NCDHW};
}

void apply(const ComputeMode& m) { set_precision(m.precision); }
void set_deterministic(bool on) { g_deterministic = on; }
bool deterministic() { return g_deterministic; }

PrecisionScope::PrecisionScope(Precision p) : prev_(precision()) { set_precision(p); }
PrecisionScope::~PrecisionScope() { set_precision(prev_); }

}  // namespace mc
