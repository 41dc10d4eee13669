// The safetensors header: JSON read by nlohmann's SAX parser and decoded straight into
// SafeTensorInfo by the schema below. SAX, not a DOM: ignored values are never stored, so a
// hostile 100 MB header costs no more memory than the shapes it declares, and nesting is bounded
// here (nlohmann's parser itself does not recurse). Duplicate keys, which nlohmann's DOM would
// silently collapse to the last one, are errors.
#include <algorithm>
#include <array>
#include <cctype>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "engine/check.h"
#include "io/safetensors_format.h"

namespace mc::io::safetensors_format {
namespace {

using Sax = nlohmann::json_sax<nlohmann::json>;

class HeaderSax final : public Sax {
 public:
  HeaderSax(std::string_view text, const std::string& path, std::vector<SafeTensorInfo>& entries,
            SafeTensorsMetadata& meta)
      : text_(text), path_(path), entries_(entries), meta_(meta) {}

  bool done() const { return at_ == At::Done; }

  bool null() override { return scalar("null"); }
  bool boolean(bool) override { return scalar("a boolean"); }
  bool number_integer(number_integer_t v) override {
    return number(v < 0, v < 0 ? 0 : uint64_t(v), std::to_string(v), true);
  }
  bool number_unsigned(number_unsigned_t v) override { return number(false, v, std::to_string(v), true); }
  bool number_float(number_float_t, const string_t& s) override { return number(false, 0, s, false); }
  bool binary(binary_t&) override { return scalar("binary data"); }  // not in JSON text

  bool string(string_t& s) override {
    switch (at_) {
      case At::Dtype: entry().dtype = std::move(s); at_ = At::Field; return true;
      case At::MetaString: meta_.emplace(std::move(meta_key_), std::move(s)); at_ = At::MetaKey; return true;
      default: return scalar("a string");
    }
  }

  bool start_object(std::size_t) override {
    if (++depth_ > kMaxDepth) syntax("values nested deeper than 64 levels");
    switch (at_) {
      case At::Root: at_ = At::Top; return true;
      case At::Entry: at_ = At::Field; return true;
      case At::MetaValue: at_ = At::MetaKey; return true;
      default: return container("an object");
    }
  }
  bool start_array(std::size_t) override {
    if (++depth_ > kMaxDepth) syntax("values nested deeper than 64 levels");
    switch (at_) {
      case At::Shape: at_ = At::ShapeItem; return true;
      case At::Offsets: at_ = At::OffsetItem; return true;
      default: return container("an array");
    }
  }

  bool key(string_t& k) override {
    if (at_ == At::Top) {
      if (k == "__metadata__") {
        if (have_meta_) fail("", "duplicate \"__metadata__\" key");
        have_meta_ = true;
        at_ = At::MetaValue;
        return true;
      }
      if (!names_.insert(k).second)
        fail(k, "duplicate tensor name (a JSON reader would silently keep only one of them)");
      entries_.push_back({});
      entries_.back().name = std::move(k);
      seen_ = {};
      at_ = At::Entry;
    } else if (at_ == At::MetaKey) {
      if (meta_.count(k)) fail("", "duplicate \"__metadata__\" key '" + k + "'");
      meta_key_ = std::move(k);
      at_ = At::MetaString;
    } else if (at_ == At::Field) {
      const int f = k == "dtype" ? 0 : k == "shape" ? 1 : k == "data_offsets" ? 2 : -1;
      if (f < 0) {
        at_ = At::Ignored;  // unknown keys are ignored, as the reference reader does
        return true;
      }
      if (seen_[size_t(f)]) fail(entry().name, "duplicate key \"" + k + "\"");
      seen_[size_t(f)] = true;
      at_ = f == 0 ? At::Dtype : f == 1 ? At::Shape : At::Offsets;
    }  // keys inside ignored values: skipped
    return true;
  }

  bool end_object() override {
    --depth_;
    if (at_ == At::Top) {
      at_ = At::Done;
    } else if (at_ == At::Field) {
      const SafeTensorInfo& e = entry();
      if (!seen_[0]) fail(e.name, "missing \"dtype\"");
      if (!seen_[1]) fail(e.name, "missing \"shape\"");
      if (!seen_[2]) fail(e.name, "missing \"data_offsets\"");
      at_ = At::Top;
    } else if (at_ == At::MetaKey) {
      at_ = At::Top;
    } else {
      end_ignored();
    }
    return true;
  }
  bool end_array() override {
    --depth_;
    if (at_ == At::ShapeItem) {
      at_ = At::Field;
    } else if (at_ == At::OffsetItem) {
      if (offsets_.size() != 2)
        fail(entry().name, "\"data_offsets\" must be [begin, end], got " + std::to_string(offsets_.size()) +
                               " value(s)");
      entry().begin = offsets_[0], entry().end = offsets_[1];
      offsets_.clear();
      at_ = At::Field;
    } else {
      end_ignored();
    }
    return true;
  }

  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& ex) override {
    // nlohmann stops at a NUL byte as if the text ended there (it reads C strings that way).
    const size_t nul = text_.find('\0');
    if (nul != std::string_view::npos && nul < position) syntax("unexpected byte 0x00", nul);
    if (done()) syntax("unexpected data after the closing '}'", position);
    std::string why = ex.what();  // "[json.exception.parse_error.101] parse error at line 1, column 5: ..."
    if (const size_t p = why.find(": "); p != std::string::npos) why.erase(0, p + 2);
    if (const size_t p = why.find("; last read:"); p != std::string::npos) {  // the raw bytes read
      const size_t e = why.find("; expected", p);
      why.erase(p, e == std::string::npos ? std::string::npos : e - p);
    }
    if (why.find("ill-formed UTF-8") != std::string::npos) why = "invalid UTF-8 in a string (" + why + ")";
    syntax(why, position);
  }

 private:
  enum class At {
    Root, Top, Entry, Field, Dtype, Shape, ShapeItem, Offsets, OffsetItem,
    MetaValue, MetaKey, MetaString, Ignored, InIgnored, Done
  };

  SafeTensorInfo& entry() { return entries_.back(); }

  [[noreturn]] void fail(const std::string& tensor, const std::string& why) const {
    if (tensor.empty()) MC_FAIL("safetensors '", path_, "': ", why);
    MC_FAIL("safetensors '", path_, "': tensor '", tensor, "': ", why);
  }
  [[noreturn]] void syntax(const std::string& why, size_t at = std::string::npos) const {
    if (at == std::string::npos) MC_FAIL("safetensors '", path_, "': the header is not valid JSON: ", why);
    MC_FAIL("safetensors '", path_, "': the header is not valid JSON: ", why, " at header byte ", at);
  }

  // A value that is not what the position asks for; `kind` says what it is.
  [[noreturn]] void wrong(const char* kind) const {
    const std::string k = kind, name = entries_.empty() ? "" : entries_.back().name;
    switch (at_) {
      case At::Entry:
        fail(name, "expected an object {\"dtype\", \"shape\", \"data_offsets\"}, got " + k);
      case At::Dtype: fail(name, "\"dtype\" must be a string, got " + k);
      case At::Shape: fail(name, "\"shape\" must be an array, got " + k);
      case At::ShapeItem: fail(name, "\"shape\" must hold integers, got " + k);
      case At::Offsets: fail(name, "\"data_offsets\" must be [begin, end], got " + k);
      case At::OffsetItem: fail(name, "\"data_offsets\" must hold integers, got " + k);
      case At::MetaValue: fail("", "\"__metadata__\" must be an object of strings, got " + k);
      case At::MetaString: fail("", "\"__metadata__\" value of '" + meta_key_ + "' must be a string, got " + k);
      default: syntax("unexpected " + k);
    }
  }
  void check_offset_count() const {
    if (at_ == At::OffsetItem && offsets_.size() == 2)
      fail(entries_.back().name, "\"data_offsets\" must be [begin, end], got more than 2 values");
  }

  bool scalar(const char* kind) {
    if (at_ == At::Ignored) at_ = At::Field;
    else if (at_ == At::MetaValue && std::string_view(kind) == "null") at_ = At::Top;  // serde's Option
    else if (at_ != At::InIgnored) check_offset_count(), wrong(kind);
    return true;
  }
  bool container(const char* kind) {
    if (at_ == At::Ignored) at_ = At::InIgnored, ignored_depth_ = 1;
    else if (at_ == At::InIgnored) ++ignored_depth_;
    else check_offset_count(), wrong(kind);
    return true;
  }
  void end_ignored() {
    if (at_ == At::InIgnored && --ignored_depth_ == 0) at_ = At::Field;
  }

  // A non-negative integer that fits the field, else an error naming it. `text` is the number
  // as written (nlohmann hands integers beyond 64 bits over as floats, with their text).
  bool number(bool negative, uint64_t value, const std::string& text, bool integer) {
    if (at_ != At::ShapeItem && at_ != At::OffsetItem) return scalar("a number");
    check_offset_count();
    const bool shape = at_ == At::ShapeItem;
    const std::string what = std::string("\"") + (shape ? "shape" : "data_offsets") + "\" entry " + text;
    const std::string name = entry().name;
    if (!integer) {
      const bool digits = text.find_first_not_of("-0123456789") == std::string::npos;
      if (!digits) fail(name, what + " is not an integer");
      if (text[0] == '-') fail(name, what + " is negative");
      fail(name, what + " is too large");
    }
    if (negative) fail(name, what + " is negative");
    if (shape) {
      if (value > uint64_t(INT64_MAX)) fail(name, what + " is too large");
      entry().shape.push_back(int64_t(value));
    } else {
      offsets_.push_back(value);
    }
    return true;
  }

  std::string_view text_;
  const std::string& path_;
  std::vector<SafeTensorInfo>& entries_;
  SafeTensorsMetadata& meta_;
  At at_ = At::Root;
  int depth_ = 0;
  int64_t ignored_depth_ = 0;
  bool have_meta_ = false;
  std::array<bool, 3> seen_{};  // dtype, shape, data_offsets of the current entry
  std::vector<uint64_t> offsets_;
  std::string meta_key_;
  std::unordered_set<std::string> names_;
};

}  // namespace

void parse_header(std::string_view text, const std::string& path, std::vector<SafeTensorInfo>& entries,
                  SafeTensorsMetadata& meta) {
  if (text.empty() || text[0] != '{') {
    const std::string found = text.empty() ? "the end of the header"
                              : std::isprint(static_cast<unsigned char>(text[0]))
                                  ? "'" + std::string(1, text[0]) + "'"
                                  : "a byte " + std::to_string(int(static_cast<unsigned char>(text[0])));
    MC_FAIL("safetensors '", path, "': the JSON header does not start with '{' (found ", found,
            "): the header must be a JSON object");
  }
  HeaderSax sax(text, path, entries, meta);
  nlohmann::json::sax_parse(text.begin(), text.end(), &sax, nlohmann::json::input_format_t::json,
                            /*strict=*/true);
  if (const size_t nul = text.find('\0'); nul != std::string_view::npos)  // where nlohmann stopped
    MC_FAIL("safetensors '", path, "': the header is not valid JSON: unexpected byte 0x00 after the "
            "closing '}' at header byte ", nul);
}

// Sizes against dtypes and shapes, then the offsets: sorted by begin they must tile the data
// buffer exactly, from 0 to its last byte, with no hole and no overlap.
void validate(const std::string& path, std::vector<SafeTensorInfo>& entries, uint64_t data_size) {
  auto fail = [&](const SafeTensorInfo& e, const auto&... why) {
    MC_FAIL("safetensors '", path, "': tensor '", e.name, "': ", why...);
  };
  for (const auto& e : entries) {
    const Dtype* d = find_dtype(e.dtype);
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

}  // namespace mc::io::safetensors_format
