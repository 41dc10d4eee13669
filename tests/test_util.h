// Test helpers: random tensors, comparison with the documented rule
// |a - ref| <= atol + rtol * |ref|, a whole-tensor relative error, and skip conditions.
#pragma once
#include <gtest/gtest.h>

#include <string>

#include "engine/tensor.h"

namespace mc::test {

Tensor randn(const Shape& s, uint64_t seed, DType dt = DType::F32, double stddev = 1.0);
Tensor uniform(const Shape& s, uint64_t seed, double lo, double hi, DType dt = DType::F32);
// max |a - b| / max(|b|) over the tensor (0 when both are zero).
double rel_error(const Tensor& a, const Tensor& ref);
// Checks the elementwise rule; on failure reports the worst element.
::testing::AssertionResult all_close(const Tensor& a, const Tensor& ref, double rtol, double atol);
bool have_gpu();
std::string shared_data(const std::string& rel);  // "" when ../shared/data is absent
std::string temp_dir();                           // a fresh directory for this test

}  // namespace mc::test

#define MC_SKIP_WITHOUT_GPU() \
  if (!::mc::test::have_gpu()) GTEST_SKIP() << "no GPU on this machine"
