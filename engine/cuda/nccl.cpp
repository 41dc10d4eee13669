// NCCL communicator: collectives on CUDA tensors, enqueued on the engine stream of this rank's
// GPU (no host sync), so they order with the step's other work and can be captured in a CUDA
// graph.
//
// Hangs and failures: the communicator is non-blocking (ncclConfig_t::blocking = 0), so no NCCL
// call can block the host; calls that answer ncclInProgress are polled to completion against
// the deadline. A watchdog thread follows each collective through a CUDA event; when one is
// late (MC_DIST_TIMEOUT_S) or NCCL reports an asynchronous error (e.g. a peer vanished), it
// aborts the NCCL communicator, which ends the stuck kernels; the next call on this
// communicator then throws mc::Error naming the rank and the operation.
#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <cstdio>
#include <deque>
#include <mutex>
#include <thread>

#include "engine/cuda/check.h"
#include "engine/cuda/runtime.h"
#include "engine/dist.h"

namespace mc {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

ncclDataType_t nccl_type(DType dt) {
  switch (dt) {
    case DType::F32: return ncclFloat32;
    case DType::F64: return ncclFloat64;
    case DType::BF16: return ncclBfloat16;
    case DType::F16: return ncclFloat16;
    case DType::I32: return ncclInt32;
    case DType::I64: return ncclInt64;
    case DType::U8: return ncclUint8;
  }
  MC_FAIL("NCCL: unknown dtype");
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(int rank, int world, int local_rank, const std::array<char, 128>& id,
                   std::unique_ptr<Communicator> host)
      : rank_(rank), world_(world), local_(local_rank), host_(std::move(host)),
        timeout_(dist_timeout()) {
    const int n = cuda::device_count();
    MC_CHECK(n >= 1, who(), ": local rank ", local_rank, " needs a GPU, but none is visible");
    dev_ = detail::rank_device(local_rank, n);
    MC_CUDA_CHECK(cudaSetDevice(dev_));  // this process's GPU from now on
    stream_ = cuda::stream(dev_);
    static_assert(sizeof(ncclUniqueId) == 128);
    ncclUniqueId uid;
    std::memcpy(&uid, id.data(), sizeof uid);
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    cfg.blocking = 0;
    settle(ncclCommInitRankConfig(&comm_, world, uid, rank, &cfg), "ncclCommInitRankConfig");
    watchdog_ = std::thread([this] { watch(); });
  }

  ~NcclCommunicator() override {
    {
      std::lock_guard lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (watchdog_.joinable()) watchdog_.join();
    if (comm_ && !aborted_) {
      // Flush what was issued, bounded; a communicator that cannot finish is aborted instead.
      ncclResult_t r = ncclCommFinalize(comm_);
      const auto end = Clock::now() + timeout_;
      while (r == ncclInProgress && Clock::now() < end) {
        std::this_thread::sleep_for(milliseconds(1));
        ncclCommGetAsyncError(comm_, &r);
      }
      if (r == ncclSuccess) ncclCommDestroy(comm_);
      else ncclCommAbort(comm_);
    }
    for (auto& p : pending_) free_.push_back(p.ev);
    for (cudaEvent_t e : free_) MC_CUDA_CHECK_NOTHROW(cudaEventDestroy(e));
  }

  const char* backend() const override { return "nccl"; }
  int rank() const override { return rank_; }
  int world() const override { return world_; }
  int local_rank() const override { return local_; }
  Device device() const override { return Device::cuda(dev_); }

  void broadcast(Tensor& t, int root) override {
    MC_CHECK(root >= 0 && root < world_, who(), ": broadcast from rank ", root);
    on_device(t, "broadcast");
    const std::string op = detail::cat("broadcast of ", t.str(), " from rank ", root);
    std::lock_guard api(api_mu_);
    usable(op);
    settle(ncclBroadcast(t.raw(), t.raw(), size_t(t.numel()), nccl_type(t.dtype()), root, comm_,
                         stream_),
           op);
    track(op);
  }

  void all_gather(const Tensor& in, Tensor& out) override {
    on_device(in, "all_gather");
    on_device(out, "all_gather");
    MC_CHECK(out.dtype() == in.dtype() && out.numel() == in.numel() * world_, who(),
             ": all_gather of ", in.str(), " into ", out.str());
    const std::string op = detail::cat("all_gather of ", in.str());
    std::lock_guard api(api_mu_);
    usable(op);
    settle(ncclAllGather(in.raw(), out.raw(), size_t(in.numel()), nccl_type(in.dtype()), comm_,
                         stream_),
           op);
    track(op);
  }

  std::vector<std::vector<uint8_t>> all_gather_bytes(const void* data, size_t bytes) override {
    if (host_) return host_->all_gather_bytes(data, bytes);
    // Without a host communicator (torchrun): sizes first, then every rank's bytes padded to
    // the longest, through the GPU.
    const Device d = device();
    Tensor size = Tensor::from(std::vector<int64_t>{int64_t(bytes)}, {1}).to(d);
    Tensor sizes = Tensor::empty({world_}, DType::I64, d);
    all_gather(size, sizes);
    const std::vector<int64_t> n = sizes.to_vector<int64_t>();
    const int64_t most = std::max<int64_t>(1, *std::max_element(n.begin(), n.end()));
    Tensor mine = Tensor::zeros({most}, DType::U8);
    if (bytes) std::memcpy(mine.raw(), data, bytes);
    Tensor all = Tensor::empty({most * world_}, DType::U8, d);
    all_gather(mine.to(d), all);
    const std::vector<uint8_t> flat = all.to_vector<uint8_t>();
    std::vector<std::vector<uint8_t>> out(static_cast<size_t>(world_));
    for (int r = 0; r < world_; ++r)
      out[size_t(r)].assign(flat.begin() + r * most, flat.begin() + r * most + n[size_t(r)]);
    return out;
  }

  void barrier() override {
    if (host_) return host_->barrier();
    Tensor one = Tensor::from(std::vector<int32_t>{1}, {1}).to(device());
    all_reduce_sum(one);
    wait_stream("barrier");
  }

  void abort(const std::string& reason) noexcept override {
    std::fprintf(stderr, "%s: aborting the job: %s\n", who().c_str(), reason.c_str());
    std::fflush(stderr);
    {
      std::lock_guard api(api_mu_);
      abort_comm();
    }
    if (host_) host_->abort(reason);
  }

 protected:
  void reduce_pieces(const std::vector<Tensor>& pieces) override {
    for (const Tensor& p : pieces) on_device(p, "all_reduce_sum");
    const std::string op = detail::cat("all_reduce_sum of ", pieces.size(), " piece(s), first ",
                                       pieces.front().str());
    std::lock_guard api(api_mu_);
    usable(op);
    settle(ncclGroupStart(), op);
    for (const Tensor& p : pieces) {
      const ncclResult_t r = ncclAllReduce(p.raw(), p.raw(), size_t(p.numel()), nccl_type(p.dtype()),
                                           ncclSum, comm_, stream_);
      if (r != ncclSuccess && r != ncclInProgress) {
        ncclGroupEnd();
        settle(r, op);
      }
    }
    settle(ncclGroupEnd(), op);
    track(op);
  }

 private:
  struct Pending {
    cudaEvent_t ev;
    Clock::time_point since;
    std::string op;
  };

  void on_device(const Tensor& t, const char* op) const {
    MC_CHECK(t.defined() && t.device() == device(), who(), ": ", op, " takes tensors on ",
             device().str(), ", got ", t.defined() ? t.str() : "an undefined tensor");
  }

  // Throws once the watchdog (or an earlier error) has given up on this communicator.
  void usable(const std::string& op) {
    std::lock_guard lk(mu_);
    MC_CHECK(failure_.empty(), who(), ": ", op, ": the communicator was aborted: ", failure_);
  }

  // A call's result, polled to completion when NCCL answers "in progress" (non-blocking mode).
  void settle(ncclResult_t r, const std::string& op) {
    const auto start = Clock::now();
    while (r == ncclInProgress) {
      if (Clock::now() - start > timeout_) {
        abort_comm();
        MC_FAIL(who(), ": ", op, " did not complete within ", timeout_.count() / 1000.0,
                " s (MC_DIST_TIMEOUT_S)");
      }
      std::this_thread::yield();
      ncclCommGetAsyncError(comm_, &r);
    }
    if (r == ncclSuccess) return;
    const std::string detail = comm_ ? ncclGetLastError(comm_) : "";
    abort_comm();
    MC_FAIL(who(), ": ", op, " failed: ", ncclGetErrorString(r), detail.empty() ? "" : ": ", detail);
  }

  // Hands the op just enqueued to the watchdog (not while the stream is being captured into a
  // CUDA graph: an event recorded there completes only when the graph is launched).
  void track(const std::string& op) {
    cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
    MC_CUDA_CHECK(cudaStreamIsCapturing(stream_, &cap));
    if (cap != cudaStreamCaptureStatusNone) return;
    cudaEvent_t ev;
    {
      std::lock_guard lk(mu_);
      if (free_.empty()) {
        MC_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
      } else {
        ev = free_.back();
        free_.pop_back();
      }
    }
    MC_CUDA_CHECK(cudaEventRecord(ev, stream_));
    std::lock_guard lk(mu_);
    pending_.push_back({ev, Clock::now(), op});
  }

  // Waits (bounded) for everything enqueued on the stream so far.
  void wait_stream(const std::string& op) {
    cudaEvent_t ev;
    MC_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
    MC_CUDA_CHECK(cudaEventRecord(ev, stream_));
    const auto start = Clock::now();
    cudaError_t e;
    while ((e = cudaEventQuery(ev)) == cudaErrorNotReady) {
      usable(op);
      MC_CHECK(Clock::now() - start <= timeout_, who(), ": ", op, " did not complete within ",
               timeout_.count() / 1000.0, " s (MC_DIST_TIMEOUT_S)");
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    cudaEventDestroy(ev);
    MC_CUDA_CHECK(e);
    usable(op);
  }

  void watch() {
    cudaSetDevice(dev_);
    std::unique_lock lk(mu_);
    while (!stop_ && failure_.empty()) {
      cv_.wait_for(lk, milliseconds(100));
      if (comm_gone_) break;
      ncclResult_t async = ncclSuccess;
      ncclCommGetAsyncError(comm_, &async);
      if (async != ncclSuccess && async != ncclInProgress) {
        give_up(lk, detail::cat("NCCL reported ", ncclGetErrorString(async)));
        break;
      }
      while (!pending_.empty()) {
        Pending& p = pending_.front();
        const cudaError_t e = cudaEventQuery(p.ev);
        if (e == cudaSuccess) {
          free_.push_back(p.ev);
          pending_.pop_front();
        } else if (e != cudaErrorNotReady) {
          give_up(lk, detail::cat(p.op, ": ", cudaGetErrorString(e)));
          break;
        } else {
          if (Clock::now() - p.since > timeout_)
            give_up(lk, detail::cat(p.op, " did not complete within ", timeout_.count() / 1000.0,
                                    " s (MC_DIST_TIMEOUT_S)"));
          break;
        }
      }
    }
  }

  // Watchdog: records why, then aborts NCCL (outside mu_, under api_mu_: never while the main
  // thread is inside an NCCL call).
  void give_up(std::unique_lock<std::mutex>& lk, const std::string& why) {
    failure_ = why;
    lk.unlock();
    std::fprintf(stderr, "%s: watchdog: %s; aborting the NCCL communicator\n", who().c_str(),
                 why.c_str());
    {
      std::lock_guard api(api_mu_);
      abort_comm();
    }
    lk.lock();
  }

  // Caller holds api_mu_ (or is the constructor). The watchdog is told first (under mu_, which
  // it holds while it looks at the communicator), so it never touches an aborted one.
  void abort_comm() noexcept {
    if (!comm_ || aborted_) return;
    {
      std::lock_guard lk(mu_);
      if (failure_.empty()) failure_ = "aborted";
      comm_gone_ = true;
    }
    ncclCommAbort(comm_);
    aborted_ = true;
  }

  int rank_, world_, local_, dev_ = 0;
  std::unique_ptr<Communicator> host_;
  milliseconds timeout_;
  cudaStream_t stream_ = nullptr;
  ncclComm_t comm_ = nullptr;
  bool aborted_ = false;  // under api_mu_

  std::recursive_mutex api_mu_;  // around NCCL calls (abort may come from the watchdog)
  std::mutex mu_;                // watchdog state below
  std::condition_variable cv_;
  std::deque<Pending> pending_;
  std::vector<cudaEvent_t> free_;
  std::string failure_;
  bool comm_gone_ = false;  // abort_comm has begun
  bool stop_ = false;
  std::thread watchdog_;
};

}  // namespace

std::array<char, 128> detail::nccl_unique_id() {
  ncclUniqueId id;
  MC_NCCL_CHECK(ncclGetUniqueId(&id));
  std::array<char, 128> out;
  std::memcpy(out.data(), &id, out.size());
  return out;
}

std::unique_ptr<Communicator> detail::make_nccl_communicator(int rank, int world, int local_rank,
                                                             const std::array<char, 128>& id,
                                                             std::unique_ptr<Communicator> host) {
  return std::make_unique<NcclCommunicator>(rank, world, local_rank, id, std::move(host));
}

}  // namespace mc
