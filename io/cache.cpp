// Dataset cache writer and memory-mapped reader (format in cache.h). The file is a safetensors
// file: io/safetensors reads and validates it, and its streaming writer takes the volumes
// (converted to f16 one at a time) instead of one [N, C, D, H, W] tensor built in memory first.
#include "io/cache.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"

namespace mc::io {

static_assert(std::endian::native == std::endian::little, "the cache format is little-endian");

namespace {

constexpr const char* kFormat = "medconv-cache";
constexpr const char* kVersion = "1";
constexpr const char* kReserved = "medconv.";
constexpr size_t kAlign = 64;

// medconv.ids: a JSON array of strings, the only JSON the cache reads itself (the header is
// read by io/safetensors).
std::vector<std::string> parse_ids(const std::string& text, const std::string& path) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  MC_CHECK(!j.is_discarded(), "cache ", path, ": medconv.ids is not valid JSON");
  MC_CHECK(j.is_array(), "cache ", path, ": medconv.ids must be a JSON array of subject ids, got ", j.type_name());
  std::vector<std::string> ids;
  for (const auto& v : j) {
    MC_CHECK(v.is_string(), "cache ", path, ": medconv.ids entry ", ids.size(), " is a ", v.type_name(),
             ", not a string");
    ids.push_back(v.get<std::string>());
  }
  return ids;
}

// ---------------------------------------------------------------- f16 conversion
const float* f16_table() {  // 256 KiB: one load per voxel instead of bit twiddling
  static const std::vector<float> table = [] {
    std::vector<float> t(65536);
    for (uint32_t h = 0; h < 65536; ++h) t[h] = f16_to_float(uint16_t(h));
    return t;
  }();
  return table.data();
}

}  // namespace

void write_cache(const std::string& path, const std::vector<CacheRecord>& records,
                 const std::vector<Tensor>& volumes, const std::map<std::string, std::string>& meta,
                 const CacheWriteOptions& opts) {
  const int64_t N = int64_t(records.size());
  MC_CHECK(N > 0, "cache ", path, ": no records to write");
  MC_CHECK(volumes.size() == records.size(), "cache ", path, ": ", records.size(), " records but ",
           volumes.size(), " volumes");
  MC_CHECK(opts.dtype == DType::F16 || opts.dtype == DType::F32, "cache ", path,
           ": volumes are stored as f16 or f32, not ", dtype_name(opts.dtype));
  const Shape vshape = volumes[0].shape();
  for (int64_t i = 0; i < N; ++i) {
    const Tensor& v = volumes[size_t(i)];
    MC_CHECK(v.defined() && v.dtype() == DType::F32 && v.device().is_cpu() && v.dim() == 4,
             "cache ", path, ": volume ", i, " must be an f32 CPU tensor [C, D, H, W], got ",
             v.defined() ? v.str() : std::string("undefined"));
    MC_CHECK(v.shape() == vshape, "cache ", path, ": volume ", i, " has shape ",
             shape_str(v.shape()), ", volume 0 has ", shape_str(vshape));
    MC_CHECK(records[size_t(i)].label >= -1, "cache ", path, ": record ", i, " has label ",
             records[size_t(i)].label, " (-1 is unknown)");
  }
  for (const auto& kv : meta)
    MC_CHECK(!kv.first.starts_with(kReserved), "cache ", path, ": meta key '", kv.first,
             "' uses the reserved prefix '", kReserved, "'");

  const int64_t vnumel = numel_of(vshape);
  const uint64_t lbytes = uint64_t(N) * 8;
  Shape full{N};
  full.insert(full.end(), vshape.begin(), vshape.end());

  SafeTensorsMetadata md = meta;
  md["medconv.format"] = kFormat;
  md["medconv.version"] = kVersion;
  nlohmann::json ids = nlohmann::json::array();
  for (const auto& r : records) ids.push_back(r.id);
  try {
    md["medconv.ids"] = ids.dump();
  } catch (const nlohmann::json::type_error& e) {  // bytes that are not UTF-8
    MC_FAIL("cache ", path, ": a subject id is not valid UTF-8 (", e.what(), ")");
  }
  SafeTensorsWriter out(path,
                        {{"volumes", opts.dtype, full}, {"labels", DType::I64, {N}}, {"tscores", DType::F64, {N}}},
                        md, {kAlign});
  std::vector<uint16_t> half(opts.dtype == DType::F16 ? size_t(vnumel) : 0);
  for (int64_t i = 0; i < N; ++i) {
    const float* src = volumes[size_t(i)].data<float>();
    if (opts.dtype == DType::F32) {
      out.write(src, size_t(vnumel) * 4);
      continue;
    }
    for (int64_t j = 0; j < vnumel; ++j) {
      MC_CHECK(std::isfinite(src[j]) && std::abs(src[j]) <= 65504.f, "cache ", path, ": volume ",
               i, " (", records[size_t(i)].id, ") value ", src[j], " at ", j,
               " does not fit f16 (store f32)");
      half[size_t(j)] = float_to_f16(src[j]);
    }
    out.write(half.data(), half.size() * 2);
  }
  std::vector<int64_t> labels(static_cast<size_t>(N));
  std::vector<double> tscores(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) {
    labels[size_t(i)] = records[size_t(i)].label;
    tscores[size_t(i)] = records[size_t(i)].tscore;
  }
  out.write(labels.data(), lbytes);
  out.write(tscores.data(), lbytes);
  out.commit();
}

// ---------------------------------------------------------------- reading
struct Cache::Impl {
  std::string path;
  Tensor volumes;  // [N, C, D, H, W] view of the mapping (io/safetensors keeps it alive)
  DType dtype = DType::F16;
  Shape vshape;  // [C, D, H, W]
  int64_t vnumel = 0;
  std::vector<CacheRecord> records;
  std::map<std::string, std::string> meta;
};

Cache Cache::open(const std::string& path) {
  auto impl = std::make_shared<Impl>();
  impl->path = path;
  auto fail_if = [&](bool bad, const std::string& why) { MC_CHECK(!bad, "cache ", path, ": ", why); };

  // Every safetensors rule (header size, JSON, dtypes, sizes, offsets tiling the buffer) is
  // checked here, each failure an mc::Error naming the file.
  const SafeTensorsFile file = SafeTensorsFile::open(path);
  const auto& md = file.metadata();
  auto meta_of = [&](const char* key) {
    const auto it = md.find(key);
    return it == md.end() ? std::string() : it->second;
  };
  fail_if(meta_of("medconv.format") != kFormat, "not a MedConv cache (no medconv.format metadata)");
  fail_if(meta_of("medconv.version") != kVersion,
          "unsupported cache version '" + meta_of("medconv.version") + "'");
  for (const char* name : {"volumes", "labels", "tscores"})
    fail_if(!file.contains(name), std::string("no tensor '") + name + "'");

  const SafeTensorInfo& ve = file.info("volumes");
  fail_if(ve.dtype != "F16" && ve.dtype != "F32", "volumes are " + ve.dtype + ", expected F16 or F32");
  fail_if(ve.shape.size() != 5, "volumes have shape " + shape_str(ve.shape) + ", expected [N, C, D, H, W]");
  const int64_t N = ve.shape[0];
  impl->dtype = ve.dtype == "F16" ? DType::F16 : DType::F32;
  impl->vshape.assign(ve.shape.begin() + 1, ve.shape.end());
  impl->vnumel = numel_of(impl->vshape);
  impl->volumes = file.view("volumes");

  const SafeTensorInfo& le = file.info("labels");
  const SafeTensorInfo& te = file.info("tscores");
  fail_if(le.dtype != "I64" || le.shape != Shape{N}, "labels must be I64 [" + std::to_string(N) + "]");
  fail_if(te.dtype != "F64" || te.shape != Shape{N}, "tscores must be F64 [" + std::to_string(N) + "]");
  const auto labels = file.view("labels").to_vector<int64_t>();
  const auto tscores = file.view("tscores").to_vector<double>();

  const auto ids = parse_ids(meta_of("medconv.ids"), path);
  fail_if(int64_t(ids.size()) != N, "medconv.ids lists " + std::to_string(ids.size()) + " ids for " +
                                        std::to_string(N) + " volumes");
  impl->records.resize(size_t(N));
  for (int64_t i = 0; i < N; ++i) {
    impl->records[size_t(i)] = {ids[size_t(i)], labels[size_t(i)], tscores[size_t(i)]};
    fail_if(labels[size_t(i)] < -1, "record " + std::to_string(i) + " has label " + std::to_string(labels[size_t(i)]));
  }
  for (const auto& [k, v] : md)
    if (!k.starts_with(kReserved)) impl->meta[k] = v;

  Cache c;
  c.impl_ = std::move(impl);
  return c;
}

const std::string& Cache::path() const { return impl_->path; }
int64_t Cache::size() const { return int64_t(impl_->records.size()); }
Shape Cache::volume_shape() const { return impl_->vshape; }
int64_t Cache::volume_numel() const { return impl_->vnumel; }
DType Cache::stored_dtype() const { return impl_->dtype; }
const std::vector<CacheRecord>& Cache::records() const { return impl_->records; }
const std::map<std::string, std::string>& Cache::meta() const { return impl_->meta; }

const CacheRecord& Cache::record(int64_t i) const {
  MC_CHECK(i >= 0 && i < size(), "cache ", impl_->path, ": record ", i, " out of range [0, ", size(), ")");
  return impl_->records[size_t(i)];
}

std::vector<int64_t> Cache::labels() const {
  std::vector<int64_t> l;
  for (const auto& r : impl_->records) l.push_back(r.label);
  return l;
}

Tensor Cache::volume(int64_t i) const {
  record(i);  // range check
  return impl_->volumes.flat_slice(i * impl_->vnumel, impl_->vshape);
}

Tensor Cache::volume_f32(int64_t i) const {
  if (impl_->dtype == DType::F32) return volume(i);
  Tensor t = Tensor::empty(impl_->vshape, DType::F32);
  read_f32(i, t.data<float>());
  return t;
}

void Cache::read_f32(int64_t i, float* dst) const {
  const Tensor v = volume(i);
  const int64_t n = impl_->vnumel;
  if (impl_->dtype == DType::F32) {
    std::memcpy(dst, v.raw(), size_t(n) * 4);
    return;
  }
  const auto* src = static_cast<const uint16_t*>(v.raw());
  const float* table = f16_table();
  for (int64_t j = 0; j < n; ++j) dst[j] = table[src[j]];
}

std::vector<int64_t> Cache::class_counts(int num_classes) const {
  std::vector<int64_t> counts(size_t(std::max(num_classes, 0)), 0);
  for (const auto& r : impl_->records) {
    if (r.label < 0) continue;
    MC_CHECK(r.label < num_classes, "cache ", impl_->path, ": label ", r.label, " of '", r.id,
             "' is not below ", num_classes, " classes");
    ++counts[size_t(r.label)];
  }
  return counts;
}

}  // namespace mc::io
