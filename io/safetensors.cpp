// The safetensors reader: a checked, memory-mapped file (the header is parsed and validated by
// io/safetensors_header.cpp; writing is io/safetensors_write.cpp).
#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <unordered_map>

#include "engine/check.h"
#include "io/safetensors_format.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace mc::io {
namespace {
using namespace safetensors_format;

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian and is copied as it is");

struct Fd {
  int fd = -1;
  ~Fd() { if (fd >= 0) ::close(fd); }
};

}  // namespace

std::string xxh3_hex(const void* data, size_t bytes) {
  const XXH64_hash_t h = XXH3_64bits(data, bytes);
  static const char* digits = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 0; i < 16; ++i) s[size_t(i)] = digits[(h >> (60 - 4 * i)) & 15];
  return s;
}

const char* safetensors_dtype(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
    case DType::U8: return "U8";
  }
  MC_FAIL("safetensors_dtype: bad dtype ", int(t));
}

// ---------------------------------------------------------------- reading
struct SafeTensorsFile::Impl {
  std::string path;
  void* base = MAP_FAILED;
  size_t size = 0;
  uint8_t* data = nullptr;  // the data buffer, inside the mapping
  std::vector<SafeTensorInfo> tensors;  // sorted by name
  std::unordered_map<std::string, size_t> index;
  SafeTensorsMetadata metadata;
  bool has_checksum = false;
  ~Impl() { if (base != MAP_FAILED) ::munmap(base, size); }

  DType readable(const SafeTensorInfo& e) const {
    const Dtype* d = find_dtype(e.dtype);
    MC_CHECK(d->readable, "safetensors '", path, "': unsupported dtype ", e.dtype, " for tensor '",
             e.name, "' (MedConv reads F32, F64, BF16, F16, I64, I32, U8, and BOOL as U8)");
    return d->dt;
  }
};

SafeTensorsFile SafeTensorsFile::open(const std::string& path, bool verify_checksum) {
  auto impl = std::make_shared<Impl>();
  impl->path = path;
  auto fail = [&](const auto&... why) { MC_FAIL("safetensors '", path, "': ", why...); };
  Fd f;
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f.fd < 0) fail("cannot open: ", std::strerror(errno));
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) fail("cannot stat: ", std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail("not a regular file");
  const uint64_t size = uint64_t(st.st_size);
  if (size < 8) fail("file is ", size, " bytes, shorter than the 8-byte header length");
  // Private and writable: the file is never modified, and writes into views land in
  // copy-on-write pages instead of faulting.
  impl->size = size_t(size);
  impl->base = ::mmap(nullptr, impl->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, f.fd, 0);
  if (impl->base == MAP_FAILED) fail("mmap failed: ", std::strerror(errno));
  auto* bytes = static_cast<uint8_t*>(impl->base);

  uint64_t n;
  std::memcpy(&n, bytes, 8);
  if (n > kMaxHeader) fail("header length ", n, " exceeds the 100 MB limit (", kMaxHeader, " bytes)");
  if (n > size - 8)
    fail("header length ", n, " runs past the end of the file (", size - 8,
         " bytes follow the length)");
  std::vector<SafeTensorInfo> entries;
  parse_header({reinterpret_cast<const char*>(bytes) + 8, size_t(n)}, path, entries, impl->metadata);
  validate(path, entries, size - 8 - n);

  impl->data = bytes + 8 + n;
  std::string recorded;
  // The checksum is the format's, not the caller's: metadata() comes back without it.
  if (auto it = impl->metadata.find(kChecksumKey); it != impl->metadata.end()) {
    recorded = it->second;
    impl->metadata.erase(it);
    impl->has_checksum = true;
  }
  if (impl->has_checksum && verify_checksum) {
    const std::string want = recorded;
    if (want.size() != 16 || want.find_first_not_of("0123456789abcdef") != std::string::npos)
      fail("metadata '", kChecksumKey, "' is '", want, "', not 16 hex digits");
    const std::string got = xxh3_hex(impl->data, size - 8 - n);
    if (got != want)
      fail("checksum mismatch: the data hashes to ", got, " but the file records ", want,
           " (", kChecksumKey, "): the file is corrupt");
  }
  std::sort(entries.begin(), entries.end(), [](auto& a, auto& b) { return a.name < b.name; });
  impl->tensors = std::move(entries);
  for (size_t i = 0; i < impl->tensors.size(); ++i) impl->index.emplace(impl->tensors[i].name, i);
  SafeTensorsFile file;
  file.impl_ = std::move(impl);
  return file;
}

const std::string& SafeTensorsFile::path() const { return impl_->path; }
const SafeTensorsMetadata& SafeTensorsFile::metadata() const { return impl_->metadata; }
bool SafeTensorsFile::has_checksum() const { return impl_->has_checksum; }
size_t SafeTensorsFile::size() const { return impl_->tensors.size(); }
bool SafeTensorsFile::contains(const std::string& name) const { return impl_->index.count(name); }

std::vector<std::string> SafeTensorsFile::names() const {
  std::vector<std::string> out;
  for (const auto& e : impl_->tensors) out.push_back(e.name);
  return out;
}

const SafeTensorInfo& SafeTensorsFile::info(const std::string& name) const {
  auto it = impl_->index.find(name);
  MC_CHECK(it != impl_->index.end(), "safetensors '", impl_->path, "': no tensor named '", name,
           "' (the file holds ", impl_->tensors.size(), " tensors)");
  return impl_->tensors[it->second];
}

Tensor SafeTensorsFile::view(const std::string& name) const {
  const SafeTensorInfo& e = info(name);
  const DType dt = impl_->readable(e);
  uint8_t* p = impl_->data + e.begin;
  if (reinterpret_cast<uintptr_t>(p) % dtype_size(dt) != 0) return copy(name);
  return Tensor::from_blob(p, e.shape, dt, std::shared_ptr<void>(impl_, p));
}

Tensor SafeTensorsFile::copy(const std::string& name) const {
  const SafeTensorInfo& e = info(name);
  Tensor t = Tensor::empty(e.shape, impl_->readable(e));
  if (t.nbytes()) std::memcpy(t.raw(), impl_->data + e.begin, t.nbytes());
  return t;
}

StateDict SafeTensorsFile::views() const {
  StateDict out;
  for (const auto& e : impl_->tensors) out.emplace_back(e.name, view(e.name));
  return out;
}

StateDict SafeTensorsFile::copies() const {
  StateDict out;
  for (const auto& e : impl_->tensors) out.emplace_back(e.name, copy(e.name));
  return out;
}

StateDict load_safetensors(const std::string& path) { return SafeTensorsFile::open(path).copies(); }

}  // namespace mc::io
