// Data-parallel building blocks (engine/dist.h, engine/sync_bn.h).
//
// Multi-rank tests need no CMake support: a DistMpi.X test re-launches this very binary under
// `mpirun -np 2` with --gtest_filter=DistWorker.X and MC_DIST_WORKER=1; the DistWorker tests
// skip unless that variable is set, and assert on their own rank's results (a failure on any
// rank makes mpirun exit non-zero).
#include <csignal>
#include <thread>

#include "engine/optim.h"
#include "tests/engine/dist_util.h"

namespace mc {
namespace {

using namespace dist_test;

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

}  // namespace
}  // namespace mc
