// Dataset cache: the preprocessed cubes of one split in one memory-mappable file, written once
// by mc_prep and read every epoch without decoding anything.
//
// Format (version 1). The file IS a safetensors file (opens with safetensors.numpy.load_file):
//   u64 little-endian header length n; n bytes of JSON, padded with spaces so the data buffer
//   starts at a multiple of 64 bytes (aligned zero-copy views); then the buffer:
//     "volumes" F16 or F32 [N, C, D, H, W]  at buffer offset 0
//     "labels"  I64 [N]                     class index, -1 = unknown
//     "tscores" F64 [N]                     T-score, NaN when unknown
//   "__metadata__" (string -> string):
//     "medconv.format" = "medconv-cache", "medconv.version" = "1",
//     "medconv.ids"    = JSON array of the N subject ids, e.g. ["s001","s002"],
//     and every entry of the caller's meta map as given (keys starting "medconv." are reserved).
// Volumes are stored as f16 by default: on [0, 1] rounding to f16 errs by at most 2^-12 = 2.4e-4
// (about 0.5 HU with a 2000 HU window), far below CT noise (~10 HU), and a 128^3 cube takes
// 4 MiB instead of 8. CacheWriteOptions::dtype = F32 stores full precision.
// Written through io/safetensors' streaming writer, atomically (io/atomic_file.h): on any error
// the target is untouched. Reading goes through io/safetensors, which checks every rule of that
// format, then checks the cache's own (names, dtypes, shapes, ids).
#pragma once
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace mc::io {

struct CacheRecord {
  std::string id;
  int64_t label = -1;  // -1 = unknown
  double tscore = std::numeric_limits<double>::quiet_NaN();  // NaN = unknown
};

struct CacheWriteOptions {
  DType dtype = DType::F16;  // F16 or F32
};

// volumes: one f32 CPU tensor [C, D, H, W] per record, all the same shape, values in [0, 1].
void write_cache(const std::string& path, const std::vector<CacheRecord>& records,
                 const std::vector<Tensor>& volumes, const std::map<std::string, std::string>& meta,
                 const CacheWriteOptions& opts = {});

// A read-only memory-mapped cache. Copies share the mapping; views returned by volume() keep
// it alive after the Cache is gone. Any malformed or truncated file is an mc::Error that names it.
class Cache {
 public:
  static Cache open(const std::string& path);

  const std::string& path() const;
  int64_t size() const;
  Shape volume_shape() const;  // [C, D, H, W]
  int64_t volume_numel() const;
  DType stored_dtype() const;  // F16 or F32
  const CacheRecord& record(int64_t i) const;
  const std::vector<CacheRecord>& records() const;
  std::vector<int64_t> labels() const;
  // Zero-copy [C, D, H, W] view of the mapped file, in the stored dtype.
  Tensor volume(int64_t i) const;
  // [C, D, H, W] f32: the view itself when stored as f32, else a converted copy.
  Tensor volume_f32(int64_t i) const;
  // Converts volume i into dst (volume_numel() floats): the loader's path into its buffers.
  void read_f32(int64_t i, float* dst) const;
  // Samples per class 0..C-1 (unknown labels not counted; a label >= C is an error).
  std::vector<int64_t> class_counts(int num_classes) const;
  const std::map<std::string, std::string>& meta() const;  // the caller's meta, as written

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

}  // namespace mc::io
