// Data-parallel training: one process per GPU (or per CPU node), each holding a full replica of
// the model and a slice of every global batch. A Communicator runs the collectives between them.
//
//   auto comm = mc::init_distributed(Device::cuda());   // or Device::cpu()
//   model->flatten_parameters(comm->device());
//   ... forward / backward on this rank's slice ...
//   mc::allreduce_gradients(*comm, model->flat_grads(), 1.0 / comm->world());
//   opt->step();
//
// Implementations:
//   Local  world 1: every collective is the identity (no MPI, no NCCL needed).
//   MPI    CPU tensors (a CUDA tensor is staged through the host: correct, slow). Results are
//          identical on every rank: Open MPI's allreduce algorithms (recursive doubling, ring,
//          reduce-scatter + allgather, binomial reduce + bcast) either reduce each element once
//          and distribute it, or combine pairs with a commutative IEEE addition, which is exact
//          in either order; the tests gather every rank's result and compare bytes.
//   NCCL   CUDA tensors on the engine stream cuda::stream(device) (no host sync), one GPU per
//          rank, picked by detail::rank_device.
//
// Failure handling: every collective has a deadline (env MC_DIST_TIMEOUT_S, default 300 s). MPI
// ops are non-blocking requests polled until done or late; NCCL ops are watched by a thread that
// aborts the NCCL communicator when one is late or NCCL reports an error. A late op throws
// mc::Error naming the rank and the operation, and the communicator is unusable after it. A rank
// that fails calls abort(reason) so the others never wait forever.
#pragma once
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "engine/tensor.h"

namespace mc {

class Communicator {
 public:
  static constexpr size_t kDefaultBucketBytes = size_t(25) << 20;  // as PyTorch's DDP

  virtual ~Communicator() = default;
  virtual const char* backend() const = 0;  // "local", "mpi", "nccl"
  virtual int rank() const = 0;
  virtual int world() const = 0;
  virtual int local_rank() const = 0;  // rank among the processes on this machine
  // Where this rank computes and where the collectives want their tensors (NCCL: this rank's
  // GPU; MPI: the CPU; Local: whatever it was made with).
  virtual Device device() const = 0;

  // In place: every rank ends with the elementwise sum over ranks (f32, f64; NCCL also bf16,
  // f16 and integers). Ordered with the engine's other work on the tensor's device.
  void all_reduce_sum(Tensor& t);
  // Several tensors, each cut into views of at most bucket_bytes, reduced as a batch of
  // collectives (NCCL: one group). The flat gradient block is one tensor: a few buckets.
  void all_reduce_sum(const std::vector<Tensor>& ts, size_t bucket_bytes = kDefaultBucketBytes);
  // In place: every rank ends with root's values.
  virtual void broadcast(Tensor& t, int root) = 0;
  // out (numel = world * in.numel(), same dtype and device) receives every rank's `in`, in rank
  // order.
  virtual void all_gather(const Tensor& in, Tensor& out) = 0;
  // Every rank's bytes (any length, zero included), indexed by rank.
  virtual std::vector<std::vector<uint8_t>> all_gather_bytes(const void* data, size_t bytes) = 0;
  virtual void barrier() = 0;
  // Tears the job down so that the other ranks do not wait forever in a collective this rank
  // will never join: MPI_Abort (ends every process of the job, this one included); NCCL:
  // ncclCommAbort, then MPI_Abort when MPI launched us (under torchrun the agent ends the
  // others once this process exits non-zero). Local: nothing to do. Call it from a catch block
  // on any error that leaves this rank unable to continue, then rethrow.
  virtual void abort(const std::string& reason) noexcept = 0;

  // "rank 1/4 (nccl)": the prefix of every error this communicator raises.
  std::string who() const;

 protected:
  // The pieces each fit one collective (at most 2^30 elements). Default: one at a time.
  virtual void reduce_pieces(const std::vector<Tensor>& pieces) = 0;
};

// Every rank's vector, concatenated in rank order (e.g. validation logits, labels, indices).
// counts, when given, receives each rank's length.
template <class T>
std::vector<T> all_gather(Communicator& c, const std::vector<T>& mine,
                          std::vector<size_t>* counts = nullptr) {
  static_assert(std::is_trivially_copyable_v<T>, "all_gather: T must be trivially copyable");
  std::vector<std::vector<uint8_t>> parts = c.all_gather_bytes(mine.data(), mine.size() * sizeof(T));
  std::vector<T> out;
  if (counts) counts->clear();
  for (const auto& p : parts) {
    const size_t n = p.size() / sizeof(T), at = out.size();
    out.resize(at + n);
    if (n) std::memcpy(out.data() + at, p.data(), n * sizeof(T));
    if (counts) counts->push_back(n);
  }
  return out;
}
std::vector<std::string> all_gather(Communicator& c, const std::vector<std::string>& mine);

// Sums the flat gradient block over ranks in buckets, then multiplies by `scale` (1 / world
// averages: each rank's loss is a mean over its own slice of the global batch). In place (the
// tensor is a handle: pass model.flat_grads()).
void allreduce_gradients(Communicator& c, const Tensor& flat_grads, double scale,
                         size_t bucket_bytes = Communicator::kDefaultBucketBytes);
// The sum over ranks of one number per rank (e.g. a loss sum or a sample count).
double allreduce_scalar(Communicator& c, double v);

// Joins the job this process was launched into and returns its communicator.
//   - Launched by an MPI launcher (mpirun / mpiexec / srun; detected by OMPI_COMM_WORLD_SIZE,
//     PMI_SIZE or SLURM_STEP_NUM_TASKS above 1): MPI. With `dev` a CUDA device, NCCL on the GPU
//     given by the local rank, its ncclUniqueId made by rank 0 and broadcast with MPI.
//   - Otherwise torchrun's variables (WORLD_SIZE above 1, RANK, LOCAL_RANK, MASTER_ADDR,
//     MASTER_PORT): NCCL only (`dev` must be CUDA); rank 0 listens on MASTER_PORT and hands
//     the unique id to the others over TCP. (With torchrun's agent store on, that port is
//     taken: run with TORCHELASTIC_USE_AGENT_STORE=False.)
//   - Otherwise: Local, world 1.
// The MPI launcher's variables win over torchrun's; when both give a world size they must
// agree. For CUDA the rank's GPU is cuda(detail::rank_device(local_rank, visible GPUs)), made
// current; NCCL refuses two ranks on one GPU (its init fails naming both). Deadlines:
// MC_DIST_TIMEOUT_S.
std::unique_ptr<Communicator> init_distributed(Device dev);

// A world-1 communicator on `dev` (tests, single-process runs).
std::unique_ptr<Communicator> local_communicator(Device dev = Device::cpu());

// MC_DIST_TIMEOUT_S (seconds, > 0), default 300.
std::chrono::milliseconds dist_timeout();

namespace detail {
// MPI_COMM_WORLD's communicator (MPI_Init_thread on first use; MPI_Finalize at exit). Throws
// when this build has no MPI.
std::unique_ptr<Communicator> make_mpi_communicator();
// Rank 0 listens on `port` and sends `payload` to world - 1 peers, which connect to addr:port
// (retrying until the deadline) and receive it. Plain POSIX sockets; a peer that does not
// show up, or a server that never answers, is an error after `timeout`.
std::vector<uint8_t> tcp_share(int rank, int world, const std::string& addr, int port,
                               const std::vector<uint8_t>& payload,
                               std::chrono::milliseconds timeout);
// engine/cuda/nccl.cpp (CUDA builds only). `host` (may be null) carries host-side collectives
// and abort().
std::array<char, 128> nccl_unique_id();
std::unique_ptr<Communicator> make_nccl_communicator(int rank, int world, int local_rank,
                                                     const std::array<char, 128>& id,
                                                     std::unique_ptr<Communicator> host);
// The GPU index of a rank with local rank `local_rank` when `visible` GPUs are visible: 0 when
// one is (each rank sees only its own: CUDA_VISIBLE_DEVICES, Slurm's default), else
// local_rank % visible. Throws when none is visible.
int rank_device(int local_rank, int visible);
inline double seconds(std::chrono::milliseconds t) { return double(t.count()) / 1000.0; }
}  // namespace detail

}  // namespace mc
