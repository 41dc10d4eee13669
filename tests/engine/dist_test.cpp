// Data-parallel building blocks on one rank (engine/dist.h, engine/sync_bn.h): the local
// communicator, launcher detection, the TCP hand-over, synchronised batch norm, NCCL on one GPU.
// The two-rank tests under mpirun are in dist_mpi_test.cpp.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <optional>
#include <thread>

#include "tests/engine/dist_util.h"

namespace mc {
namespace {

using namespace dist_test;

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
