// Data-parallel building blocks (engine/dist.h, engine/sync_bn.h).
//
// Multi-rank tests need no CMake support: a DistMpi.X test re-launches this very binary under
// `mpirun -np 2` with --gtest_filter=DistWorker.X and MC_DIST_WORKER=1; the DistWorker tests
// skip unless that variable is set, and assert on their own rank's results (a failure on any
// rank makes mpirun exit non-zero).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <thread>

#include "engine/dist.h"
#include "engine/nn.h"
#include "engine/optim.h"
#include "engine/sync_bn.h"
#include "test_util.h"

namespace mc {
namespace {

using Clock = std::chrono::steady_clock;

bool worker() {
  const char* v = std::getenv("MC_DIST_WORKER");
  return v && std::string(v) == "1";
}
#define MC_WORKER_ONLY() \
  if (!worker()) GTEST_SKIP() << "runs under mpirun, launched by the DistMpi test of that name"

Tensor rn(const Shape& s, uint64_t seed, DType dt = DType::F64) { return test::randn(s, seed, dt); }

Tensor scaled(const Tensor& t, double a) {
  std::vector<double> v = t.to_vector<double>();
  for (double& x : v) x *= a;
  return Tensor::from(v, t.shape()).to(t.dtype());
}

// a + b elementwise in the tensors' own dtype.
Tensor elementwise_sum(const Tensor& a, const Tensor& b) {
  Tensor out = a.clone();
  if (a.dtype() == DType::F32) {
    for (int64_t i = 0; i < a.numel(); ++i) out.data<float>()[i] += b.data<float>()[i];
  } else {
    for (int64_t i = 0; i < a.numel(); ++i) out.data<double>()[i] += b.data<double>()[i];
  }
  return out;
}

std::vector<uint8_t> bytes_of(const Tensor& t) {
  const auto* p = static_cast<const uint8_t*>(t.raw());
  return std::vector<uint8_t>(p, p + t.nbytes());
}

// ---------------- launching workers ----------------

struct Job {
  int rc = -1;
  std::string out;
  double seconds = 0;
};

std::string find_on_path(const std::string& name) {
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
Job run_workers(const std::string& test, const std::vector<std::string>& env = {}) {
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

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

// The launch line uses Open MPI's mpirun options (-x, --oversubscribe, --bind-to).
bool have_open_mpi() {
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
void expect_passed_on_both(const std::string& test) {
  const Job j = run_workers(test);
  EXPECT_EQ(j.rc, 0) << j.out;
  EXPECT_EQ(count(j.out, "[  PASSED  ] 1 test."), 2u) << j.out;
}

// ---------------- Local communicator, bootstrap, TCP hand-over ----------------

TEST(DistLocal, CollectivesAreTheIdentity) {
  auto c = local_communicator();
  EXPECT_STREQ(c->backend(), "local");
  EXPECT_EQ(c->rank(), 0);
  EXPECT_EQ(c->world(), 1);
  EXPECT_EQ(c->device(), Device::cpu());
  Tensor t = rn({1000}, 1), ref = t.clone();
  c->all_reduce_sum(t);
  c->all_reduce_sum({t, ref.clone()}, 64);
  c->broadcast(t, 0);
  EXPECT_EQ(bytes_of(t), bytes_of(ref));
  EXPECT_THROW(c->broadcast(t, 1), Error);
  Tensor all = Tensor::zeros({1000}, DType::F64);
  c->all_gather(t, all);
  EXPECT_EQ(bytes_of(all), bytes_of(ref));
  EXPECT_EQ(all_gather(*c, std::vector<int>{4, 5, 6}), (std::vector<int>{4, 5, 6}));
  EXPECT_EQ(all_gather(*c, std::vector<std::string>{"a", "", "case-7"}),
            (std::vector<std::string>{"a", "", "case-7"}));
  EXPECT_EQ(allreduce_scalar(*c, 2.5), 2.5);
  allreduce_gradients(*c, t, 0.5);
  EXPECT_TRUE(test::all_close(t, scaled(ref, 0.5), 0, 0));
  c->barrier();
  c->abort("nothing to tear down");  // returns: a world of one has no peers
}


// Sets environment variables for a scope, restoring the previous values.
using EnvVars = std::vector<std::pair<std::string, const char*>>;
class EnvGuard {
 public:
  explicit EnvGuard(const EnvVars& vars) {
    for (auto& [k, v] : vars) {
      const char* old = std::getenv(k.c_str());
      saved_.emplace_back(k, old ? std::optional<std::string>(old) : std::nullopt);
      if (v) ::setenv(k.c_str(), v, 1);
      else ::unsetenv(k.c_str());
    }
  }
  ~EnvGuard() {
    for (auto& [k, v] : saved_) {
      if (v) ::setenv(k.c_str(), v->c_str(), 1);
      else ::unsetenv(k.c_str());
    }
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

const EnvVars kNoLauncher = {
    {"OMPI_COMM_WORLD_SIZE", nullptr}, {"PMI_SIZE", nullptr}, {"SLURM_STEP_NUM_TASKS", nullptr},
    {"WORLD_SIZE", nullptr},           {"RANK", nullptr},     {"LOCAL_RANK", nullptr}};

TEST(DistLocal, InitWithoutLauncherIsLocal) {
  if (worker()) GTEST_SKIP() << "under mpirun";
  EnvGuard g(kNoLauncher);
  auto c = init_distributed(Device::cpu());
  EXPECT_STREQ(c->backend(), "local");
  EXPECT_EQ(c->world(), 1);
}

TEST(DistLocal, TorchrunVariablesAreChecked) {
  if (worker()) GTEST_SKIP() << "under mpirun";
  auto vars = kNoLauncher;
  vars.push_back({"MASTER_ADDR", "127.0.0.1"});
  vars.push_back({"MASTER_PORT", "29500"});
  {
    EnvGuard g(vars);
    ::setenv("WORLD_SIZE", "2", 1);
    EXPECT_THROW(init_distributed(Device::cpu()), Error);  // RANK, LOCAL_RANK missing
    ::setenv("RANK", "1", 1);
    ::setenv("LOCAL_RANK", "1", 1);
    try {
      init_distributed(Device::cpu());
      ADD_FAILURE() << "a torchrun launch on CPUs was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("mpirun"), std::string::npos) << e.what();
    }
    ::setenv("RANK", "2", 1);
    EXPECT_THROW(init_distributed(Device::cuda()), Error);  // rank outside the world
  }
  {
    EnvGuard g(EnvVars{{"MC_DIST_TIMEOUT_S", "2.5"}});
    EXPECT_EQ(dist_timeout().count(), 2500);
    ::setenv("MC_DIST_TIMEOUT_S", "soon", 1);
    EXPECT_THROW(dist_timeout(), Error);
    ::setenv("MC_DIST_TIMEOUT_S", "0", 1);
    EXPECT_THROW(dist_timeout(), Error);
  }
}

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

TEST(DistLocal, TcpShareHandsRankZerosBytesToEveryone) {
  const int port = free_port();
  std::vector<uint8_t> payload(128);
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = uint8_t(i * 37 + 11);
  std::vector<std::vector<uint8_t>> got(3);
  std::vector<std::string> errors(3);
  auto run = [&](int r) {
    try {
      got[size_t(r)] = detail::tcp_share(r, 3, "127.0.0.1", port,
                                         r == 0 ? payload : std::vector<uint8_t>{},
                                         std::chrono::seconds(20));
    } catch (const std::exception& e) {
      errors[size_t(r)] = e.what();
    }
  };
  // The peers start first: they must retry until rank 0 listens.
  std::thread p1(run, 1), p2(run, 2);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::thread p0(run, 0);
  p0.join(), p1.join(), p2.join();
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(errors[size_t(r)], "") << "rank " << r;
    EXPECT_EQ(got[size_t(r)], payload) << "rank " << r;
  }
}

TEST(DistLocal, TcpShareFailsWithinItsDeadline) {
  const int port = free_port();
  const auto start = Clock::now();
  try {
    detail::tcp_share(1, 2, "127.0.0.1", port, {}, std::chrono::milliseconds(500));
    ADD_FAILURE() << "a peer without a rank 0 got an answer";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("did not answer"), std::string::npos) << e.what();
  }
  try {
    detail::tcp_share(0, 2, "127.0.0.1", port, {1, 2, 3}, std::chrono::milliseconds(500));
    ADD_FAILURE() << "rank 0 without peers returned";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("did not connect"), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - start).count(), 30.0);
}

// ---------------- synchronised batch norm on one rank ----------------

struct BnCase {
  Tensor x, w, b, rm, rv, g;  // g: the upstream gradient
};

BnCase bn_case(const Shape& s, DType dt, uint64_t seed) {
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
BnResult run_bn(const BnCase& k, int64_t n0, int64_t n, F&& bn) {
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

BnResult plain_bn(const BnCase& k) {
  return run_bn(k, 0, k.x.size(0), [](auto& x, auto& w, auto& b, auto& rm, auto& rv) {
    return batch_norm(x, w, b, rm, rv, true, 0.1, 1e-5);
  });
}

TEST(DistSyncBN, OneRankIsBatchNormBitForBit) {
  auto c = local_communicator();
  for (DType dt : {DType::F64, DType::F32}) {
    const BnCase k = bn_case({4, 3, 3, 4, 5}, dt, 10);
    const BnResult ref = plain_bn(k);
    const BnResult got = run_bn(k, 0, 4, [&](auto& x, auto& w, auto& b, auto& rm, auto& rv) {
      return sync_batch_norm(x, w, b, rm, rv, true, 0.1, 1e-5, *c);
    });
    EXPECT_EQ(bytes_of(got.y), bytes_of(ref.y)) << dtype_name(dt);
    EXPECT_EQ(bytes_of(got.rm), bytes_of(ref.rm)) << dtype_name(dt);
    EXPECT_EQ(bytes_of(got.rv), bytes_of(ref.rv)) << dtype_name(dt);
    if (dt == DType::F64) {
      EXPECT_EQ(bytes_of(got.dx), bytes_of(ref.dx));
      EXPECT_EQ(bytes_of(got.dw), bytes_of(ref.dw));
      EXPECT_EQ(bytes_of(got.db), bytes_of(ref.db));
    } else {  // batch_norm's backward reads its statistics back rounded to f32
      EXPECT_TRUE(test::all_close(got.dx, ref.dx, 1e-5, 1e-6));
      EXPECT_TRUE(test::all_close(got.dw, ref.dw, 1e-5, 1e-6));
      EXPECT_TRUE(test::all_close(got.db, ref.db, 1e-5, 1e-6));
    }
  }
}

TEST(DistSyncBN, DevicePathOnCpuMatchesBatchNorm) {
  auto c = local_communicator();
  const BnCase k = bn_case({3, 4, 2, 3, 5}, DType::F64, 20);
  const BnResult ref = plain_bn(k);
  const BnResult got = run_bn(k, 0, 3, [&](auto& x, auto& w, auto& b, auto& rm, auto& rv) {
    return detail::sync_batch_norm_prims(x, w, b, rm, rv, 0.1, 1e-5, *c);
  });
  for (auto [a, r] : {std::pair{got.y, ref.y}, {got.dx, ref.dx}, {got.dw, ref.dw},
                      {got.db, ref.db}, {got.rm, ref.rm}, {got.rv, ref.rv}})
    EXPECT_TRUE(test::all_close(a, r, 1e-10, 1e-10));
}

TEST(DistSyncBN, GradCheckFloat64) {
  auto c = local_communicator();
  std::vector<Tensor> in = {rn({3, 2, 2, 3, 2}, 30), test::uniform({2}, 31, 0.5, 1.5, DType::F64),
                            rn({2}, 32)};
  for (Tensor& t : in) t.set_requires_grad(true);
  auto f = [&] {
    Tensor no_rm, no_rv;
    return sync_batch_norm(in[0], in[1], in[2], no_rm, no_rv, true, 0.1, 1e-5, *c);
  };
  const Tensor R = rn(in[0].shape(), 33);
  sum(mul(f(), R)).backward();
  NoGradGuard ng;
  const double h = 1e-6;
  for (size_t i = 0; i < in.size(); ++i) {
    double* p = in[i].data<double>();
    std::vector<double> numeric(size_t(in[i].numel()));
    for (int64_t e = 0; e < in[i].numel(); ++e) {
      const double keep = p[e];
      p[e] = keep + h;
      const double up = sum(mul(f(), R)).item();
      p[e] = keep - h;
      const double down = sum(mul(f(), R)).item();
      p[e] = keep;
      numeric[size_t(e)] = (up - down) / (2 * h);
    }
    EXPECT_TRUE(test::all_close(in[i].grad(), Tensor::from(numeric, in[i].shape()), 1e-6, 1e-6))
        << "input " << i;
  }
}

TEST(DistSyncBN, EvaluationUsesRunningStatistics) {
  auto c = local_communicator();
  const BnCase k = bn_case({2, 3, 4}, DType::F64, 40);
  Tensor rm = k.rm.clone(), rv = k.rv.clone(), rm2 = k.rm.clone(), rv2 = k.rv.clone();
  Tensor y = sync_batch_norm(k.x, k.w, k.b, rm, rv, false, 0.1, 1e-5, *c);
  Tensor ref = batch_norm(k.x, k.w, k.b, rm2, rv2, false, 0.1, 1e-5);
  EXPECT_EQ(bytes_of(y), bytes_of(ref));
  EXPECT_EQ(bytes_of(rm), bytes_of(k.rm));  // untouched
  EXPECT_THROW(sync_batch_norm(k.x, rn({4}, 41), k.b, rm, rv, true, 0.1, 1e-5, *c), Error);
}

// ---------------- two ranks under mpirun ----------------

std::unique_ptr<Communicator> mpi_pair() {
  auto c = init_distributed(Device::cpu());
  EXPECT_STREQ(c->backend(), "mpi");
  EXPECT_EQ(c->world(), 2);
  return c;
}

// Every rank holds the same bytes.
void expect_same_on_all_ranks(Communicator& c, const Tensor& t) {
  const std::vector<uint8_t> mine = bytes_of(t);
  const std::vector<uint8_t> all = all_gather(c, mine);
  ASSERT_EQ(all.size(), mine.size() * size_t(c.world()));
  for (int r = 0; r < c.world(); ++r)
    EXPECT_TRUE(std::equal(mine.begin(), mine.end(), all.begin() + r * mine.size()))
        << "rank " << r << " holds other values";
}

TEST(DistWorker, Collectives) {
  MC_WORKER_ONLY();
  auto c = mpi_pair();
  const int r = c->rank();
  // Sums of random tensors, whole and in buckets (4 KiB: sizes not a multiple of a bucket).
  for (DType dt : {DType::F32, DType::F64}) {
    for (int64_t n : {int64_t(1), int64_t(1000), int64_t(3 * 1024 + 7)}) {
      Tensor mine = test::randn({n}, 100 + uint64_t(r), dt), other = test::randn({n}, 101 - uint64_t(r), dt);
      Tensor expect = r == 0 ? elementwise_sum(mine, other) : elementwise_sum(other, mine);
      Tensor whole = mine.clone();
      c->all_reduce_sum(whole);
      EXPECT_EQ(bytes_of(whole), bytes_of(expect)) << dtype_name(dt) << " n=" << n;
      Tensor a = mine.clone(), b = scaled(mine, 3.0);
      c->all_reduce_sum({a, b}, 4096);
      EXPECT_EQ(bytes_of(a), bytes_of(expect)) << dtype_name(dt) << " n=" << n << " (buckets)";
      expect_same_on_all_ranks(*c, b);
    }
  }
  // Gradient averaging and scalars.
  Tensor g = Tensor::full({2500}, r == 0 ? 1.0 : 3.0);
  allreduce_gradients(*c, g, 0.5, 1024);
  EXPECT_TRUE(test::all_close(g, Tensor::full({2500}, 2.0), 0, 0));
  EXPECT_EQ(allreduce_scalar(*c, r == 0 ? 1.25 : 2.5), 3.75);
  // Broadcast from rank 1.
  Tensor t = test::randn({77}, 200 + uint64_t(r)), from1 = test::randn({77}, 201);
  c->broadcast(t, 1);
  EXPECT_EQ(bytes_of(t), bytes_of(from1));
  // All-gather: fixed-size tensors, then vectors and strings of every length (zero included).
  Tensor all = Tensor::empty({2, 5}, DType::I64);
  c->all_gather(Tensor::full({5}, double(r + 7), DType::I64), all);
  EXPECT_EQ(all.to_vector<int64_t>(), (std::vector<int64_t>{7, 7, 7, 7, 7, 8, 8, 8, 8, 8}));
  std::vector<size_t> counts;
  const std::vector<float> logits = r == 0 ? std::vector<float>{0.5f, 1.5f, 2.5f} : std::vector<float>{};
  EXPECT_EQ(all_gather(*c, logits, &counts), (std::vector<float>{0.5f, 1.5f, 2.5f}));
  EXPECT_EQ(counts, (std::vector<size_t>{3, 0}));
  const std::vector<std::string> ids =
      r == 0 ? std::vector<std::string>{"sub-001"} : std::vector<std::string>{"", "sub-103", "x"};
  EXPECT_EQ(all_gather(*c, ids), (std::vector<std::string>{"sub-001", "", "sub-103", "x"}));
  c->barrier();
  EXPECT_THROW(c->broadcast(t, 2), Error);
}

TEST(DistMpi, Collectives) {
  MC_SKIP_WITHOUT_MPI();
  expect_passed_on_both("Collectives");
}

// Rank 0 holds the first 3 samples of a batch of 5, rank 1 the other 2 (uneven on purpose);
// both must get what one process gets on the whole batch.
TEST(DistWorker, SyncBatchNorm) {
  MC_WORKER_ONLY();
  auto c = mpi_pair();
  const BnCase k = bn_case({5, 3, 2, 3, 4}, DType::F64, 50);
  const BnResult ref = plain_bn(k);
  const int64_t n0 = c->rank() == 0 ? 0 : 3, n = c->rank() == 0 ? 3 : 2, per = k.x.numel() / 5;
  Shape s = k.x.shape();
  s[0] = n;
  auto check = [&](const BnResult& got, double tol, const char* path) {
    EXPECT_TRUE(test::all_close(got.y, ref.y.flat_slice(n0 * per, s), tol, tol)) << path;
    EXPECT_TRUE(test::all_close(got.dx, ref.dx.flat_slice(n0 * per, s), tol, tol)) << path;
    EXPECT_TRUE(test::all_close(got.rm, ref.rm, tol, tol)) << path;
    EXPECT_TRUE(test::all_close(got.rv, ref.rv, tol, tol)) << path;
    Tensor dw = got.dw.clone(), db = got.db.clone();  // this rank's share: summed over ranks
    c->all_reduce_sum(dw);
    c->all_reduce_sum(db);
    EXPECT_TRUE(test::all_close(dw, ref.dw, tol, tol)) << path;
    EXPECT_TRUE(test::all_close(db, ref.db, tol, tol)) << path;
    EXPECT_FALSE(test::all_close(got.dw, ref.dw, 1e-3, 1e-3)) << path << ": local share = total?";
  };
  check(run_bn(k, n0, n, [&](auto& x, auto& w, auto& b, auto& rm, auto& rv) {
          return sync_batch_norm(x, w, b, rm, rv, true, 0.1, 1e-5, *c);
        }),
        1e-12, "loops");
  check(run_bn(k, n0, n, [&](auto& x, auto& w, auto& b, auto& rm, auto& rv) {
          return detail::sync_batch_norm_prims(x, w, b, rm, rv, 0.1, 1e-5, *c);
        }),
        1e-10, "prims");
}

TEST(DistMpi, SyncBatchNorm) {
  MC_SKIP_WITHOUT_MPI();
  expect_passed_on_both("SyncBatchNorm");
}

// ---------------- data-parallel training ----------------

// conv -> batch norm (synchronised when given a communicator) -> relu -> pool -> linear.
class TinyNet : public nn::Module {
 public:
  explicit TinyNet(Communicator* sync) : sync_(sync) {
    conv_ = &register_parameter("conv.weight", test::randn({4, 1, 3, 3, 3}, 60, DType::F32, 0.3));
    bn_w_ = &register_parameter("bn.weight", test::uniform({4}, 61, 0.8, 1.2));
    bn_b_ = &register_parameter("bn.bias", test::randn({4}, 62, DType::F32, 0.1));
    fc_w_ = &register_parameter("fc.weight", test::randn({3, 4}, 63, DType::F32, 0.5));
    fc_b_ = &register_parameter("fc.bias", Tensor::zeros({3}));
    rm_ = &register_buffer("bn.running_mean", Tensor::zeros({4}));
    rv_ = &register_buffer("bn.running_var", Tensor::full({4}, 1.0));
  }
  Tensor forward(const Tensor& x) override {
    Conv3dOpts o;
    o.padding = {1, 1, 1};
    Tensor h = conv3d(x, *conv_, Tensor(), o);
    h = sync_ ? sync_batch_norm(h, *bn_w_, *bn_b_, *rm_, *rv_, is_training(), 0.1, 1e-5, *sync_)
              : batch_norm(h, *bn_w_, *bn_b_, *rm_, *rv_, is_training(), 0.1, 1e-5);
    return linear(global_avg_pool3d(relu(h)), *fc_w_, *fc_b_);
  }
  Tensor running_mean() const { return *rm_; }

 private:
  Communicator* sync_;
  Tensor *conv_, *bn_w_, *bn_b_, *fc_w_, *fc_b_, *rm_, *rv_;
};

// Trains `steps` SGD steps on global batches of 4 (random volumes, fixed labels); rank r of
// `world` takes samples [2r, 2r + 2) of each when world is 2. Returns the flat parameters.
struct Trained {
  Tensor params, running_mean;
};
Trained train_tiny(Communicator& comm, Communicator* sync, int steps) {
  TinyNet net(sync);
  net.flatten_parameters();
  SGD opt(net.parameters(), SGDOptions{.lr = 0.2, .momentum = 0.9});
  const int64_t per = comm.world() == 1 ? 4 : 2, first = comm.rank() * per;
  const std::vector<int64_t> labels = {0, 2, 1, 2};
  for (int s = 0; s < steps; ++s) {
    Tensor global = test::randn({4, 1, 6, 6, 6}, 1000 + uint64_t(s), DType::F32, 2.0);
    Tensor x = global.flat_slice(first * 216, {per, 1, 6, 6, 6}).clone();
    Tensor y = Tensor::from(std::vector<int64_t>(labels.begin() + first, labels.begin() + first + per), {per});
    net.zero_grad();
    cross_entropy(net(x), y).backward();  // the mean over this rank's samples
    allreduce_gradients(comm, net.flat_grads(), 1.0 / comm.world());
    opt.step();
  }
  return {net.flat_params().clone(), net.running_mean().clone()};
}

TEST(DistWorker, DataParallelTraining) {
  MC_WORKER_ONLY();
  auto c = mpi_pair();
  auto one = local_communicator();
  const Trained ref = train_tiny(*one, nullptr, 5);  // one process, whole batches
  const Trained dp = train_tiny(*c, c.get(), 5);
  EXPECT_LT(test::rel_error(dp.params, ref.params), 1e-5);
  EXPECT_TRUE(test::all_close(dp.params, ref.params, 1e-5, 1e-6));
  EXPECT_TRUE(test::all_close(dp.running_mean, ref.running_mean, 1e-5, 1e-6));
  expect_same_on_all_ranks(*c, dp.params);
  // Control: per-rank batch statistics (no sync) train a different model.
  const Trained unsynced = train_tiny(*c, nullptr, 5);
  EXPECT_GT(test::rel_error(unsynced.params, ref.params), 1e-4);
}

TEST(DistMpi, DataParallelTraining) {
  MC_SKIP_WITHOUT_MPI();
  expect_passed_on_both("DataParallelTraining");
}

// ---------------- failures end the job, within a bound ----------------

TEST(DistWorker, KilledRank) {
  MC_WORKER_ONLY();
  auto c = mpi_pair();
  Tensor t = Tensor::full({1000}, 1.0);
  for (int step = 0; step < 100000; ++step) {
    if (c->rank() == 1 && step == 3) std::raise(SIGKILL);
    c->all_reduce_sum(t);
  }
  ADD_FAILURE() << "rank " << c->rank() << " outlived its dead peer";
}

TEST(DistMpi, KilledRankEndsTheJob) {
  MC_SKIP_WITHOUT_MPI();
  const Job j = run_workers("KilledRank");
  EXPECT_NE(j.rc, 0) << j.out;
  EXPECT_NE(j.out.find("signal 9"), std::string::npos) << j.out;
  EXPECT_LT(j.seconds, 60.0) << j.out;
}

TEST(DistWorker, Timeout) {
  MC_WORKER_ONLY();
  auto c = mpi_pair();
  if (c->rank() == 1) {  // never joins; ended by rank 0's abort
    std::this_thread::sleep_for(std::chrono::seconds(120));
    return;
  }
  Tensor t = Tensor::full({10}, 1.0);
  try {
    c->all_reduce_sum(t);
    ADD_FAILURE() << "a collective without its peer completed";
  } catch (const Error& e) {
    std::printf("caught: %s\n", e.what());
    std::fflush(stdout);
    EXPECT_THROW(c->all_reduce_sum(t), Error);  // unusable after a timeout
    c->abort(e.what());
  }
}

TEST(DistMpi, TimeoutNamesRankAndOperation) {
  MC_SKIP_WITHOUT_MPI();
  const Job j = run_workers("Timeout", {"MC_DIST_TIMEOUT_S=2"});
  EXPECT_NE(j.rc, 0) << j.out;
  EXPECT_NE(j.out.find("caught: "), std::string::npos) << j.out;
  EXPECT_NE(j.out.find("rank 0/2 (mpi): all_reduce_sum"), std::string::npos) << j.out;
  EXPECT_NE(j.out.find("did not complete within 2 s"), std::string::npos) << j.out;
  EXPECT_LT(j.seconds, 60.0) << j.out;
}

TEST(DistWorker, AbortOnThrow) {
  MC_WORKER_ONLY();
  auto c = mpi_pair();
  Tensor t = Tensor::full({10}, 1.0);
  try {
    for (int step = 0; step < 5; ++step) {
      if (c->rank() == 1 && step == 2) MC_FAIL("simulated failure in step 2");
      c->all_reduce_sum(t);  // rank 0 waits here (default deadline: 300 s) until aborted
    }
  } catch (const std::exception& e) {
    c->abort(e.what());
    throw;
  }
  ADD_FAILURE() << "rank " << c->rank() << " finished a job that was aborted";
}

TEST(DistMpi, AbortOnThrowEndsTheJob) {
  MC_SKIP_WITHOUT_MPI();
  const Job j = run_workers("AbortOnThrow");
  EXPECT_NE(j.rc, 0) << j.out;
  EXPECT_NE(j.out.find("rank 1/2 (mpi): aborting the job:"), std::string::npos) << j.out;
  EXPECT_NE(j.out.find("simulated failure in step 2"), std::string::npos) << j.out;
  EXPECT_LT(j.seconds, 60.0) << j.out;
}

// ---------------- NCCL (one rank; needs a GPU) ----------------

// Issue: NCCL took local_rank as the device index, wrong when each rank sees one GPU
// (CUDA_VISIBLE_DEVICES per rank, Slurm's default binding).
TEST(DistNccl, RankDeviceRule) {
  EXPECT_EQ(detail::rank_device(0, 1), 0);
  EXPECT_EQ(detail::rank_device(3, 1), 0);  // one visible GPU: it is this rank's
  EXPECT_EQ(detail::rank_device(3, 8), 3);
  EXPECT_EQ(detail::rank_device(9, 8), 1);
  EXPECT_EQ(detail::rank_device(5, 4), 1);
  test::expect_error([] { detail::rank_device(2, 0); }, {"local rank 2", "no", "visible"});
  test::expect_error([] { detail::rank_device(-1, 2); }, {"negative local rank"});
}

TEST(DistNccl, OneRankOnTheGpu) {
  MC_SKIP_WITHOUT_GPU();
#ifndef MC_HAVE_CUDA
  GTEST_SKIP() << "built without CUDA";
#else
  auto c = detail::make_nccl_communicator(0, 1, 0, detail::nccl_unique_id(), nullptr);
  EXPECT_STREQ(c->backend(), "nccl");
  EXPECT_EQ(c->device(), Device::cuda(0));
  const Device d = c->device();
  Tensor host = rn({5000}, 70, DType::F32), t = host.to(d);
  c->all_reduce_sum({t}, 4096);
  EXPECT_EQ(bytes_of(t.to(Device::cpu())), bytes_of(host));
  allreduce_gradients(*c, t, 0.5);
  EXPECT_TRUE(test::all_close(t.to(Device::cpu()), scaled(host, 0.5), 0, 0));
  c->broadcast(t, 0);
  Tensor all = Tensor::empty({5000}, DType::F32, d);
  c->all_gather(t, all);
  EXPECT_TRUE(test::all_close(all.to(Device::cpu()), scaled(host, 0.5), 0, 0));
  EXPECT_EQ(allreduce_scalar(*c, 1.5), 1.5);
  EXPECT_EQ(all_gather(*c, std::vector<std::string>{"a", "bc"}), (std::vector<std::string>{"a", "bc"}));
  c->barrier();
  Tensor cpu = Tensor::zeros({3});
  EXPECT_THROW(c->all_reduce_sum(cpu), Error);
  // Synchronised batch norm through the cuDNN prims against batch_norm on the same GPU.
  const BnCase k32 = bn_case({4, 3, 4, 4, 4}, DType::F32, 80);
  BnCase k = k32;
  for (Tensor* p : {&k.x, &k.w, &k.b, &k.rm, &k.rv, &k.g}) *p = p->to(d);
  const BnResult ref = plain_bn(k);
  const BnResult got = run_bn(k, 0, 4, [&](auto& x, auto& w, auto& b, auto& rm, auto& rv) {
    return sync_batch_norm(x, w, b, rm, rv, true, 0.1, 1e-5, *c);
  });
  for (auto [a, r] : {std::pair{got.y, ref.y}, {got.dx, ref.dx}, {got.dw, ref.dw},
                      {got.db, ref.db}, {got.rm, ref.rm}, {got.rv, ref.rv}})
    EXPECT_TRUE(test::all_close(a.to(Device::cpu()), r.to(Device::cpu()), 1e-4, 1e-5));
#endif
}

}  // namespace
}  // namespace mc
