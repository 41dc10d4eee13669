// Communicator basics, the Local implementation, the rule that gives a rank its GPU, and the
// bootstrap that picks an implementation from the launcher's environment. MPI is in
// engine/dist_mpi.cpp, the TCP hand-over of NCCL's unique id in engine/dist_tcp.cpp, NCCL in
// engine/cuda/nccl.cpp.
#include "engine/dist.h"

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <utility>

#include "engine/dispatch.h"
#include "engine/prims.h"

namespace mc {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

constexpr int64_t kMaxPieceElems = int64_t(1) << 30;  // fits MPI's int counts

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  MC_CHECK(end && *end == 0 && x >= 0 && x <= INT_MAX, "environment variable ", name, "='", v,
           "' is not a non-negative integer");
  return int(x);
}

}  // namespace

milliseconds dist_timeout() {
  const char* v = std::getenv("MC_DIST_TIMEOUT_S");
  if (!v || !*v) return milliseconds(300'000);
  char* end = nullptr;
  const double s = std::strtod(v, &end);
  MC_CHECK(end && *end == 0 && s > 0 && s < 1e7, "MC_DIST_TIMEOUT_S='", v,
           "' must be a positive number of seconds");
  return milliseconds(int64_t(s * 1000.0 + 0.5));
}

// ---------------- Communicator ----------------

std::string Communicator::who() const {
  return detail::cat("rank ", rank(), "/", world(), " (", backend(), ")");
}

void Communicator::all_reduce_sum(Tensor& t) { all_reduce_sum(std::vector<Tensor>{t}, SIZE_MAX); }

void Communicator::all_reduce_sum(const std::vector<Tensor>& ts, size_t bucket_bytes) {
  MC_CHECK(bucket_bytes > 0, who(), ": all_reduce_sum: the bucket size must be positive");
  std::vector<Tensor> pieces;
  for (const Tensor& t : ts) {
    MC_CHECK(t.defined(), who(), ": all_reduce_sum of an undefined tensor");
    const int64_t per = std::clamp<int64_t>(int64_t(std::min<size_t>(
                                                bucket_bytes / dtype_size(t.dtype()), INT64_MAX)),
                                            1, kMaxPieceElems);
    for (int64_t off = 0; off < t.numel(); off += per)
      pieces.push_back(t.flat_slice(off, {std::min(per, t.numel() - off)}));
  }
  if (!pieces.empty()) reduce_pieces(pieces);
}

std::vector<std::string> all_gather(Communicator& c, const std::vector<std::string>& mine) {
  // Length-prefixed (u64) strings, concatenated.
  std::vector<uint8_t> buf;
  for (const std::string& s : mine) {
    const uint64_t n = s.size();
    buf.insert(buf.end(), reinterpret_cast<const uint8_t*>(&n), reinterpret_cast<const uint8_t*>(&n + 1));
    buf.insert(buf.end(), s.begin(), s.end());
  }
  std::vector<std::string> out;
  for (const auto& part : c.all_gather_bytes(buf.data(), buf.size())) {
    for (size_t at = 0; at < part.size();) {
      uint64_t n = 0;
      MC_CHECK(at + sizeof n <= part.size(), c.who(), ": all_gather of strings: truncated data");
      std::memcpy(&n, part.data() + at, sizeof n);
      at += sizeof n;
      MC_CHECK(n <= part.size() - at, c.who(), ": all_gather of strings: truncated data");
      out.emplace_back(reinterpret_cast<const char*>(part.data() + at), n);
      at += n;
    }
  }
  return out;
}

void allreduce_gradients(Communicator& c, const Tensor& flat_grads, double scale,
                         size_t bucket_bytes) {
  MC_CHECK(flat_grads.defined(), c.who(), ": allreduce_gradients: no gradient block (call "
           "flatten_parameters first)");
  if (c.world() > 1) c.all_reduce_sum(std::vector<Tensor>{flat_grads}, bucket_bytes);
  Tensor g = flat_grads;  // a handle on the same storage
  if (scale != 1.0) g.copy_(prims::scale(g, scale));
}

double allreduce_scalar(Communicator& c, double v) {
  if (c.world() == 1) return v;
  Tensor t = Tensor::full({1}, v, DType::F64, c.device());
  c.all_reduce_sum(t);
  return t.item();
}

// ---------------- Local ----------------

namespace {

class LocalCommunicator final : public Communicator {
 public:
  explicit LocalCommunicator(Device dev) : dev_(dev) {}
  const char* backend() const override { return "local"; }
  int rank() const override { return 0; }
  int world() const override { return 1; }
  int local_rank() const override { return 0; }
  Device device() const override { return dev_; }
  void broadcast(Tensor& t, int root) override {
    MC_CHECK(root == 0, who(), ": broadcast from rank ", root, " in a world of 1");
  }
  void all_gather(const Tensor& in, Tensor& out) override {
    MC_CHECK(out.numel() == in.numel() && out.dtype() == in.dtype(), who(), ": all_gather of ",
             in.str(), " into ", out.str());
    if (!out.shares_storage(in) || out.raw() != in.raw()) out.copy_(in);
  }
  std::vector<std::vector<uint8_t>> all_gather_bytes(const void* data, size_t bytes) override {
    const auto* p = static_cast<const uint8_t*>(data);
    return {std::vector<uint8_t>(p, p + bytes)};
  }
  void barrier() override {}
  void abort(const std::string&) noexcept override {}

 protected:
  void reduce_pieces(const std::vector<Tensor>&) override {}

 private:
  Device dev_;
};

}  // namespace

std::unique_ptr<Communicator> local_communicator(Device dev) {
  return std::make_unique<LocalCommunicator>(dev);
}

// ---------------- bootstrap ----------------

namespace {

// World size according to an MPI launcher, 0 when none launched us.
int launcher_world() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"})
    if (int n = env_int(v, 0)) return n;
  return 0;
}

// NCCL exists in CUDA builds only (engine/cuda/nccl.cpp).
std::array<char, 128> nccl_id() {
  if constexpr (kCudaBuilt) return detail::nccl_unique_id();
  MC_FAIL("NCCL needs CUDA, and this build has none");
}
std::unique_ptr<Communicator> nccl(int rank, int world, int local, const std::array<char, 128>& id,
                                   std::unique_ptr<Communicator> host) {
  if constexpr (kCudaBuilt)
    return detail::make_nccl_communicator(rank, world, local, id, std::move(host));
  MC_FAIL("NCCL needs CUDA, and this build has none");
}

std::unique_ptr<Communicator> nccl_over_mpi(std::unique_ptr<Communicator> mpi) {
  try {
    std::array<char, 128> id{};
    if (mpi->rank() == 0) id = nccl_id();
    Tensor t = Tensor::from_blob(id.data(), {int64_t(id.size())}, DType::U8, nullptr);
    mpi->broadcast(t, 0);
    const int rank = mpi->rank(), world = mpi->world(), local = mpi->local_rank();
    return nccl(rank, world, local, id, std::move(mpi));
  } catch (const std::exception& e) {
    if (mpi) mpi->abort(e.what());  // the others wait in the broadcast or in NCCL's init
    throw;
  }
}

}  // namespace

int detail::rank_device(int local_rank, int visible) {
  MC_CHECK(visible >= 1, "local rank ", local_rank, " needs a GPU, but none is visible");
  MC_CHECK(local_rank >= 0, "negative local rank ", local_rank);
  // One visible GPU (CUDA_VISIBLE_DEVICES per rank, Slurm's default binding): it is this
  // rank's, whatever its local rank. Several: the node's GPUs, shared out by local rank.
  return visible == 1 ? 0 : local_rank % visible;
}

std::unique_ptr<Communicator> init_distributed(Device dev) {
  const int mpi_world = launcher_world();
  const int torch_world = env_int("WORLD_SIZE", 0);
  if (mpi_world > 1) {
    MC_CHECK(torch_world == 0 || torch_world == mpi_world, "the MPI launcher says ", mpi_world,
             " processes but WORLD_SIZE says ", torch_world);
    auto mpi = detail::make_mpi_communicator();
    MC_CHECK(mpi->world() == mpi_world, "the launcher started ", mpi_world,
             " processes but MPI sees ", mpi->world(),
             " (an MPI built without this launcher's support, e.g. srun without --mpi=pmix?)");
    if (dev.is_cpu()) return mpi;
    if (!kCudaBuilt) {
      mpi->abort("a CUDA device was asked for, but this build has no CUDA");
      MC_FAIL("a CUDA device was asked for, but this build has no CUDA");
    }
    return nccl_over_mpi(std::move(mpi));
  }
  if (torch_world > 1) {
    const int rank = env_int("RANK", -1), local = env_int("LOCAL_RANK", -1);
    MC_CHECK(rank >= 0 && rank < torch_world && local >= 0, "WORLD_SIZE=", torch_world,
             " needs RANK in [0, WORLD_SIZE) and LOCAL_RANK (as torchrun sets them)");
    MC_CHECK(dev.is_cuda(), "a torchrun-style launch (WORLD_SIZE=", torch_world,
             ") runs NCCL on GPUs; on CPUs launch with mpirun");
    const char* addr = std::getenv("MASTER_ADDR");
    const int port = env_int("MASTER_PORT", 0);
    MC_CHECK(addr && *addr && port > 0, "WORLD_SIZE=", torch_world,
             " needs MASTER_ADDR and MASTER_PORT (rank 0's address and a free port)");
    MC_CHECK(kCudaBuilt, "a torchrun-style launch needs CUDA, and this build has none");
    std::array<char, 128> id{};
    if (rank == 0) id = nccl_id();
    const std::vector<uint8_t> got = detail::tcp_share(
        rank, torch_world, addr, port, std::vector<uint8_t>(id.begin(), id.end()), dist_timeout());
    MC_CHECK(got.size() == id.size(), "rank ", rank, ": NCCL id of ", got.size(), " bytes");
    std::copy(got.begin(), got.end(), id.begin());
    return nccl(rank, torch_world, local, id, nullptr);
  }
  return local_communicator(dev);
}

}  // namespace mc
