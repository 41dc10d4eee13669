// safetensors (https://github.com/huggingface/safetensors): the weight format MedConv reads and
// writes, so checkpoints move to and from PyTorch / timm_3d / MONAI without conversion code.
//
// File: u64 little-endian header length N; N bytes of JSON (an object, padded with spaces);
// then the data buffer. Each JSON entry is
//   "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}
// with offsets relative to the buffer, plus an optional "__metadata__" (string -> string).
//
// The reader trusts nothing in the file: every rule of the format (header size, JSON syntax,
// entry types, dtypes, sizes, contiguous offsets from 0, full coverage, unique names) is checked
// before any tensor is touched, and each violation is an mc::Error naming the file, the tensor
// and what was expected. Dtypes map to mc::DType as F32 F64 BF16 F16 I64 I32 U8 -> same, BOOL -> U8;
// the other valid ones (I8 I16 U16 U32 U64 F8_*) open fine but reading such a tensor fails.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/state_dict.h"

namespace mc::io {

using SafeTensorsMetadata = std::map<std::string, std::string>;

// Integrity: every file MedConv writes carries in its __metadata__ the XXH3-64 of its data
// buffer as 16 lower-case hex digits under this key (other readers ignore it). open() verifies
// it when present; a mismatch is an error naming the file. Files without it (PyTorch's) load.
inline constexpr const char* kChecksumKey = "mc.data_xxh3_64";

// One header entry, as validated.
struct SafeTensorInfo {
  std::string name;
  std::string dtype;  // as written in the file: "F32", "BOOL", "U16", ...
  Shape shape;
  uint64_t begin = 0, end = 0;  // byte range within the data buffer
};

// The safetensors dtype string of an mc::DType ("F32", "BF16", ...).
const char* safetensors_dtype(DType t);

// A validated, memory-mapped safetensors file. Copies share the mapping; tensors returned by
// view() keep it alive after every SafeTensorsFile is gone.
class SafeTensorsFile {
 public:
  // Throws mc::Error on any malformation or a checksum mismatch (verify_checksum: false skips
  // the data hash, for the fuzzer, which would otherwise only ever reach the mismatch).
  static SafeTensorsFile open(const std::string& path, bool verify_checksum = true);

  const std::string& path() const;
  std::vector<std::string> names() const;  // sorted by name
  bool contains(const std::string& name) const;
  const SafeTensorInfo& info(const std::string& name) const;  // throws if absent
  const SafeTensorsMetadata& metadata() const;  // without kChecksumKey
  bool has_checksum() const;  // the file recorded one (verified unless open() was told not to)
  size_t size() const;  // number of tensors

  // Zero-copy CPU tensor over the mapping. The mapping is private copy-on-write: writing into a
  // view never reaches the file and never faults. Data that is not aligned for its dtype (old
  // writers sorted by name only) comes back as an owned copy instead, so views are always safe
  // to read through typed pointers.
  Tensor view(const std::string& name) const;
  Tensor copy(const std::string& name) const;  // owned CPU tensor
  StateDict views() const;   // every tensor, sorted by name
  StateDict copies() const;  // every tensor, sorted by name

 private:
  SafeTensorsFile() = default;
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

// Every tensor of the file, copied into owned CPU tensors (sorted by name).
StateDict load_safetensors(const std::string& path);

// ---- writing ----
struct SafeTensorsWriteOptions {
  // The data buffer starts at a multiple of this many bytes from the start of the file (the
  // header is padded with spaces). 8 is the reference writer's; the dataset cache uses 64.
  size_t alignment = 8;
  // Record kChecksumKey in the metadata (off only to compare bytes with the reference writer).
  bool checksum = true;
};

// Writes tensors (any device; CUDA ones are copied to the CPU one at a time) and metadata.
// Layout matches the reference writer (safetensors' serialize): data ordered by descending dtype
// alignment then by name, so every tensor is aligned for zero-copy reads; compact JSON padded
// with spaces. The write is atomic (io/atomic_file.h); on any error the target is left as it was.
void save_safetensors(const std::string& path, const StateDict& tensors,
                      const SafeTensorsMetadata& metadata = {}, const SafeTensorsWriteOptions& options = {});

// The streaming form behind save_safetensors, for data produced piece by piece (the dataset
// cache converts one volume at a time instead of building one [N, C, D, H, W] tensor): the
// entries are declared first, in data order, then their bytes are written in that order.
class SafeTensorsWriter {
 public:
  struct Entry {
    std::string name;
    DType dtype;
    Shape shape;
  };
  // Checks the names (unique, UTF-8, not "__metadata__") and writes the header.
  SafeTensorsWriter(const std::string& path, std::vector<Entry> entries, const SafeTensorsMetadata& metadata = {},
                    const SafeTensorsWriteOptions& options = {});
  ~SafeTensorsWriter();  // without commit(), the target is left as it was
  void write(const void* data, size_t bytes);
  // Every declared byte must have been written; then the file replaces the target.
  void commit();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mc::io
