#include "io/npy.h"

#include <cstring>
#include <fstream>
#include <sstream>

#include "engine/check.h"
#include "io/text.h"
#include "kernels/half.h"

namespace mc::io {
namespace {

// The value of 'key' in the header dict, as text up to the next top-level ',' or '}'.
std::string dict_value(const std::string& h, const std::string& key, const std::string& path) {
  const size_t k = h.find("'" + key + "'");
  MC_CHECK(k != std::string::npos, path, ": .npy header has no '", key, "': ", h);
  size_t i = h.find(':', k);
  MC_CHECK(i != std::string::npos, path, ": malformed .npy header: ", h);
  ++i;
  while (i < h.size() && h[i] == ' ') ++i;
  size_t j = i;
  int depth = 0;
  for (; j < h.size(); ++j) {
    const char c = h[j];
    if (c == '(' || c == '[') ++depth;
    else if (c == ')' || c == ']') --depth;
    else if ((c == ',' || c == '}') && depth == 0) break;
  }
  return std::string(trim(h.substr(i, j - i)));
}

}  // namespace

Tensor read_npy(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  MC_CHECK(f, path, ": cannot open");
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  MC_CHECK(bytes.size() >= 10 && bytes.compare(0, 6, "\x93NUMPY") == 0, path, ": not a .npy file (no \\x93NUMPY magic)");
  const int major = static_cast<unsigned char>(bytes[6]);
  MC_CHECK(major >= 1 && major <= 3, path, ": unsupported .npy version ", major);
  size_t hlen = 0, start = 0;
  if (major == 1) {
    hlen = size_t(static_cast<unsigned char>(bytes[8])) | size_t(static_cast<unsigned char>(bytes[9])) << 8;
    start = 10;
  } else {
    MC_CHECK(bytes.size() >= 12, path, ": truncated .npy header");
    for (int b = 0; b < 4; ++b) hlen |= size_t(static_cast<unsigned char>(bytes[size_t(8 + b)])) << (8 * b);
    start = 12;
  }
  MC_CHECK(start + hlen <= bytes.size(), path, ": truncated .npy header");
  const std::string h = bytes.substr(start, hlen);
  std::string descr = dict_value(h, "descr", path);
  MC_CHECK(descr.size() >= 3 && (descr.front() == '\'' || descr.front() == '"'), path, ": .npy descr ", descr, " is not a plain dtype");
  descr = descr.substr(1, descr.size() - 2);
  MC_CHECK(dict_value(h, "fortran_order", path) == "False", path, ": Fortran-ordered .npy arrays are not supported (save with numpy.ascontiguousarray)");
  std::string shape_text = dict_value(h, "shape", path);
  MC_CHECK(shape_text.size() >= 2 && shape_text.front() == '(' && shape_text.back() == ')', path, ": .npy shape ", shape_text, " is not a tuple");
  Shape shape;
  std::stringstream ss(shape_text.substr(1, shape_text.size() - 2));
  for (std::string part; std::getline(ss, part, ',');) {
    if (trim(part).empty()) continue;
    const auto v = parse_int(trim(part));
    MC_CHECK(v && *v >= 0, path, ": .npy shape ", shape_text, " holds '", part, "'");
    shape.push_back(*v);
  }
  MC_CHECK(descr.size() >= 3 && (descr[0] == '<' || descr[0] == '|' || descr[0] == '='), path, ": .npy dtype '", descr,
           "' is not little-endian");
  const std::string kind = descr.substr(1);
  const size_t esize = size_t(kind[1] - '0');
  MC_CHECK(kind.size() == 2 && (kind[0] == 'f' || kind[0] == 'i' || kind[0] == 'u'), path, ": .npy dtype '", descr,
           "' is not a number type (f2/f4/f8, i1-i8, u1/u2)");
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  const size_t data = start + hlen;
  MC_CHECK(bytes.size() - data == size_t(n) * esize, path, ": .npy data holds ", bytes.size() - data, " bytes, shape ",
           shape_str(shape), " of ", descr, " needs ", size_t(n) * esize);
  Tensor t = Tensor::empty(shape, DType::F32);
  float* out = t.data<float>();
  const char* p = bytes.data() + data;
  for (int64_t i = 0; i < n; ++i, p += esize) {
    float v = 0;
    if (kind == "f4") std::memcpy(&v, p, 4);
    else if (kind == "f8") { double d; std::memcpy(&d, p, 8); v = float(d); }
    else if (kind == "f2") { uint16_t b; std::memcpy(&b, p, 2); v = f16_to_float(b); }
    else if (kind == "u1") v = float(static_cast<uint8_t>(*p));
    else if (kind == "u2") { uint16_t b; std::memcpy(&b, p, 2); v = float(b); }
    else if (kind == "i1") v = float(static_cast<int8_t>(*p));
    else if (kind == "i2") { int16_t b; std::memcpy(&b, p, 2); v = float(b); }
    else if (kind == "i4") { int32_t b; std::memcpy(&b, p, 4); v = float(b); }
    else if (kind == "i8") { int64_t b; std::memcpy(&b, p, 8); v = float(b); }
    else MC_FAIL(path, ": .npy dtype '", descr, "' is not supported");
    out[i] = v;
  }
  return t;
}

}  // namespace mc::io
