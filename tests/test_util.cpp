#include "test_util.h"

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <vector>

#include "engine/memory.h"
#include "engine/random.h"

namespace mc::test {

Tensor randn(const Shape& s, uint64_t seed, DType dt, double stddev) {
  Generator g(seed);
  return mc::randn(s, g, dt, 0.0, stddev);
}

Tensor uniform(const Shape& s, uint64_t seed, double lo, double hi, DType dt) {
  Generator g(seed);
  return mc::rand_uniform(s, g, lo, hi, dt);
}

double rel_error(const Tensor& a, const Tensor& ref) {
  auto x = a.to_vector<double>(), y = ref.to_vector<double>();
  EXPECT_EQ(x.size(), y.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
    num = std::max(num, std::abs(x[i] - y[i]));
    den = std::max(den, std::abs(y[i]));
  }
  return den == 0 ? num : num / den;
}

::testing::AssertionResult all_close(const Tensor& a, const Tensor& ref, double rtol, double atol) {
  if (a.shape() != ref.shape())
    return ::testing::AssertionFailure() << "shape " << shape_str(a.shape()) << " vs "
                                         << shape_str(ref.shape());
  auto x = a.to_vector<double>(), y = ref.to_vector<double>();
  size_t bad = 0, worst = 0;
  double worst_excess = -1;
  for (size_t i = 0; i < x.size(); ++i) {
    const double err = std::abs(x[i] - y[i]), tol = atol + rtol * std::abs(y[i]);
    if (!(err <= tol)) {
      ++bad;
      if (err - tol > worst_excess || std::isnan(err)) { worst_excess = err - tol; worst = i; }
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << x.size() << " elements off; worst at "
                                       << worst << ": " << x[worst] << " vs " << y[worst]
                                       << " (rtol " << rtol << ", atol " << atol << ")";
}

bool have_gpu() { return cuda_available(); }

std::string shared_data(const std::string& rel) {
  std::filesystem::path p = std::filesystem::path(MC_SHARED_DATA) / rel;
  return std::filesystem::exists(p) ? p.string() : std::string();
}

namespace {

// Removes each passed test's directory when it ends, and the per-process data at the end.
class TempCleaner : public ::testing::EmptyTestEventListener {
 public:
  void add_test_dir(const std::string& p) { test_dirs_.push_back(p); }
  void add_exit_path(const std::string& p) { exit_paths_.push_back(p); }

 private:
  static bool keep_all() {
    const char* k = std::getenv("MC_KEEP_TEST_DIRS");
    return k && *k && std::string(k) != "0";
  }
  static void remove(const std::string& p) {
    std::error_code ec;  // cleanup is best effort: a test's result never depends on it
    std::filesystem::remove_all(p, ec);
  }
  void OnTestEnd(const ::testing::TestInfo& info) override {
    const bool passed = !info.result() || !info.result()->Failed();
    if (passed && !keep_all())
      for (const auto& p : test_dirs_) remove(p);
    test_dirs_.clear();
  }
  void OnTestProgramEnd(const ::testing::UnitTest&) override {
    if (keep_all()) return;
    for (const auto& p : exit_paths_) remove(p);
    std::error_code ec;
    std::filesystem::remove(process_temp_root(), ec);  // only if empty: kept failures stay
  }
  std::vector<std::string> test_dirs_, exit_paths_;
};

TempCleaner& cleaner() {
  // Owned by gtest's listener list once appended (it deletes its listeners at exit).
  static TempCleaner* c = [] {
    auto* l = new TempCleaner;
    ::testing::UnitTest::GetInstance()->listeners().Append(l);
    return l;
  }();
  return *c;
}

}  // namespace

std::string process_temp_root() {
  // The process id keeps concurrent runs (two checkouts, two ctest invocations) apart.
  return (std::filesystem::temp_directory_path() / ("mc_tests." + std::to_string(::getpid())))
      .string();
}

void remove_at_exit(const std::string& path) { cleaner().add_exit_path(path); }

std::string temp_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::filesystem::path p = std::filesystem::path(process_temp_root()) /
                            (std::string(info->test_suite_name()) + "." + info->name());
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  cleaner().add_test_dir(p.string());
  return p.string();
}

}  // namespace mc::test
