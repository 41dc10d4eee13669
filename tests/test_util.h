// Test helpers: random tensors, comparison with the documented rule
// |a - ref| <= atol + rtol * |ref|, a whole-tensor relative error, and skip conditions.
#pragma once
#include <gtest/gtest.h>

#include <initializer_list>
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

// Expects fn() to throw mc::Error whose message contains every fragment.
template <class F>
void expect_error(F fn, std::initializer_list<std::string> fragments) {
  try {
    fn();
    ADD_FAILURE() << "no error thrown";
  } catch (const Error& e) {
    for (const auto& f : fragments)
      EXPECT_NE(std::string(e.what()).find(f), std::string::npos)
          << "message \"" << e.what() << "\" lacks \"" << f << "\"";
  }
}
std::string shared_data(const std::string& rel);  // "" when ../shared/data is absent
// A fresh directory for this test; it wipes what an earlier call of the same test made, so call
// it once per test and keep the path. It is removed when the test passes (a failed test's is
// kept to look at; MC_KEEP_TEST_DIRS=1 keeps all): the end-to-end tests write checkpoints of
// hundreds of MB each, and a suite that leaves them behind fills a CI disk.
std::string temp_dir();
// The root of this process's test directories (<tmp>/mc_tests.<pid>); removed when the test
// program ends, whatever the outcome, if nothing a failed test kept is left in it.
std::string process_temp_root();
// `path` is removed when the test program ends (data shared by the tests of one process).
void remove_at_exit(const std::string& path);

}  // namespace mc::test

#define MC_SKIP_WITHOUT_GPU() \
  if (!::mc::test::have_gpu()) GTEST_SKIP() << "no GPU on this machine"
