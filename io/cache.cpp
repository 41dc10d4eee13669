// Dataset cache writer and memory-mapped reader (format in cache.h). The file is a safetensors
// file; this has its own small JSON reader and writer so the cache stands on its own.
#include "io/cache.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string_view>

namespace mc {

static_assert(std::endian::native == std::endian::little, "the cache format is little-endian");

namespace {

constexpr const char* kFormat = "medconv-cache";
constexpr const char* kVersion = "1";
constexpr const char* kReserved = "medconv.";
constexpr uint64_t kMaxHeader = 100'000'000;  // safetensors' limit
constexpr size_t kAlign = 64;

// ---------------------------------------------------------------- JSON (the subset headers use)
struct Json {
  enum Kind { Null, Bool, Number, String, Array, Object } kind = Null;
  bool b = false;
  double num = 0;
  bool integral = false;
  int64_t inum = 0;
  std::string str;
  std::vector<Json> arr;
  std::vector<std::pair<std::string, Json>> obj;

  const Json* find(std::string_view key) const {
    for (const auto& [k, v] : obj)
      if (k == key) return &v;
    return nullptr;
  }
};

class JsonParser {
 public:
  JsonParser(std::string_view s, const std::string& what) : s_(s), what_(what) {}
  Json parse_document() {
    Json v = value(0);
    ws();
    if (i_ != s_.size()) fail("trailing characters");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& why) {
    MC_FAIL(what_, ": bad JSON at byte ", i_, ": ", why);
  }
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t')) ++i_;
  }
  char peek() { return i_ < s_.size() ? s_[i_] : '\0'; }
  void expect(char c) {
    ws();
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++i_;
  }
  bool literal(std::string_view w) {
    if (s_.substr(i_, w.size()) != w) return false;
    i_ += w.size();
    return true;
  }
  Json value(int depth) {
    if (depth > 64) fail("nested too deeply");
    ws();
    Json v;
    const char c = peek();
    if (c == '{') {
      v.kind = Json::Object;
      ++i_;
      ws();
      if (peek() == '}') { ++i_; return v; }
      for (;;) {
        ws();
        if (peek() != '"') fail("expected a key");
        std::string k = string();
        expect(':');
        for (const auto& kv : v.obj)
          if (kv.first == k) fail("duplicate key '" + k + "'");
        v.obj.emplace_back(std::move(k), value(depth + 1));
        ws();
        if (peek() == ',') { ++i_; continue; }
        expect('}');
        return v;
      }
    }
    if (c == '[') {
      v.kind = Json::Array;
      ++i_;
      ws();
      if (peek() == ']') { ++i_; return v; }
      for (;;) {
        v.arr.push_back(value(depth + 1));
        ws();
        if (peek() == ',') { ++i_; continue; }
        expect(']');
        return v;
      }
    }
    if (c == '"') { v.kind = Json::String; v.str = string(); return v; }
    if (literal("true")) { v.kind = Json::Bool; v.b = true; return v; }
    if (literal("false")) { v.kind = Json::Bool; return v; }
    if (literal("null")) return v;
    return number();
  }
  Json number() {
    const size_t start = i_;
    if (peek() == '-') ++i_;
    bool integral = true;
    while (i_ < s_.size() && (std::isdigit(uint8_t(s_[i_])) || (s_[i_] != '\0' && std::strchr(".eE+-", s_[i_])))) {
      if (!std::isdigit(uint8_t(s_[i_]))) integral = false;
      ++i_;
    }
    const std::string tok(s_.substr(start, i_ - start));
    if (tok.empty() || tok == "-") fail("unexpected character");
    Json v;
    v.kind = Json::Number;
    char* end = nullptr;
    errno = 0;
    v.num = std::strtod(tok.c_str(), &end);
    if (*end != '\0') fail("bad number '" + tok + "'");
    if (integral) {
      v.inum = std::strtoll(tok.c_str(), &end, 10);
      v.integral = errno == 0;
    }
    return v;
  }
  void utf8(uint32_t cp, std::string& out) {
    if (cp < 0x80) {
      out += char(cp);
    } else if (cp < 0x800) {
      out += char(0xC0 | (cp >> 6));
      out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += char(0xE0 | (cp >> 12));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    } else {
      out += char(0xF0 | (cp >> 18));
      out += char(0x80 | ((cp >> 12) & 0x3F));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    }
  }
  uint32_t hex4() {
    if (i_ + 4 > s_.size()) fail("short \\u escape");
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const char h = s_[i_++];
      v <<= 4;
      if (h >= '0' && h <= '9') v |= uint32_t(h - '0');
      else if (h >= 'a' && h <= 'f') v |= uint32_t(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F') v |= uint32_t(h - 'A' + 10);
      else fail("bad \\u escape");
    }
    return v;
  }
  std::string string() {
    ++i_;  // opening quote
    std::string out;
    for (;;) {
      if (i_ >= s_.size()) fail("unterminated string");
      const char c = s_[i_++];
      if (c == '"') return out;
      if (c != '\\') { out += c; continue; }
      if (i_ >= s_.size()) fail("unterminated escape");
      const char e = s_[i_++];
      switch (e) {
        case '"': case '\\': case '/': out += e; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00 && literal("\\u")) {
            const uint32_t lo = hex4();
            if (lo < 0xDC00 || lo >= 0xE000) fail("bad surrogate pair");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          utf8(cp, out);
          break;
        }
        default: fail(std::string("bad escape \\") + e);
      }
    }
  }

  std::string_view s_;
  const std::string& what_;
  size_t i_ = 0;
};

std::string json_quote(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (uint8_t(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", unsigned(uint8_t(c)));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string json_shape(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
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

// ---------------------------------------------------------------- writing
class TempFile {  // removed on destruction unless committed by rename
 public:
  explicit TempFile(const std::string& target) : target_(target) {
    static std::atomic<uint64_t> counter{0};
    tmp_ = target + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    MC_CHECK(fd_ >= 0, "cache ", target_, ": cannot create ", tmp_, ": ", std::strerror(errno));
  }
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }
  void write(const void* p, size_t n) {
    const char* c = static_cast<const char*>(p);
    while (n > 0) {
      const ssize_t w = ::write(fd_, c, n);
      if (w < 0 && errno == EINTR) continue;
      MC_CHECK(w > 0, "cache ", target_, ": write failed: ", std::strerror(errno));
      c += w;
      n -= size_t(w);
    }
  }
  void commit() {
    MC_CHECK(::fsync(fd_) == 0, "cache ", target_, ": fsync failed: ", std::strerror(errno));
    const int rc = ::close(fd_);
    fd_ = -1;
    MC_CHECK(rc == 0, "cache ", target_, ": close failed: ", std::strerror(errno));
    MC_CHECK(::rename(tmp_.c_str(), target_.c_str()) == 0, "cache ", target_,
             ": rename failed: ", std::strerror(errno));
    committed_ = true;
  }

 private:
  std::string target_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

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
    MC_CHECK(kv.first.rfind(kReserved, 0) != 0, "cache ", path, ": meta key '", kv.first,
             "' uses the reserved prefix '", kReserved, "'");

  const int64_t vnumel = numel_of(vshape);
  const uint64_t vbytes = uint64_t(N * vnumel) * dtype_size(opts.dtype), lbytes = uint64_t(N) * 8;
  Shape full{N};
  full.insert(full.end(), vshape.begin(), vshape.end());

  std::string ids = "[";
  for (int64_t i = 0; i < N; ++i) ids += (i ? ", " : "") + json_quote(records[size_t(i)].id);
  ids += "]";
  std::string h = "{\"__metadata__\":{";
  h += json_quote("medconv.format") + ":" + json_quote(kFormat) + ",";
  h += json_quote("medconv.version") + ":" + json_quote(kVersion) + ",";
  h += json_quote("medconv.ids") + ":" + json_quote(ids);
  for (const auto& [k, v] : meta) h += "," + json_quote(k) + ":" + json_quote(v);
  auto entry = [](const char* name, const char* dt, const Shape& s, uint64_t b, uint64_t e) {
    return std::string(",\"") + name + "\":{\"dtype\":\"" + dt + "\",\"shape\":" + json_shape(s) +
           ",\"data_offsets\":[" + std::to_string(b) + "," + std::to_string(e) + "]}";
  };
  h += "}";
  h += entry("volumes", opts.dtype == DType::F16 ? "F16" : "F32", full, 0, vbytes);
  h += entry("labels", "I64", {N}, vbytes, vbytes + lbytes);
  h += entry("tscores", "F64", {N}, vbytes + lbytes, vbytes + 2 * lbytes);
  h += "}";
  h.append((kAlign - (8 + h.size()) % kAlign) % kAlign, ' ');

  TempFile out(path);
  const uint64_t hlen = h.size();
  out.write(&hlen, 8);
  out.write(h.data(), h.size());
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
  void* map = MAP_FAILED;
  size_t map_bytes = 0;
  const char* volumes = nullptr;  // into the mapping
  DType dtype = DType::F16;
  Shape vshape;  // [C, D, H, W]
  int64_t vnumel = 0;
  std::vector<CacheRecord> records;
  std::map<std::string, std::string> meta;
  ~Impl() {
    if (map != MAP_FAILED) ::munmap(map, map_bytes);
  }
};

Cache Cache::open(const std::string& path) {
  auto impl = std::make_shared<Impl>();
  impl->path = path;
  auto fail_if = [&](bool bad, const std::string& why) { MC_CHECK(!bad, "cache ", path, ": ", why); };

  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  fail_if(fd < 0, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  const bool stat_ok = ::fstat(fd, &st) == 0;
  const size_t file_bytes = stat_ok ? size_t(st.st_size) : 0;
  if (stat_ok && file_bytes > 0) {
    impl->map = ::mmap(nullptr, file_bytes, PROT_READ, MAP_SHARED, fd, 0);
    impl->map_bytes = file_bytes;
  }
  ::close(fd);  // the mapping stays valid
  fail_if(!stat_ok, "cannot stat");
  fail_if(file_bytes < 8, "file of " + std::to_string(file_bytes) + " bytes is too short");
  fail_if(impl->map == MAP_FAILED, std::string("mmap failed: ") + std::strerror(errno));

  const char* base = static_cast<const char*>(impl->map);
  uint64_t hlen;
  std::memcpy(&hlen, base, 8);
  fail_if(hlen > kMaxHeader || hlen > file_bytes - 8,
          "header length " + std::to_string(hlen) + " does not fit a file of " +
              std::to_string(file_bytes) + " bytes (truncated or not a cache)");
  const Json header = JsonParser(std::string_view(base + 8, hlen), "cache " + path).parse_document();
  fail_if(header.kind != Json::Object, "header is not a JSON object");
  const uint64_t buffer_bytes = file_bytes - 8 - hlen;
  const char* buffer = base + 8 + hlen;

  // Every tensor: known dtype, shape, offsets tiling [0, buffer_bytes) without holes.
  struct Entry { std::string name, dtype; Shape shape; uint64_t begin, end; };
  std::vector<Entry> entries;
  const Json* md = nullptr;
  for (const auto& [name, v] : header.obj) {
    if (name == "__metadata__") { md = &v; continue; }
    const Json* dt = v.find("dtype");
    const Json* sh = v.find("shape");
    const Json* off = v.find("data_offsets");
    fail_if(v.kind != Json::Object || !dt || dt->kind != Json::String || !sh ||
                sh->kind != Json::Array || !off || off->kind != Json::Array || off->arr.size() != 2,
            "tensor '" + name + "' lacks dtype, shape or data_offsets");
    Entry e{name, dt->str, {}, 0, 0};
    for (const Json& d : sh->arr) {
      fail_if(d.kind != Json::Number || !d.integral || d.inum < 0, "tensor '" + name + "' has a bad shape");
      e.shape.push_back(d.inum);
    }
    for (int k = 0; k < 2; ++k)
      fail_if(off->arr[k].kind != Json::Number || !off->arr[k].integral || off->arr[k].inum < 0,
              "tensor '" + name + "' has bad data_offsets");
    e.begin = uint64_t(off->arr[0].inum);
    e.end = uint64_t(off->arr[1].inum);
    entries.push_back(std::move(e));
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.begin < b.begin; });
  uint64_t at = 0;
  for (const Entry& e : entries) {
    fail_if(e.begin != at || e.end < e.begin, "tensor '" + e.name + "' does not start where the previous one ends");
    at = e.end;
  }
  fail_if(at != buffer_bytes, "tensors cover " + std::to_string(at) + " bytes of a data buffer of " +
                                  std::to_string(buffer_bytes) + " (truncated or padded file)");
  auto get = [&](const char* name) -> const Entry& {
    for (const Entry& e : entries)
      if (e.name == name) return e;
    MC_FAIL("cache ", path, ": no tensor '", name, "'");
  };
  auto expect_bytes = [&](const Entry& e, size_t elem) {
    fail_if(uint64_t(numel_of(e.shape)) * elem != e.end - e.begin,
            "tensor '" + e.name + "' size does not match its shape " + shape_str(e.shape));
  };

  fail_if(!md || md->kind != Json::Object, "no __metadata__ (not a MedConv cache)");
  for (const auto& [k, v] : md->obj) fail_if(v.kind != Json::String, "metadata '" + k + "' is not a string");
  const Json* fmt = md->find("medconv.format");
  const Json* ver = md->find("medconv.version");
  fail_if(!fmt || fmt->str != kFormat, "not a MedConv cache (medconv.format missing)");
  fail_if(!ver || ver->str != kVersion, "unsupported cache version '" + (ver ? ver->str : "") + "'");

  const Entry& ve = get("volumes");
  fail_if(ve.dtype != "F16" && ve.dtype != "F32", "volumes are " + ve.dtype + ", expected F16 or F32");
  fail_if(ve.shape.size() != 5, "volumes have shape " + shape_str(ve.shape) + ", expected [N, C, D, H, W]");
  impl->dtype = ve.dtype == "F16" ? DType::F16 : DType::F32;
  expect_bytes(ve, dtype_size(impl->dtype));
  fail_if((8 + hlen + ve.begin) % dtype_size(impl->dtype) != 0, "volumes are misaligned");
  const int64_t N = ve.shape[0];
  impl->vshape.assign(ve.shape.begin() + 1, ve.shape.end());
  impl->vnumel = numel_of(impl->vshape);
  impl->volumes = buffer + ve.begin;

  const Entry& le = get("labels");
  const Entry& te = get("tscores");
  fail_if(le.dtype != "I64" || le.shape != Shape{N}, "labels must be I64 [" + std::to_string(N) + "]");
  fail_if(te.dtype != "F64" || te.shape != Shape{N}, "tscores must be F64 [" + std::to_string(N) + "]");
  expect_bytes(le, 8);
  expect_bytes(te, 8);

  const Json* ids_json = md->find("medconv.ids");
  fail_if(!ids_json, "no medconv.ids");
  const Json ids = JsonParser(ids_json->str, "cache " + path + " medconv.ids").parse_document();
  fail_if(ids.kind != Json::Array || int64_t(ids.arr.size()) != N,
          "medconv.ids is not an array of " + std::to_string(N) + " ids");
  impl->records.resize(size_t(N));
  for (int64_t i = 0; i < N; ++i) {
    CacheRecord& r = impl->records[size_t(i)];
    fail_if(ids.arr[size_t(i)].kind != Json::String, "id " + std::to_string(i) + " is not a string");
    r.id = ids.arr[size_t(i)].str;
    std::memcpy(&r.label, buffer + le.begin + 8 * uint64_t(i), 8);
    std::memcpy(&r.tscore, buffer + te.begin + 8 * uint64_t(i), 8);
    fail_if(r.label < -1, "record " + std::to_string(i) + " has label " + std::to_string(r.label));
  }
  for (const auto& [k, v] : md->obj)
    if (k.rfind(kReserved, 0) != 0) impl->meta[k] = v.str;

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
  const char* p = impl_->volumes + uint64_t(i * impl_->vnumel) * dtype_size(impl_->dtype);
  // The mapping is read-only: the view must not be written (PROT_READ faults on a write).
  return Tensor::from_blob(const_cast<char*>(p), impl_->vshape, impl_->dtype,
                           std::static_pointer_cast<void>(std::const_pointer_cast<Impl>(impl_)));
}

Tensor Cache::volume_f32(int64_t i) const {
  if (impl_->dtype == DType::F32) return volume(i);
  Tensor t = Tensor::empty(impl_->vshape, DType::F32);
  read_f32(i, t.data<float>());
  return t;
}

void Cache::read_f32(int64_t i, float* dst) const {
  record(i);
  const int64_t n = impl_->vnumel;
  if (impl_->dtype == DType::F32) {
    std::memcpy(dst, impl_->volumes + uint64_t(i * n) * 4, size_t(n) * 4);
    return;
  }
  const auto* src = reinterpret_cast<const uint16_t*>(impl_->volumes) + i * n;
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

}  // namespace mc
