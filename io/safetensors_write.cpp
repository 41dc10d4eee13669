// The safetensors writer: the header as nlohmann JSON (ordered, compact, as the reference
// writer prints it), the data streamed into an atomic file.
#include <algorithm>
#include <nlohmann/json.hpp>
#include <numeric>
#include <unordered_set>

#include "engine/check.h"
#include "io/atomic_file.h"
#include "io/safetensors_format.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace mc::io {
namespace {

size_t write_rank(DType t) {
  const std::string_view n = safetensors_dtype(t);
  for (size_t i = 0; i < std::size(safetensors_format::kDtypes); ++i)
    if (n == safetensors_format::kDtypes[i].name) return i;
  return 0;
}

// nlohmann refuses to print bytes that are not UTF-8: that is the check.
bool valid_utf8(const std::string& s) {
  try {
    (void)nlohmann::json(s).dump();
    return true;
  } catch (const nlohmann::json::type_error&) {
    return false;
  }
}

}  // namespace

struct SafeTensorsWriter::Impl {
  std::string path;
  AtomicFile file;
  uint64_t expected = 0, written = 0;
  uint64_t checksum_at = 0;  // file offset of the checksum's 16 placeholder digits
  XXH3_state_t hash{};
  explicit Impl(const std::string& p) : path(p), file(p) { XXH3_64bits_reset(&hash); }
};

SafeTensorsWriter::SafeTensorsWriter(const std::string& path, std::vector<Entry> entries,
                                     const SafeTensorsMetadata& metadata, const SafeTensorsWriteOptions& o) {
  auto fail = [&](const auto&... why) { MC_FAIL("save_safetensors '", path, "': ", why...); };
  MC_CHECK(o.alignment >= 1, "save_safetensors '", path, "': alignment must be at least 1");
  std::unordered_set<std::string_view> names;
  for (const Entry& e : entries) {
    if (!names.insert(e.name).second) fail("duplicate tensor name '", e.name, "'");
    if (e.name == "__metadata__") fail("'__metadata__' is reserved and cannot name a tensor");
    if (!valid_utf8(e.name)) fail("tensor name '", e.name, "' is not valid UTF-8");
  }
  for (const auto& [k, v] : metadata)
    if (!valid_utf8(k) || !valid_utf8(v)) fail("metadata '", k, "' is not valid UTF-8");

  // The checksum is not known until the data is out: a placeholder, patched in commit().
  const std::string placeholder(16, '0');
  SafeTensorsMetadata meta = metadata;
  meta.erase(kChecksumKey);
  if (o.checksum) meta[kChecksumKey] = placeholder;
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!meta.empty()) h["__metadata__"] = meta;
  uint64_t offset = 0;
  for (const Entry& e : entries) {
    const uint64_t bytes = uint64_t(numel_of(e.shape)) * dtype_size(e.dtype);
    h[e.name] = {{"dtype", safetensors_dtype(e.dtype)}, {"shape", e.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = h.dump();
  text.append((o.alignment - (8 + text.size()) % o.alignment) % o.alignment, ' ');
  if (text.size() > safetensors_format::kMaxHeader) fail("header of ", text.size(), " bytes exceeds the 100 MB limit");

  impl_ = std::make_unique<Impl>(path);
  impl_->expected = offset;
  const std::string quoted = std::string("\"") + kChecksumKey + "\":\"" + placeholder + "\"";
  if (o.checksum) {
    const size_t at = text.find(quoted);
    MC_CHECK(at != std::string::npos, "save_safetensors '", path, "': no checksum placeholder in the header");
    impl_->checksum_at = 8 + at + quoted.size() - 17;
  }
  const uint64_t n = text.size();
  impl_->file.write(&n, 8);
  impl_->file.write(text);
}

SafeTensorsWriter::~SafeTensorsWriter() = default;

void SafeTensorsWriter::write(const void* data, size_t bytes) {
  MC_CHECK(impl_->written + bytes <= impl_->expected, "save_safetensors '", impl_->path, "': ",
           impl_->written + bytes, " data bytes written, the header declares ", impl_->expected);
  impl_->file.write(data, bytes);
  XXH3_64bits_update(&impl_->hash, data, bytes);
  impl_->written += bytes;
}

void SafeTensorsWriter::commit() {
  MC_CHECK(impl_->written == impl_->expected, "save_safetensors '", impl_->path, "': ", impl_->written,
           " data bytes written, the header declares ", impl_->expected);
  if (impl_->checksum_at) {
    const XXH64_hash_t d = XXH3_64bits_digest(&impl_->hash);
    char hex[16];
    for (int i = 0; i < 16; ++i) hex[i] = "0123456789abcdef"[(d >> (60 - 4 * i)) & 15];
    impl_->file.write_at(impl_->checksum_at, hex, 16);
  }
  impl_->file.commit();
}

void save_safetensors(const std::string& path, const StateDict& tensors, const SafeTensorsMetadata& metadata,
                      const SafeTensorsWriteOptions& options) {
  for (const auto& [name, t] : tensors) {
    MC_CHECK(t.defined(), "save_safetensors '", path, "': tensor '", name, "' is undefined");
    // The file is row-major in the shape's axis order; a channels-last buffer is not.
    MC_CHECK(!(t.dim() == 5 && t.layout() == Layout::NDHWC), "save_safetensors '", path, "': tensor '", name,
             "' is channels-last (NDHWC); convert it to NCDHW first");
  }
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const size_t ra = write_rank(tensors[a].second.dtype()), rb = write_rank(tensors[b].second.dtype());
    return ra != rb ? ra > rb : tensors[a].first < tensors[b].first;
  });
  std::vector<SafeTensorsWriter::Entry> entries;
  for (size_t i : order) entries.push_back({tensors[i].first, tensors[i].second.dtype(), tensors[i].second.shape()});
  SafeTensorsWriter w(path, std::move(entries), metadata, options);
  for (size_t i : order) {
    const Tensor c = tensors[i].second.to(Device::cpu());  // one tensor at a time off the GPU
    if (c.nbytes()) w.write(c.raw(), c.nbytes());
  }
  w.commit();
}

}  // namespace mc::io
