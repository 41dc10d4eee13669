// Every file MedConv writes is replaced atomically, with one durability policy:
//   1. the bytes go to a temporary file beside the target ("<target>.tmp.<pid>.<n>": rename is
//      atomic only within one file system),
//   2. fsync of the temporary, close, rename over the target,
//   3. fsync of the folder, so the rename itself survives a power cut (best effort: some file
//      systems refuse it, and atomicity does not depend on it).
// A reader sees the old file or the new one, never half of either; on any error the temporary
// is removed and the target is left as it was. A symlink is followed (the file it names is
// replaced, the link stays); a target that exists and is not a regular file (a device such as
// /dev/null or /dev/stdout, a FIFO) is written in place, never replaced; a directory, or a FIFO
// with no reader, is an error.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mc::io {

// Streaming form, for files too big to hold in memory (caches, checkpoints).
class AtomicFile {
 public:
  explicit AtomicFile(std::string target);  // creates the temporary; throws mc::Error naming target
  ~AtomicFile();                            // removes the temporary unless committed
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t bytes);
  void write(std::string_view text) { write(text.data(), text.size()); }
  // Overwrites bytes already written (a checksum patched into a header once the data is out).
  void write_at(uint64_t offset, const void* data, size_t bytes);
  void commit();  // fsync, rename over the target, fsync the folder
  const std::string& target() const { return target_; }

 private:
  [[noreturn]] void fail(const char* what) const;
  std::string target_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
  bool in_place_ = false;  // the target is a device, FIFO or socket: written directly
};

// The whole file at once.
void write_atomic(const std::string& path, std::string_view content);

// Removes the temporaries ("<name>.tmp.<pid>.<n>") that a killed process left in dir: those of
// processes no longer running. Returns what was removed (each with its size), for the caller
// to say so. A live process's temporaries are left alone.
std::vector<std::string> remove_stale_temporaries(const std::string& dir);

}  // namespace mc::io
