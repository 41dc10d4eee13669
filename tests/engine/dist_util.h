// Shared by dist_test.cpp and dist_mpi_test.cpp: worker launch under mpirun and the
// batch-norm cases both the one-rank and the two-rank tests compare against.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/dist.h"
#include "engine/nn.h"
#include "engine/sync_bn.h"
#include "test_util.h"

namespace mc::dist_test {

using Clock = std::chrono::steady_clock;

inline bool worker() {
  const char* v = std::getenv("MC_DIST_WORKER");
  return v && std::string(v) == "1";
}
#define MC_WORKER_ONLY() \
  if (!worker()) GTEST_SKIP() << "runs under mpirun, launched by the DistMpi test of that name"

inline Tensor rn(const Shape& s, uint64_t seed, DType dt = DType::F64) { return test::randn(s, seed, dt); }

inline Tensor scaled(const Tensor& t, double a) {
  std::vector<double> v = t.to_vector<double>();
  for (double& x : v) x *= a;
  return Tensor::from(v, t.shape()).to(t.dtype());
}

// a + b elementwise in the tensors' own dtype.
inline Tensor elementwise_sum(const Tensor& a, const Tensor& b) {
  Tensor out = a.clone();
  if (a.dtype() == DType::F32) {
    for (int64_t i = 0; i < a.numel(); ++i) out.data<float>()[i] += b.data<float>()[i];
  } else {
    for (int64_t i = 0; i < a.numel(); ++i) out.data<double>()[i] += b.data<double>()[i];
  }
  return out;
}

inline std::vector<uint8_t> bytes_of(const Tensor& t) {
  const auto* p = static_cast<const uint8_t*>(t.raw());
  return std::vector<uint8_t>(p, p + t.nbytes());
}

// ---------------- launching workers ----------------

struct Job {
  int rc = -1;
  std::string out;
  double seconds = 0;
};

inline std::string find_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "";
  for (size_t at = 0; at <= dirs.size();) {
    const size_t end = std::min(dirs.find(':', at), dirs.size());
    const std::string cand = dirs.substr(at, end - at) + "/" + name;
    if (::access(cand.c_str(), X_OK) == 0) return cand;
    at = end + 1;
  }
  return "";
}

// Runs DistWorker.<test> on 2 ranks; `env` entries are NAME=value. Bounded by `timeout 180`.
inline Job run_workers(const std::string& test, const std::vector<std::string>& env = {}) {
  std::string cmd = "timeout 180 " + find_on_path("mpirun") +
                    " --allow-run-as-root --oversubscribe --bind-to none -np 2"
                    " -x MC_DIST_WORKER=1 -x OMP_NUM_THREADS=1";
  for (const std::string& e : env) cmd += " -x " + e;
  cmd += " " + std::filesystem::read_symlink("/proc/self/exe").string() +
         " --gtest_color=no --gtest_filter=DistWorker." + test + " 2>&1";
  Job job;
  const auto start = Clock::now();
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return job;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) job.out.append(buf, n);
  const int status = ::pclose(p);
  job.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  job.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return job;
}

inline size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

// The launch line uses Open MPI's mpirun options (-x, --oversubscribe, --bind-to).
inline bool have_open_mpi() {
  static const bool ok = [] {
    const std::string mpirun = find_on_path("mpirun");
    if (mpirun.empty()) return false;
    FILE* p = ::popen((mpirun + " --version 2>&1").c_str(), "r");
    if (!p) return false;
    char buf[256] = {0};
    const size_t n = std::fread(buf, 1, sizeof buf - 1, p);
    ::pclose(p);
    return std::string(buf, n).find("Open MPI") != std::string::npos;
  }();
  return ok;
}

#ifdef MC_HAVE_MPI
#define MC_SKIP_WITHOUT_MPI()                                            \
  if (worker()) GTEST_SKIP() << "a worker launches no workers";         \
  if (!have_open_mpi()) GTEST_SKIP() << "no Open MPI mpirun on PATH"
#else
#define MC_SKIP_WITHOUT_MPI() GTEST_SKIP() << "built without MPI"
#endif

// Both ranks ran the worker test and passed.
inline void expect_passed_on_both(const std::string& test) {
  const Job j = run_workers(test);
  EXPECT_EQ(j.rc, 0) << j.out;
  EXPECT_EQ(count(j.out, "[  PASSED  ] 1 test."), 2u) << j.out;
}

// ---------------- synchronised batch norm on one rank ----------------

struct BnCase {
  Tensor x, w, b, rm, rv, g;  // g: the upstream gradient
};

inline BnCase bn_case(const Shape& s, DType dt, uint64_t seed) {
  const int64_t C = s[1];
  BnCase k;
  k.x = test::randn(s, seed, dt, 2.0);
  k.w = test::uniform({C}, seed + 1, 0.5, 1.5, dt);
  k.b = test::randn({C}, seed + 2, dt);
  k.rm = test::randn({C}, seed + 3, dt);
  k.rv = test::uniform({C}, seed + 4, 0.5, 2.0, dt);
  k.g = test::randn(s, seed + 5, dt);
  return k;
}

struct BnResult {
  Tensor y, dx, dw, db, rm, rv;
};

// Forward and backward of one batch-norm flavour on slice [n0, n0 + n) of the case's batch.
template <class F>
inline BnResult run_bn(const BnCase& k, int64_t n0, int64_t n, F&& bn) {
  Shape s = k.x.shape();
  const int64_t per = k.x.numel() / s[0];
  s[0] = n;
  BnResult r;
  Tensor x = k.x.flat_slice(n0 * per, s).clone().set_requires_grad(true);
  Tensor w = k.w.clone().set_requires_grad(true), b = k.b.clone().set_requires_grad(true);
  r.rm = k.rm.clone();
  r.rv = k.rv.clone();
  r.y = bn(x, w, b, r.rm, r.rv);
  r.y.backward(k.g.flat_slice(n0 * per, s).clone());
  r.dx = x.grad(), r.dw = w.grad(), r.db = b.grad();
  return r;
}

inline BnResult plain_bn(const BnCase& k) {
  return run_bn(k, 0, k.x.size(0), [](auto& x, auto& w, auto& b, auto& rm, auto& rv) {
    return batch_norm(x, w, b, rm, rv, true, 0.1, 1e-5);
  });
}

}  // namespace mc::dist_test
