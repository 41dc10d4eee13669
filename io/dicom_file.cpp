// A structural check of a DICOM file before GDCM parses it. Debian's GDCM is built with
// assertions, and a file cut short inside its header aborts the process in GDCM's reader; a
// file cut inside uncompressed pixel data is read without complaint, the missing pixels made
// up. So every data element (nested sequences and pixel fragments included) is walked here
// and must lie inside the file; anything else is an mc::Error naming the file and the byte.
#include <zlib.h>

#include <cctype>
#include <cstring>
#include <fstream>
#include <set>

#include "io/dicom.h"

namespace mc::io {
namespace {

constexpr uint32_t kUndefined = 0xFFFFFFFFu;
constexpr int kMaxDepth = 32;

class Walker {
 public:
  Walker(const std::string& path, const std::vector<uint8_t>& buf) : path_(path), b_(buf) {}

  bool explicit_vr = true, big_endian = false;
  std::string transfer_syntax;
  std::string sop_class;  // MediaStorageSOPClassUID of the meta information
  int64_t pixel_bytes = -1;
  bool encapsulated = false, has_rows = false;

  // Walks the elements in [at, end); with `until_delimiter`, stops after an item delimiter.
  size_t elements(size_t at, size_t end, int depth, bool until_delimiter, bool meta = false) {
    if (depth > kMaxDepth) fail(at, "sequences nested deeper than " + std::to_string(kMaxDepth));
    while (at < end) {
      need(at, 8, end, "an element header");
      const uint16_t group = u16(at, meta), elem = u16(at + 2, meta);
      if (meta && group != 0x0002) return at;  // end of the file meta information
      if (group == 0xFFFE) {
        if (elem == 0xE00D && until_delimiter) return at + 8;
        fail(at, "unexpected item tag (FFFE," + hex(elem) + ")");
      }
      bool ex = explicit_vr || meta;
      std::string vr;
      uint32_t len;
      size_t hdr;
      if (ex) {
        vr = {char(b_[at + 4]), char(b_[at + 5])};
        if (!known_vr(vr))
          fail(at, "element (" + hex(group) + "," + hex(elem) + ") has no valid VR");
        if (long_vr(vr)) {
          need(at, 12, end, "an element header");
          len = u32(at + 8, meta);
          hdr = 12;
        } else {
          len = u16(at + 6, meta);
          hdr = 8;
        }
      } else {
        len = u32(at + 4, meta);
        hdr = 8;
      }
      const size_t value = at + hdr;
      const bool pixel = group == 0x7FE0 && elem == 0x0010 && depth == 0;
      if (len == kUndefined) {
        if (pixel) {
          encapsulated = true;
          pixel_bytes = 0;
          at = fragments(value, end);
        } else if (!ex || vr == "SQ" || vr == "UN") {
          at = sequence(value, end, depth);
        } else {
          fail(at, "element (" + hex(group) + "," + hex(elem) + ") of VR " + vr +
                       " has an undefined length");
        }
        continue;
      }
      need(value, len, end, "the value of (" + hex(group) + "," + hex(elem) + ")");
      if (meta && elem == 0x0010) transfer_syntax = text(value, len);
      if (meta && elem == 0x0002) sop_class = text(value, len);
      if (pixel) pixel_bytes = len;
      if (group == 0x0028 && elem == 0x0010 && depth == 0) has_rows = true;
      if (ex && vr == "SQ") elements_of_items(value, value + len, depth);
      at = value + len;
    }
    if (until_delimiter) fail(at, "an item without its delimiter");
    return at;
  }

 private:
  std::string text(size_t at, size_t len) const {
    std::string s(reinterpret_cast<const char*>(&b_[at]), len);
    while (!s.empty() && (s.back() == '\0' || s.back() == ' ')) s.pop_back();
    return s;
  }
  // GDCM asserts on a VR it does not know; so do we, with an error.
  static bool known_vr(const std::string& vr) {
    static const std::set<std::string> all{
        "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD", "OF",
        "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN",
        "UR", "US", "UT", "UV"};
    return all.count(vr) > 0;
  }
  static bool long_vr(const std::string& vr) {
    for (const char* v : {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
      if (vr == v) return true;
    return false;
  }
  static std::string hex(uint16_t x) {
    char s[8];
    std::snprintf(s, sizeof s, "%04X", x);
    return s;
  }
  [[noreturn]] void fail(size_t at, const std::string& what) const {
    MC_FAIL(path_, ": corrupt DICOM file: ", what, " at byte ", at, " of ", b_.size());
  }
  void need(size_t at, uint64_t n, size_t end, const std::string& what) const {
    if (uint64_t(at) + n > uint64_t(end))
      MC_FAIL(path_, ": truncated DICOM file: ", what, " at byte ", at, " needs ", n,
              " bytes, but ", (end == b_.size() ? "the file ends" : "its sequence item ends"),
              " at byte ", end);
  }
  uint16_t u16(size_t at, bool meta) const {
    return (big_endian && !meta) ? uint16_t(b_[at] << 8 | b_[at + 1])
                                 : uint16_t(b_[at] | b_[at + 1] << 8);
  }
  uint32_t u32(size_t at, bool meta) const {
    if (big_endian && !meta)
      return uint32_t(b_[at]) << 24 | uint32_t(b_[at + 1]) << 16 | uint32_t(b_[at + 2]) << 8 | b_[at + 3];
    return uint32_t(b_[at]) | uint32_t(b_[at + 1]) << 8 | uint32_t(b_[at + 2]) << 16 |
           uint32_t(b_[at + 3]) << 24;
  }
  // Items of a defined-length sequence.
  void elements_of_items(size_t at, size_t end, int depth) {
    while (at < end) {
      need(at, 8, end, "an item header");
      if (u16(at, false) != 0xFFFE || u16(at + 2, false) != 0xE000)
        fail(at, "a sequence holds something other than items");
      const uint32_t len = u32(at + 4, false);
      if (len == kUndefined) {
        at = elements(at + 8, end, depth + 1, true);
      } else {
        need(at + 8, len, end, "a sequence item");
        elements(at + 8, at + 8 + len, depth + 1, false);
        at += 8 + len;
      }
    }
  }
  // Items of an undefined-length sequence, up to its delimiter.
  size_t sequence(size_t at, size_t end, int depth) {
    for (;;) {
      need(at, 8, end, "an item header (the sequence has no delimiter)");
      const uint16_t g = u16(at, false), e = u16(at + 2, false);
      const uint32_t len = u32(at + 4, false);
      if (g == 0xFFFE && e == 0xE0DD) return at + 8;
      if (g != 0xFFFE || e != 0xE000) fail(at, "a sequence holds something other than items");
      if (len == kUndefined) {
        at = elements(at + 8, end, depth + 1, true);
      } else {
        need(at + 8, len, end, "a sequence item");
        elements(at + 8, at + 8 + len, depth + 1, false);
        at += 8 + len;
      }
    }
  }
  // Encapsulated pixel data: the offset table and fragments, up to the delimiter.
  size_t fragments(size_t at, size_t end) {
    for (;;) {
      need(at, 8, end, "a pixel data fragment (the pixel data has no delimiter)");
      const uint16_t g = u16(at, false), e = u16(at + 2, false);
      const uint32_t len = u32(at + 4, false);
      if (g == 0xFFFE && e == 0xE0DD) return at + 8;
      if (g != 0xFFFE || e != 0xE000 || len == kUndefined)
        fail(at, "encapsulated pixel data holds something other than fragments");
      need(at + 8, len, end, "a pixel data fragment");
      pixel_bytes += len;
      at += 8 + len;
    }
  }

  std::string path_;
  const std::vector<uint8_t>& b_;
};

std::vector<uint8_t> inflate_raw(const std::string& path, const uint8_t* p, size_t n) {
  z_stream zs{};
  if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) MC_FAIL(path, ": zlib initialisation failed");
  std::vector<uint8_t> out;
  uint8_t chunk[1 << 16];
  zs.next_in = const_cast<uint8_t*>(p);
  zs.avail_in = uInt(n);
  int ret = Z_OK;
  while (ret == Z_OK) {
    zs.next_out = chunk;
    zs.avail_out = sizeof chunk;
    ret = inflate(&zs, Z_NO_FLUSH);
    out.insert(out.end(), chunk, chunk + (sizeof chunk - zs.avail_out));
    if (ret == Z_BUF_ERROR && zs.avail_in == 0) break;
  }
  inflateEnd(&zs);
  if (ret != Z_STREAM_END)
    MC_FAIL(path, ": corrupt DICOM file: its deflated data set ends early or is damaged");
  return out;
}

}  // namespace

bool check_dicom_structure(const std::string& path, DicomFileLayout* layout) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) MC_FAIL(path, ": cannot open");
  std::vector<uint8_t> b(size_t(f.tellg()));
  f.seekg(0);
  if (!f.read(reinterpret_cast<char*>(b.data()), std::streamsize(b.size())))
    MC_FAIL(path, ": read error");
  const bool part10 = b.size() >= 132 && std::memcmp(&b[128], "DICM", 4) == 0;
  Walker w(path, b);
  size_t at = 0;
  if (part10) {
    at = w.elements(132, b.size(), 0, false, /*meta=*/true);
    if (w.transfer_syntax.empty())
      MC_FAIL(path, ": corrupt or truncated DICOM file: its file meta information (group 0002) "
              "has no TransferSyntaxUID");
  } else {
    // Without the preamble, only a data set starting with a plausible group (0008, or 0002
    // meta elements) in implicit or explicit little endian that walks cleanly is DICOM.
    if (b.size() < 8) return false;
    const uint16_t group = uint16_t(b[0] | b[1] << 8);
    if (group != 0x0008 && group != 0x0002) return false;
    w.explicit_vr = std::isupper(b[4]) && std::isupper(b[5]);
    try {
      w.elements(0, b.size(), 0, false);
    } catch (const Error&) {
      return false;
    }
    at = b.size();
  }
  const std::string& ts = w.transfer_syntax;
  std::vector<uint8_t> inflated;
  if (ts == "1.2.840.10008.1.2") {
    w.explicit_vr = false;
  } else if (ts == "1.2.840.10008.1.2.2") {
    w.big_endian = true;
  } else if (ts == "1.2.840.10008.1.2.1.99") {
    inflated = inflate_raw(path, b.data() + at, b.size() - at);
    Walker d(path, inflated);
    d.elements(0, inflated.size(), 0, false);
    w.pixel_bytes = d.pixel_bytes;
    w.encapsulated = d.encapsulated;
    w.has_rows = d.has_rows;
    at = b.size();
  }
  if (at < b.size()) w.elements(at, b.size(), 0, false);
  if (layout) {
    layout->part10 = part10;
    layout->transfer_syntax = ts;
    layout->pixel_data_bytes = w.pixel_bytes;
    layout->encapsulated = w.encapsulated;
    layout->has_rows = w.has_rows;
    layout->sop_class = w.sop_class;
  }
  return true;
}

}  // namespace mc::io
