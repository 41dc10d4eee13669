#include "io/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "engine/check.h"

namespace mc::io {

namespace {

// A symlink is followed, not replaced: the file it names is the one written (up to 40 links,
// as the kernel allows). A dangling link names where the new file goes.
std::string follow_links(const std::string& path) {
  std::filesystem::path p = path;
  for (int hop = 0; hop < 40; ++hop) {
    std::error_code ec;
    if (!std::filesystem::is_symlink(std::filesystem::symlink_status(p, ec))) return p.string();
    const std::filesystem::path to = std::filesystem::read_symlink(p, ec);
    if (ec) return p.string();
    p = to.is_absolute() ? to : p.parent_path() / to;
  }
  MC_FAIL("cannot write '", path, "': too many levels of symbolic links");
}

}  // namespace

AtomicFile::AtomicFile(std::string target) : target_(std::move(target)) {
  static std::atomic<uint64_t> counter{0};
  const std::string real = follow_links(target_);
  struct stat st {};
  if (::stat(real.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    // A device, FIFO or socket is written in place, never replaced (as root, renaming over
    // /dev/null would replace the system's). O_NONBLOCK: a FIFO without a reader is refused
    // instead of blocking forever; then the writes block as usual.
    if (S_ISDIR(st.st_mode)) MC_FAIL("cannot write '", target_, "': it is a directory");
    fd_ = ::open(real.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd_ < 0)
      MC_FAIL("cannot write '", target_, "': not a regular file, and it cannot be opened for writing: ",
              std::strerror(errno));
    const int flags = ::fcntl(fd_, F_GETFL);
    if (flags >= 0) (void)::fcntl(fd_, F_SETFL, flags & ~O_NONBLOCK);
    in_place_ = true;
    return;
  }
  target_ = real;
  for (int attempt = 0; fd_ < 0; ++attempt) {
    tmp_ = target_ + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ < 0 && (errno != EEXIST || attempt > 100))
      MC_FAIL("cannot write '", target_, "': cannot create ", tmp_, ": ", std::strerror(errno));
  }
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !in_place_) ::unlink(tmp_.c_str());
}

void AtomicFile::fail(const char* what) const {
  MC_FAIL("cannot write '", target_, "': ", what, " failed: ", std::strerror(errno));
}

void AtomicFile::write(const void* data, size_t bytes) {
  MC_CHECK(fd_ >= 0, "cannot write '", target_, "': already committed");
  auto* p = static_cast<const char*>(data);
  while (bytes) {
    const ssize_t w = ::write(fd_, p, std::min<size_t>(bytes, size_t(1) << 30));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) fail("write");
    p += w, bytes -= size_t(w);
  }
}

void AtomicFile::write_at(uint64_t offset, const void* data, size_t bytes) {
  MC_CHECK(fd_ >= 0, "cannot write '", target_, "': already committed");
  MC_CHECK(!in_place_, "cannot write '", target_, "': this file is patched after writing (a checksum) "
           "and the target is not a regular file");
  auto* p = static_cast<const char*>(data);
  while (bytes) {
    const ssize_t w = ::pwrite(fd_, p, bytes, off_t(offset));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) fail("pwrite");
    p += w, bytes -= size_t(w), offset += uint64_t(w);
  }
}

void AtomicFile::commit() {
  MC_CHECK(fd_ >= 0, "cannot write '", target_, "': already committed");
  if (in_place_) {  // no rename; fsync means nothing on a device or pipe, close still reports
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail("close");
    committed_ = true;
    return;
  }
  if (::fsync(fd_) != 0) fail("fsync");
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail("close");
  if (::rename(tmp_.c_str(), target_.c_str()) != 0) fail("rename");
  committed_ = true;
  const std::string dir = std::filesystem::path(target_).parent_path().string();
  const int d = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d >= 0) {
    (void)::fsync(d);
    ::close(d);
  }
}

void write_atomic(const std::string& path, std::string_view content) {
  AtomicFile f(path);
  f.write(content);
  f.commit();
}

std::vector<std::string> remove_stale_temporaries(const std::string& dir) {
  namespace fs = std::filesystem;
  std::vector<std::string> removed;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    const size_t at = name.rfind(".tmp.");
    if (at == std::string::npos || !e.is_regular_file(ec)) continue;
    const std::string tail = name.substr(at + 5);  // "<pid>.<n>"
    const size_t dot = tail.find('.');
    if (dot == std::string::npos || dot == 0 || dot + 1 == tail.size() ||
        tail.find_first_not_of("0123456789.") != std::string::npos || tail.find('.', dot + 1) != std::string::npos)
      continue;
    const long pid = std::stol(tail.substr(0, dot));
    if (pid <= 0 || pid == long(::getpid())) continue;
    if (::kill(pid_t(pid), 0) == 0 || errno != ESRCH) continue;  // alive (or not ours to ask)
    const auto bytes = fs::file_size(e.path(), ec);
    if (fs::remove(e.path(), ec))
      removed.push_back(e.path().string() + " (" + std::to_string(ec ? 0 : bytes) + " bytes, from process " +
                        std::to_string(pid) + ")");
  }
  return removed;
}

}  // namespace mc::io
