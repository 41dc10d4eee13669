#include "io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "engine/check.h"

namespace mc {

AtomicFile::AtomicFile(std::string target) : target_(std::move(target)) {
  static std::atomic<uint64_t> counter{0};
  for (int attempt = 0; fd_ < 0; ++attempt) {
    tmp_ = target_ + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ < 0 && (errno != EEXIST || attempt > 100))
      MC_FAIL("cannot write '", target_, "': cannot create ", tmp_, ": ", std::strerror(errno));
  }
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
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

}  // namespace mc
