// Internals shared by the safetensors reader (io/safetensors.cpp), its header parser
// (io/safetensors_header.cpp) and the writer (io/safetensors_write.cpp). Not for other callers.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "io/safetensors.h"

namespace mc::io {
// XXH3-64 as 16 lower-case hex digits (io/safetensors.cpp).
std::string xxh3_hex(const void* data, size_t bytes);
}  // namespace mc::io

namespace mc::io::safetensors_format {

inline constexpr uint64_t kMaxHeader = 100'000'000;  // the reference reader's limit
inline constexpr int kMaxDepth = 64;                 // nesting of ignored values

struct Dtype {
  const char* name;
  size_t size;
  bool readable;  // maps onto an mc::DType
  DType dt;
};
// In the reference implementation's enum order (increasing alignment): its writer sorts tensors
// by this order, descending, then by name; ours does the same, so the index is the sort rank.
inline constexpr Dtype kDtypes[] = {
    {"BOOL", 1, true, DType::U8},      {"U8", 1, true, DType::U8},
    {"I8", 1, false, DType::U8},       {"F8_E5M2", 1, false, DType::U8},
    {"F8_E4M3", 1, false, DType::U8},  {"F8_E8M0", 1, false, DType::U8},
    {"I16", 2, false, DType::U8},      {"U16", 2, false, DType::U8},
    {"F16", 2, true, DType::F16},      {"BF16", 2, true, DType::BF16},
    {"I32", 4, true, DType::I32},      {"U32", 4, false, DType::U8},
    {"F32", 4, true, DType::F32},      {"F64", 8, true, DType::F64},
    {"I64", 8, true, DType::I64},      {"U64", 8, false, DType::U8},
};

inline const Dtype* find_dtype(std::string_view name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

// The JSON header (the bytes after the length) -> its entries in file order and the metadata;
// then every entry checked against the data buffer of `data_size` bytes. Each violation is an
// mc::Error naming `path`, the tensor and what was expected.
void parse_header(std::string_view text, const std::string& path, std::vector<SafeTensorInfo>& entries,
                  SafeTensorsMetadata& metadata);
void validate(const std::string& path, std::vector<SafeTensorInfo>& entries, uint64_t data_size);

}  // namespace mc::io::safetensors_format
