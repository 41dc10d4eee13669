#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "engine/check.h"

namespace mc {
namespace {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian and is copied as it is");

constexpr uint64_t kMaxHeader = 100'000'000;  // the reference reader's limit
constexpr int kMaxDepth = 64;                 // nesting in ignored values; bounds our recursion

// ---------------------------------------------------------------- dtypes
struct StDtype {
  const char* name;
  size_t size;
  bool readable;  // maps onto an mc::DType
  DType dt;
};
// In the reference implementation's enum order (increasing alignment): its writer sorts tensors
// by this order, descending, then by name; ours does the same, so the index is the sort rank.
constexpr StDtype kDtypes[] = {
    {"BOOL", 1, true, DType::U8},      {"U8", 1, true, DType::U8},
    {"I8", 1, false, DType::U8},       {"F8_E5M2", 1, false, DType::U8},
    {"F8_E4M3", 1, false, DType::U8},  {"F8_E8M0", 1, false, DType::U8},
    {"I16", 2, false, DType::U8},      {"U16", 2, false, DType::U8},
    {"F16", 2, true, DType::F16},      {"BF16", 2, true, DType::BF16},
    {"I32", 4, true, DType::I32},      {"U32", 4, false, DType::U8},
    {"F32", 4, true, DType::F32},      {"F64", 8, true, DType::F64},
    {"I64", 8, true, DType::I64},      {"U64", 8, false, DType::U8},
};

const StDtype* find_dtype(std::string_view name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

size_t write_rank(DType t) {
  std::string_view n = safetensors_dtype(t);
  for (size_t i = 0; i < std::size(kDtypes); ++i)
    if (n == kDtypes[i].name) return i;
  return 0;
}

// ---------------------------------------------------------------- UTF-8
// Length of the valid UTF-8 sequence at p (0 if invalid): no overlongs, surrogates or > U+10FFFF.
size_t utf8_len(const unsigned char* p, size_t n) {
  const unsigned c = p[0];
  if (c < 0x80) return 1;
  size_t len;
  uint32_t cp;
  if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F;
  else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F;
  else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07;
  else return 0;
  if (n < len) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((p[k] & 0xC0) != 0x80) return 0;
    cp = cp << 6 | (p[k] & 0x3F);
  }
  constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

bool valid_utf8(std::string_view s) {
  auto* p = reinterpret_cast<const unsigned char*>(s.data());
  for (size_t i = 0; i < s.size();) {
    size_t l = utf8_len(p + i, s.size() - i);
    if (!l) return false;
    i += l;
  }
  return true;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | cp >> 6), out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | cp >> 12), out += char(0x80 | (cp >> 6 & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | cp >> 18), out += char(0x80 | (cp >> 12 & 0x3F));
    out += char(0x80 | (cp >> 6 & 0x3F)), out += char(0x80 | (cp & 0x3F));
  }
}

// ---------------------------------------------------------------- header parser
// Strict JSON, driven by the safetensors schema: entries are decoded straight into
// SafeTensorInfo and ignored values are skipped without being stored, so a hostile 100 MB
// header costs no more memory than the shapes it declares. Duplicate keys, which generic JSON
// readers silently collapse, are errors.
struct Number {
  bool negative = false, integer = true, too_big = false;
  uint64_t value = 0;
  std::string_view text;
};

class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& path) : t_(text), path_(path) {}

  void parse(std::vector<SafeTensorInfo>& entries, SafeTensorsMetadata& meta) {
    if (t_.empty() || t_[0] != '{')
      MC_FAIL("safetensors '", path_, "': the JSON header does not start with '{' (found ",
              describe(0), "): the header must be a JSON object");
    bool have_meta = false;
    std::unordered_set<std::string> seen;
    object(0, [&](std::string key) {
      if (key == "__metadata__") {
        if (have_meta) fail("", "duplicate \"__metadata__\" key");
        have_meta = true;
        metadata(meta);
        return;
      }
      if (!seen.insert(key).second)
        fail(key, "duplicate tensor name (a JSON reader would silently keep only one of them)");
      entries.push_back({});
      entries.back().name = std::move(key);
      entry(entries.back());
    });
    ws();
    if (i_ != t_.size()) syntax("unexpected " + describe(i_) + " after the closing '}'");
  }

 private:
  // ---- errors
  [[noreturn]] void fail(const std::string& tensor, const std::string& why) const {
    if (tensor.empty()) MC_FAIL("safetensors '", path_, "': ", why);
    MC_FAIL("safetensors '", path_, "': tensor '", tensor, "': ", why);
  }
  [[noreturn]] void syntax(const std::string& why) const {
    MC_FAIL("safetensors '", path_, "': the header is not valid JSON: ", why, " at header byte ", i_);
  }
  std::string describe(size_t at) const {
    if (at >= t_.size()) return "the end of the header";
    unsigned char c = static_cast<unsigned char>(t_[at]);
    if (c >= 0x20 && c < 0x7F) return std::string("'") + char(c) + "'";
    return "byte 0x" + std::string(1, "0123456789abcdef"[c >> 4]) + "0123456789abcdef"[c & 15];
  }
  // What the next value is, for "expected X, got Y" messages.
  const char* next_kind() {
    ws();
    if (i_ >= t_.size()) return "nothing";
    switch (t_[i_]) {
      case '{': return "an object";
      case '[': return "an array";
      case '"': return "a string";
      case 't': case 'f': return "a boolean";
      case 'n': return "null";
      default: return "a number";
    }
  }

  // ---- lexing
  void ws() {
    while (i_ < t_.size() && (t_[i_] == ' ' || t_[i_] == '\t' || t_[i_] == '\n' || t_[i_] == '\r')) ++i_;
  }
  bool at(char c) {
    ws();
    return i_ < t_.size() && t_[i_] == c;
  }
  void expect(char c) {
    if (!at(c)) syntax(std::string("expected '") + c + "', found " + describe(i_));
    ++i_;
  }

  // Calls member(key) with the position on each value; member must consume it.
  template <class F>
  void object(int depth, F&& member) {
    expect('{');
    if (at('}')) { ++i_; return; }
    for (;;) {
      if (!at('"')) syntax("expected a string key, found " + describe(i_));
      std::string key = string();
      expect(':');
      ws();
      member(std::move(key));
      if (at(',')) { ++i_; continue; }
      if (at('}')) { ++i_; return; }
      syntax("expected ',' or '}', found " + describe(i_));
    }
  }
  template <class F>
  void array(F&& element) {
    expect('[');
    if (at(']')) { ++i_; return; }
    for (size_t k = 0;; ++k) {
      ws();
      element(k);
      if (at(',')) { ++i_; continue; }
      if (at(']')) { ++i_; return; }
      syntax("expected ',' or ']', found " + describe(i_));
    }
  }

  uint32_t hex4() {
    if (t_.size() - i_ < 4) syntax("truncated \\u escape");
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      char c = t_[i_++];
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (d < 0) syntax("bad hex digit in \\u escape");
      v = v << 4 | uint32_t(d);
    }
    return v;
  }

  std::string string() {
    ++i_;  // the opening quote
    std::string out;
    for (;;) {
      if (i_ >= t_.size()) syntax("unterminated string");
      const unsigned char c = static_cast<unsigned char>(t_[i_]);
      if (c == '"') { ++i_; return out; }
      if (c < 0x20) syntax("unescaped control character in a string");
      if (c != '\\') {
        size_t l = utf8_len(reinterpret_cast<const unsigned char*>(t_.data()) + i_, t_.size() - i_);
        if (!l) syntax("invalid UTF-8 in a string");
        out.append(t_.substr(i_, l));
        i_ += l;
        continue;
      }
      if (++i_ >= t_.size()) syntax("unterminated escape");
      switch (char e = t_[i_++]) {
        case '"': case '\\': case '/': out += e; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = hex4();
          if (cp >= 0xDC00 && cp <= 0xDFFF) syntax("lone low surrogate in \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (t_.substr(i_, 2) != "\\u") syntax("lone high surrogate in \\u escape");
            i_ += 2;
            uint32_t lo = hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) syntax("bad low surrogate in \\u escape");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          append_utf8(out, cp);
          break;
        }
        default: syntax("bad escape '\\" + std::string(1, e) + "'");
      }
    }
  }

  Number number() {
    auto digit = [&] { return i_ < t_.size() && t_[i_] >= '0' && t_[i_] <= '9'; };
    Number n;
    const size_t start = i_;
    if (i_ < t_.size() && t_[i_] == '-') n.negative = true, ++i_;
    if (!digit()) syntax("bad number");
    if (t_[i_] == '0') {
      ++i_;
    } else {
      while (digit()) {
        const uint64_t d = uint64_t(t_[i_++] - '0');
        if (__builtin_mul_overflow(n.value, 10u, &n.value) || __builtin_add_overflow(n.value, d, &n.value))
          n.too_big = true;
      }
    }
    if (i_ < t_.size() && t_[i_] == '.') {
      n.integer = false, ++i_;
      if (!digit()) syntax("bad number");
      while (digit()) ++i_;
    }
    if (i_ < t_.size() && (t_[i_] == 'e' || t_[i_] == 'E')) {
      n.integer = false, ++i_;
      if (i_ < t_.size() && (t_[i_] == '+' || t_[i_] == '-')) ++i_;
      if (!digit()) syntax("bad number");
      while (digit()) ++i_;
    }
    if (n.value == 0 && !n.too_big) n.negative = false;  // -0 is 0
    n.text = t_.substr(start, i_ - start);
    return n;
  }

  void literal(std::string_view word) {
    if (t_.substr(i_, word.size()) != word) syntax("unexpected " + describe(i_));
    i_ += word.size();
  }

  void skip_value(int depth) {
    if (depth > kMaxDepth) syntax("values nested deeper than 64 levels");
    ws();
    if (i_ >= t_.size()) syntax("unexpected end of the header");
    switch (t_[i_]) {
      case '{': object(depth, [&](std::string) { skip_value(depth + 1); }); break;
      case '[': array([&](size_t) { skip_value(depth + 1); }); break;
      case '"': string(); break;
      case 't': literal("true"); break;
      case 'f': literal("false"); break;
      case 'n': literal("null"); break;
      default:
        if (t_[i_] != '-' && (t_[i_] < '0' || t_[i_] > '9')) syntax("unexpected " + describe(i_));
        number();
    }
  }

  // ---- schema
  // A non-negative integer that fits in `limit`, else an error naming the field.
  uint64_t count(const std::string& tensor, const char* field, uint64_t limit) {
    if (!at('-') && (i_ >= t_.size() || t_[i_] < '0' || t_[i_] > '9'))
      fail(tensor, std::string("\"") + field + "\" must hold integers, got " + next_kind());
    const Number n = number();
    const std::string what = std::string("\"") + field + "\" entry " + std::string(n.text);
    if (!n.integer) fail(tensor, what + " is not an integer");
    if (n.negative) fail(tensor, what + " is negative");
    if (n.too_big || n.value > limit) fail(tensor, what + " is too large");
    return n.value;
  }

  void entry(SafeTensorInfo& e) {
    if (!at('{'))
      fail(e.name, std::string("expected an object {\"dtype\", \"shape\", \"data_offsets\"}, got ") +
                       next_kind());
    bool dtype = false, shape = false, offsets = false;
    auto once = [&](bool& seen, const char* key) {
      if (seen) fail(e.name, std::string("duplicate key \"") + key + "\"");
      seen = true;
    };
    object(1, [&](std::string key) {
      if (key == "dtype") {
        once(dtype, "dtype");
        if (!at('"')) fail(e.name, std::string("\"dtype\" must be a string, got ") + next_kind());
        e.dtype = string();
      } else if (key == "shape") {
        once(shape, "shape");
        if (!at('[')) fail(e.name, std::string("\"shape\" must be an array, got ") + next_kind());
        array([&](size_t) {
          e.shape.push_back(int64_t(count(e.name, "shape", uint64_t(INT64_MAX))));
        });
      } else if (key == "data_offsets") {
        once(offsets, "data_offsets");
        if (!at('['))
          fail(e.name, std::string("\"data_offsets\" must be [begin, end], got ") + next_kind());
        std::vector<uint64_t> v;
        array([&](size_t k) {
          if (k == 2) fail(e.name, "\"data_offsets\" must be [begin, end], got more than 2 values");
          v.push_back(count(e.name, "data_offsets", UINT64_MAX));
        });
        if (v.size() != 2)
          fail(e.name, "\"data_offsets\" must be [begin, end], got " + std::to_string(v.size()) +
                           " value(s)");
        e.begin = v[0], e.end = v[1];
      } else {
        skip_value(2);  // unknown keys are ignored, as the reference reader does
      }
    });
    if (!dtype) fail(e.name, "missing \"dtype\"");
    if (!shape) fail(e.name, "missing \"shape\"");
    if (!offsets) fail(e.name, "missing \"data_offsets\"");
  }

  void metadata(SafeTensorsMetadata& meta) {
    if (at('n')) return literal("null");  // serde's Option: the reference reader accepts null
    if (!at('{'))
      fail("", std::string("\"__metadata__\" must be an object of strings, got ") + next_kind());
    object(1, [&](std::string key) {
      if (!at('"'))
        fail("", "\"__metadata__\" value of '" + key + "' must be a string, got " + next_kind());
      if (meta.count(key)) fail("", "duplicate \"__metadata__\" key '" + key + "'");
      meta.emplace(std::move(key), string());
    });
  }

  std::string_view t_;
  const std::string& path_;
  size_t i_ = 0;
};

// ---------------------------------------------------------------- validation
// Sizes against dtypes and shapes, then the offsets: sorted by begin they must tile the data
// buffer exactly, from 0 to its last byte, with no hole and no overlap.
void validate(const std::string& path, std::vector<SafeTensorInfo>& entries, uint64_t data_size) {
  auto fail = [&](const SafeTensorInfo& e, const auto&... why) {
    MC_FAIL("safetensors '", path, "': tensor '", e.name, "': ", why...);
  };
  for (const auto& e : entries) {
    const StDtype* d = find_dtype(e.dtype);
    if (!d) {
      std::string known;
      for (const auto& k : kDtypes) known += std::string(known.empty() ? "" : ", ") + k.name;
      fail(e, "unknown dtype \"", e.dtype, "\" (expected one of ", known, ")");
    }
    if (e.end < e.begin) fail(e, "data_offsets [", e.begin, ", ", e.end, "] have end < begin");
    // Every partial product must fit an int64 too: numel_of() multiplies in that type.
    uint64_t numel = 1, bytes = 0;
    for (int64_t dim : e.shape)
      if (__builtin_mul_overflow(numel, uint64_t(dim), &numel) || numel > uint64_t(INT64_MAX))
        fail(e, "shape ", shape_str(e.shape), " overflows: more than 2^63 elements");
    if (__builtin_mul_overflow(numel, d->size, &bytes))
      fail(e, "shape ", shape_str(e.shape), " with dtype ", e.dtype,
           " overflows: numel * element size does not fit in 64 bits");
    if (bytes != e.end - e.begin)
      fail(e, "shape ", shape_str(e.shape), " with dtype ", e.dtype, " needs ", bytes,
           " bytes but data_offsets [", e.begin, ", ", e.end, "] span ", e.end - e.begin);
  }
  std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t cursor = 0;
  const SafeTensorInfo* prev = nullptr;
  for (const auto& e : entries) {
    if (e.begin < cursor)
      fail(e, "data_offsets [", e.begin, ", ", e.end, "] overlap tensor '", prev->name,
           "' which ends at ", cursor);
    if (e.begin > cursor)
      fail(e, "hole in the data buffer: bytes [", cursor, ", ", e.begin,
           ") before this tensor belong to no tensor (offsets must be contiguous from 0)");
    if (e.end > data_size)
      fail(e, "data truncated: the tensor ends at data byte ", e.end, " but the file holds only ",
           data_size, " data bytes");
    cursor = e.end;
    prev = &e;
  }
  if (cursor != data_size)
    MC_FAIL("safetensors '", path, "': ", data_size - cursor,
            " trailing bytes after the last tensor: the data buffer (", data_size,
            " bytes) is not fully covered by the tensors (", cursor, " bytes)");
}

struct Fd {
  int fd = -1;
  ~Fd() { if (fd >= 0) ::close(fd); }
};

}  // namespace

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
  ~Impl() { if (base != MAP_FAILED) ::munmap(base, size); }

  DType readable(const SafeTensorInfo& e) const {
    const StDtype* d = find_dtype(e.dtype);
    MC_CHECK(d->readable, "safetensors '", path, "': unsupported dtype ", e.dtype, " for tensor '",
             e.name, "' (MedConv reads F32, F64, BF16, F16, I64, I32, U8, and BOOL as U8)");
    return d->dt;
  }
};

SafeTensorsFile SafeTensorsFile::open(const std::string& path) {
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
  HeaderParser({reinterpret_cast<const char*>(bytes) + 8, size_t(n)}, path)
      .parse(entries, impl->metadata);
  validate(path, entries, size - 8 - n);

  impl->data = bytes + 8 + n;
  std::sort(entries.begin(), entries.end(), [](auto& a, auto& b) { return a.name < b.name; });
  impl->tensors = std::move(entries);
  for (size_t i = 0; i < impl->tensors.size(); ++i) impl->index.emplace(impl->tensors[i].name, i);
  SafeTensorsFile file;
  file.impl_ = std::move(impl);
  return file;
}

const std::string& SafeTensorsFile::path() const { return impl_->path; }
const SafeTensorsMetadata& SafeTensorsFile::metadata() const { return impl_->metadata; }
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

// ---------------------------------------------------------------- writing
namespace {

// serde_json's escaping, so our headers match the reference writer byte for byte.
void json_string(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += "0123456789abcdef"[c >> 4];
          out += "0123456789abcdef"[c & 15];
        } else {
          out += char(c);
        }
    }
  }
  out += '"';
}

// A temporary file beside the target (rename is atomic only within one file system), renamed
// over it on commit and removed otherwise, so a crash never leaves a half-written target.
class AtomicFile {
 public:
  explicit AtomicFile(const std::string& target) : target_(target) {
    static std::atomic<uint64_t> counter{0};
    for (int attempt = 0; fd_ < 0; ++attempt) {
      tmp_ = target + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
      fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd_ < 0 && (errno != EEXIST || attempt > 100))
        MC_FAIL("save_safetensors '", target, "': cannot create ", tmp_, ": ", std::strerror(errno));
    }
  }
  ~AtomicFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* p, size_t n) {
    auto* c = static_cast<const char*>(p);
    while (n) {
      ssize_t w = ::write(fd_, c, std::min<size_t>(n, size_t(1) << 30));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) fail("write");
      c += w, n -= size_t(w);
    }
  }

  void commit() {
    if (::fsync(fd_) != 0) fail("fsync");
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail("close");
    if (::rename(tmp_.c_str(), target_.c_str()) != 0) fail("rename");
    committed_ = true;
    // Makes the rename itself durable. Best effort: some file systems refuse fsync on a
    // directory, and atomicity does not depend on it.
    std::string dir = std::filesystem::path(target_).parent_path().string();
    Fd d;
    d.fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d.fd >= 0) ::fsync(d.fd);
  }

 private:
  [[noreturn]] void fail(const char* what) const {
    MC_FAIL("save_safetensors '", target_, "': ", what, " failed: ", std::strerror(errno));
  }
  std::string target_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace

void save_safetensors(const std::string& path, const StateDict& tensors,
                      const SafeTensorsMetadata& metadata) {
  auto fail = [&](const auto&... why) { MC_FAIL("save_safetensors '", path, "': ", why...); };
  std::unordered_set<std::string_view> names;
  for (const auto& [name, t] : tensors) {
    if (!names.insert(name).second) fail("duplicate tensor name '", name, "'");
    if (name == "__metadata__") fail("'__metadata__' is reserved and cannot name a tensor");
    if (!valid_utf8(name)) fail("tensor name '", name, "' is not valid UTF-8");
    if (!t.defined()) fail("tensor '", name, "' is undefined");
    // The file is row-major in the shape's axis order; a channels-last buffer is not.
    if (t.dim() == 5 && t.layout() == Layout::NDHWC)
      fail("tensor '", name, "' is channels-last (NDHWC); convert it to NCDHW first");
  }
  for (const auto& [k, v] : metadata)
    if (!valid_utf8(k) || !valid_utf8(v)) fail("metadata '", k, "' is not valid UTF-8");

  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const size_t ra = write_rank(tensors[a].second.dtype()), rb = write_rank(tensors[b].second.dtype());
    return ra != rb ? ra > rb : tensors[a].first < tensors[b].first;
  });

  std::string h = "{";
  if (!metadata.empty()) {
    h += "\"__metadata__\":{";
    for (const auto& [k, v] : metadata) {
      if (h.back() != '{') h += ',';
      json_string(h, k);
      h += ':';
      json_string(h, v);
    }
    h += '}';
  }
  uint64_t offset = 0;
  for (size_t i : order) {
    const auto& [name, t] = tensors[i];
    if (h.size() > 1) h += ',';
    json_string(h, name);
    h += ":{\"dtype\":\"" + std::string(safetensors_dtype(t.dtype())) + "\",\"shape\":[";
    for (int64_t d = 0; d < t.dim(); ++d) h += (d ? "," : "") + std::to_string(t.size(d));
    h += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + t.nbytes()) + "]}";
    offset += t.nbytes();
  }
  h += '}';
  h.append((8 - h.size() % 8) % 8, ' ');
  if (h.size() > kMaxHeader) fail("header of ", h.size(), " bytes exceeds the 100 MB limit");

  AtomicFile f(path);
  const uint64_t n = h.size();
  f.write(&n, 8);
  f.write(h.data(), h.size());
  for (size_t i : order) {
    const Tensor c = tensors[i].second.to(Device::cpu());  // one tensor at a time off the GPU
    if (c.nbytes()) f.write(c.raw(), c.nbytes());
  }
  f.commit();
}

}  // namespace mc
