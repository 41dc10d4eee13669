// Communicator basics, the Local and MPI implementations, the TCP hand-over of NCCL's unique id
// and the bootstrap that picks one of them from the launcher's environment.
#include "engine/dist.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <utility>

#include "engine/prims.h"

#ifdef MC_HAVE_MPI
#include <mpi.h>
#endif

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

double seconds(milliseconds t) { return double(t.count()) / 1000.0; }

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

// ---------------- TCP hand-over (torchrun) ----------------

namespace {

class Socket {
 public:
  explicit Socket(int fd = -1) : fd_(fd) {}
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  Socket(Socket&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Socket& operator=(Socket&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  int fd() const { return fd_; }

 private:
  int fd_;
};

struct Deadline {
  Clock::time_point end;
  int left_ms() const {
    return int(std::max<int64_t>(
        0, std::chrono::duration_cast<milliseconds>(end - Clock::now()).count()));
  }
  bool passed() const { return Clock::now() >= end; }
};

std::string where(const std::string& addr, int port) { return detail::cat(addr, ":", port); }

// Waits for `events` on fd; false when the deadline passes first.
bool ready(int fd, short events, const Deadline& d) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int r = ::poll(&p, 1, d.left_ms());
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) return false;
  }
}

void send_all(int fd, const void* data, size_t n, const Deadline& d, const std::string& what) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n) {
    MC_CHECK(ready(fd, POLLOUT, d), what, ": timed out sending");
    const ssize_t k = ::send(fd, p, n, MSG_NOSIGNAL);
    MC_CHECK(k > 0 || errno == EINTR || errno == EAGAIN, what, ": send failed: ", std::strerror(errno));
    if (k > 0) p += k, n -= size_t(k);
  }
}

void recv_all(int fd, void* data, size_t n, const Deadline& d, const std::string& what) {
  auto* p = static_cast<uint8_t*>(data);
  while (n) {
    MC_CHECK(ready(fd, POLLIN, d), what, ": timed out receiving");
    const ssize_t k = ::recv(fd, p, n, 0);
    MC_CHECK(k != 0, what, ": the peer closed the connection");
    MC_CHECK(k > 0 || errno == EINTR || errno == EAGAIN, what, ": recv failed: ", std::strerror(errno));
    if (k > 0) p += k, n -= size_t(k);
  }
}

struct AddrList {
  addrinfo* head = nullptr;
  AddrList(const std::string& host, int port, bool passive) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &head);
    MC_CHECK(rc == 0, "cannot resolve ", where(host, port), ": ", gai_strerror(rc));
  }
  ~AddrList() {
    if (head) ::freeaddrinfo(head);
  }
};

constexpr uint32_t kHello = 0x4d434454;  // "MCDT"

}  // namespace

std::vector<uint8_t> detail::tcp_share(int rank, int world, const std::string& addr, int port,
                                       const std::vector<uint8_t>& payload, milliseconds timeout) {
  MC_CHECK(world >= 1 && rank >= 0 && rank < world, "tcp_share: rank ", rank, " of ", world);
  MC_CHECK(port > 0 && port < 65536, "tcp_share: port ", port, " out of range");
  const Deadline d{Clock::now() + timeout};
  const std::string at = where(addr, port);
  if (rank == 0) {
    // Listen on MASTER_ADDR itself (not every interface): the peers connect there anyway.
    AddrList ai(addr, port, true);
    Socket lis;
    std::string why = "no address";
    for (addrinfo* a = ai.head; a && lis.fd() < 0; a = a->ai_next) {
      Socket s(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol));
      const int one = 1;
      if (s.fd() >= 0 && ::setsockopt(s.fd(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
          ::bind(s.fd(), a->ai_addr, a->ai_addrlen) == 0 && ::listen(s.fd(), world) == 0)
        lis = std::move(s);
      else
        why = std::strerror(errno);
    }
    MC_CHECK(lis.fd() >= 0, "rank 0: cannot listen on ", at, " (MASTER_ADDR:MASTER_PORT): ", why);
    std::vector<bool> served(size_t(world), false);
    for (int left = world - 1; left > 0;) {
      MC_CHECK(ready(lis.fd(), POLLIN, d), "rank 0: ", left, " rank(s) did not connect to ", at,
               " within ", seconds(timeout), " s (MC_DIST_TIMEOUT_S)");
      Socket c(::accept4(lis.fd(), nullptr, nullptr, SOCK_CLOEXEC));
      if (c.fd() < 0) continue;
      uint32_t hello[3];  // magic, rank, world
      recv_all(c.fd(), hello, sizeof hello, d, "rank 0: bootstrap on " + at);
      MC_CHECK(hello[0] == kHello, "rank 0: a stranger connected to ", at);
      MC_CHECK(int(hello[2]) == world && hello[1] > 0 && int(hello[1]) < world &&
                   !served[hello[1]],
               "rank 0: rank ", hello[1], " of ", hello[2], " connected to ", at,
               ", expected a new rank of ", world);
      const uint64_t n = payload.size();
      send_all(c.fd(), &n, sizeof n, d, "rank 0: bootstrap on " + at);
      send_all(c.fd(), payload.data(), payload.size(), d, "rank 0: bootstrap on " + at);
      served[hello[1]] = true;
      --left;
    }
    return payload;
  }
  // Rank 0 may not listen yet: retry until the deadline.
  const std::string what = detail::cat("rank ", rank, ": bootstrap from ", at);
  for (;;) {
    std::string why = "no address";
    {
      AddrList ai(addr, port, false);
      for (addrinfo* a = ai.head; a; a = a->ai_next) {
        Socket s(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol));
        if (s.fd() < 0) continue;
        int err = ::connect(s.fd(), a->ai_addr, a->ai_addrlen) == 0 ? 0 : errno;
        if (err == EINPROGRESS && ready(s.fd(), POLLOUT, d)) {
          socklen_t len = sizeof err;
          ::getsockopt(s.fd(), SOL_SOCKET, SO_ERROR, &err, &len);
        }
        if (err != 0) {
          why = std::strerror(err);
          continue;
        }
        const uint32_t hello[3] = {kHello, uint32_t(rank), uint32_t(world)};
        send_all(s.fd(), hello, sizeof hello, d, what);
        uint64_t n = 0;
        recv_all(s.fd(), &n, sizeof n, d, what);
        MC_CHECK(n < (uint64_t(1) << 20), what, ": implausible payload of ", n, " bytes");
        std::vector<uint8_t> out(n);
        recv_all(s.fd(), out.data(), n, d, what);
        return out;
      }
    }
    MC_CHECK(!d.passed(), what, ": rank 0 did not answer within ", seconds(timeout),
             " s (MC_DIST_TIMEOUT_S); last error: ", why);
    std::this_thread::sleep_for(milliseconds(std::min(100, d.left_ms())));
  }
}

// ---------------- bootstrap ----------------

namespace {

// World size according to an MPI launcher, 0 when none launched us.
int launcher_world() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"})
    if (int n = env_int(v, 0)) return n;
  return 0;
}

#ifdef MC_HAVE_CUDA
std::unique_ptr<Communicator> nccl_over_mpi(std::unique_ptr<Communicator> mpi) {
  try {
    std::array<char, 128> id{};
    if (mpi->rank() == 0) id = detail::nccl_unique_id();
    Tensor t = Tensor::from_blob(id.data(), {int64_t(id.size())}, DType::U8, nullptr);
    mpi->broadcast(t, 0);
    const int rank = mpi->rank(), world = mpi->world(), local = mpi->local_rank();
    return detail::make_nccl_communicator(rank, world, local, id, std::move(mpi));
  } catch (const std::exception& e) {
    if (mpi) mpi->abort(e.what());  // the others wait in the broadcast or in NCCL's init
    throw;
  }
}
#endif

}  // namespace

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
#ifdef MC_HAVE_CUDA
    return nccl_over_mpi(std::move(mpi));
#else
    mpi->abort("a CUDA device was asked for, but this build has no CUDA");
    MC_FAIL("a CUDA device was asked for, but this build has no CUDA");
#endif
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
#ifdef MC_HAVE_CUDA
    std::array<char, 128> id{};
    if (rank == 0) id = detail::nccl_unique_id();
    const std::vector<uint8_t> got = detail::tcp_share(
        rank, torch_world, addr, port, std::vector<uint8_t>(id.begin(), id.end()), dist_timeout());
    MC_CHECK(got.size() == id.size(), "rank ", rank, ": NCCL id of ", got.size(), " bytes");
    std::copy(got.begin(), got.end(), id.begin());
    return detail::make_nccl_communicator(rank, torch_world, local, id, nullptr);
#else
    MC_FAIL("a torchrun-style launch needs CUDA, and this build has none");
#endif
  }
  return local_communicator(dev);
}

}  // namespace mc
