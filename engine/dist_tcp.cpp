// The TCP hand-over of NCCL's unique id for torchrun-style launches (engine/dist.h): plain POSIX
// sockets with deadlines.
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>
#include <utility>

#include "engine/dist.h"

namespace mc {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using detail::seconds;

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

}  // namespace mc
