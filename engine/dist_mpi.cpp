// The MPI communicator (engine/dist.h): CPU tensors, non-blocking requests polled against the
// deadline.
#include <algorithm>
#include <climits>
#include <cstdio>
#include <thread>

#include "engine/dist.h"

#ifdef MC_HAVE_MPI
#include <mpi.h>
#endif

namespace mc {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using detail::seconds;

// ---------------- MPI ----------------

#ifdef MC_HAVE_MPI
namespace {

// MPI is initialised once per process and finalised at exit (MPI cannot be re-initialised, and
// tests make several communicators). Each communicator works on its own duplicate of
// MPI_COMM_WORLD.
struct MpiRuntime {
  MpiRuntime() {
    int done = 0;
    MPI_Initialized(&done);
    if (done) return;
    int provided = 0;
    // SERIALIZED: the loader's threads never call MPI, but the calling thread may change.
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided);
    owned = true;
  }
  ~MpiRuntime() {
    int done = 0;
    MPI_Finalized(&done);
    if (owned && !done) MPI_Finalize();
  }
  bool owned = false;
};

void ensure_mpi() { static MpiRuntime runtime; }

bool mpi_finalized() {
  int done = 0;
  MPI_Finalized(&done);
  return done != 0;
}

MPI_Datatype mpi_type(DType dt, const std::string& who, const char* op) {
  switch (dt) {
    case DType::F32: return MPI_FLOAT;
    case DType::F64: return MPI_DOUBLE;
    case DType::I32: return MPI_INT32_T;
    case DType::I64: return MPI_INT64_T;
    case DType::U8: return MPI_UINT8_T;
    default: break;
  }
  MC_FAIL(who, ": ", op, ": MPI has no ", dtype_name(dt), " type (use f32 or f64)");
}

// A CPU tensor to hand MPI: the tensor itself, or a host copy of a CUDA tensor (copied back by
// finish()).
struct HostView {
  Tensor dev, host;
  explicit HostView(const Tensor& t) : dev(t), host(t.is_cuda() ? t.to(Device::cpu()) : t) {}
  void finish() {
    if (dev.is_cuda()) dev.copy_(host);
  }
};

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() : timeout_(dist_timeout()) {
    ensure_mpi();
    MPI_Comm_dup(MPI_COMM_WORLD, &comm_);
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &world_);
    MPI_Comm node;  // the processes sharing this machine's memory
    check(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node),
          "MPI_Comm_split_type");
    MPI_Comm_rank(node, &local_rank_);
    MPI_Comm_free(&node);
  }
  ~MpiCommunicator() override {
    if (!mpi_finalized() && !broken_) MPI_Comm_free(&comm_);
  }
  const char* backend() const override { return "mpi"; }
  int rank() const override { return rank_; }
  int world() const override { return world_; }
  int local_rank() const override { return local_rank_; }
  Device device() const override { return Device::cpu(); }

  void broadcast(Tensor& t, int root) override {
    usable("broadcast");
    MC_CHECK(root >= 0 && root < world_, who(), ": broadcast from rank ", root);
    MC_CHECK(t.numel() <= INT_MAX, who(), ": broadcast of ", t.str(), ": too many elements");
    HostView v(t);
    MPI_Request r;
    check(MPI_Ibcast(v.host.raw(), int(t.numel()), mpi_type(t.dtype(), who(), "broadcast"), root,
                     comm_, &r),
          "broadcast");
    wait({r}, detail::cat("broadcast of ", t.str(), " from rank ", root));
    v.finish();
  }

  void all_gather(const Tensor& in, Tensor& out) override {
    usable("all_gather");
    MC_CHECK(out.dtype() == in.dtype() && out.numel() == in.numel() * world_ &&
                 in.numel() <= INT_MAX / world_,
             who(), ": all_gather of ", in.str(), " into ", out.str());
    HostView src(in), dst(out);
    const MPI_Datatype dt = mpi_type(in.dtype(), who(), "all_gather");
    MPI_Request r;
    check(MPI_Iallgather(src.host.raw(), int(in.numel()), dt, dst.host.raw(), int(in.numel()), dt,
                         comm_, &r),
          "all_gather");
    wait({r}, detail::cat("all_gather of ", in.str()));
    dst.finish();
  }

  std::vector<std::vector<uint8_t>> all_gather_bytes(const void* data, size_t bytes) override {
    usable("all_gather_bytes");
    std::vector<int64_t> sizes(static_cast<size_t>(world_));
    const int64_t mine = int64_t(bytes);
    MPI_Request r;
    check(MPI_Iallgather(&mine, 1, MPI_INT64_T, sizes.data(), 1, MPI_INT64_T, comm_, &r),
          "all_gather_bytes (sizes)");
    wait({r}, "all_gather_bytes (sizes)");
    std::vector<int> counts(static_cast<size_t>(world_)), displs(static_cast<size_t>(world_));
    int64_t total = 0;
    for (int i = 0; i < world_; ++i) {
      displs[size_t(i)] = int(total);
      counts[size_t(i)] = int(sizes[size_t(i)]);
      total += sizes[size_t(i)];
      MC_CHECK(total <= INT_MAX, who(), ": all_gather_bytes: more than 2 GiB in all");
    }
    std::vector<uint8_t> all(size_t(std::max<int64_t>(total, 1)));
    check(MPI_Iallgatherv(data, int(bytes), MPI_BYTE, all.data(), counts.data(), displs.data(),
                          MPI_BYTE, comm_, &r),
          "all_gather_bytes");
    wait({r}, detail::cat("all_gather_bytes of ", bytes, " bytes"));
    std::vector<std::vector<uint8_t>> out(static_cast<size_t>(world_));
    for (size_t i = 0; i < out.size(); ++i)
      out[i].assign(all.begin() + displs[i], all.begin() + displs[i] + counts[i]);
    return out;
  }

  void barrier() override {
    usable("barrier");
    MPI_Request r;
    check(MPI_Ibarrier(comm_, &r), "barrier");
    wait({r}, "barrier");
  }

  void abort(const std::string& reason) noexcept override {
    std::fprintf(stderr, "%s: aborting the job: %s\n", who().c_str(), reason.c_str());
    std::fflush(stderr);
    if (!mpi_finalized()) MPI_Abort(comm_, 1);  // ends every process of the job
  }

 protected:
  void reduce_pieces(const std::vector<Tensor>& pieces) override {
    usable("all_reduce_sum");
    if (world_ == 1) return;
    // All pieces in flight at once (the progress engine pipelines them), then one deadline.
    std::vector<HostView> views;
    views.reserve(pieces.size());
    std::vector<MPI_Request> reqs(pieces.size());
    for (size_t i = 0; i < pieces.size(); ++i) {
      const Tensor& p = pieces[i];
      MC_CHECK(p.dtype() == DType::F32 || p.dtype() == DType::F64 || p.dtype() == DType::I64 ||
                   p.dtype() == DType::I32,
               who(), ": all_reduce_sum of ", p.str(), ": MPI sums f32, f64, i32 or i64");
      views.emplace_back(p);
      check(MPI_Iallreduce(MPI_IN_PLACE, views.back().host.raw(), int(p.numel()),
                           mpi_type(p.dtype(), who(), "all_reduce_sum"), MPI_SUM, comm_, &reqs[i]),
            "all_reduce_sum");
    }
    wait(reqs, detail::cat("all_reduce_sum of ", pieces.size(), " piece(s), first ",
                           pieces.front().str()));
    for (HostView& v : views) v.finish();
  }

 private:
  void check(int rc, const std::string& op) {
    if (rc == MPI_SUCCESS) return;
    char msg[MPI_MAX_ERROR_STRING] = {0};
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    MC_FAIL(who(), ": ", op, " failed: ", std::string(msg, size_t(len)));
  }
  void usable(const char* op) const {
    MC_CHECK(!broken_, who(), ": ", op, " on a communicator whose earlier collective timed out "
             "(call abort())");
  }
  // Polls until every request completes or the deadline passes: spin briefly (collectives of a
  // training step are short), then back off so a waiting rank does not burn a core.
  void wait(std::vector<MPI_Request> reqs, const std::string& op) {
    const auto start = Clock::now();
    for (int spins = 0;; ++spins) {
      int done = 0;
      check(MPI_Testall(int(reqs.size()), reqs.data(), &done, MPI_STATUSES_IGNORE), op);
      if (done) return;
      if (Clock::now() - start > timeout_) {
        broken_ = true;  // the requests stay pending: MPI cannot cancel a collective
        MC_FAIL(who(), ": ", op, " did not complete within ", seconds(timeout_),
                " s (MC_DIST_TIMEOUT_S): another rank died, hangs, or skipped this collective");
      }
      if (spins > 200)
        std::this_thread::sleep_for(std::chrono::microseconds(spins > 20000 ? 1000 : 20));
    }
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, world_ = 1, local_rank_ = 0;
  milliseconds timeout_;
  bool broken_ = false;
};

}  // namespace
#endif  // MC_HAVE_MPI

std::unique_ptr<Communicator> detail::make_mpi_communicator() {
#ifdef MC_HAVE_MPI
  return std::make_unique<MpiCommunicator>();
#else
  MC_FAIL("launched by an MPI launcher, but this build has no MPI (OpenMPI was not found when "
          "configuring)");
#endif
}


}  // namespace mc
