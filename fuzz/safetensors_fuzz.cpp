// safetensors reader on arbitrary bytes as a file (SafeTensorsFile::open maps a path). A file
// the reader accepts must also survive our writer: every readable tensor, saved and opened
// again, comes back with the same name, dtype, shape, bytes and metadata.
#include <cstring>

#include "fuzz/fuzz_util.h"
#include "io/safetensors.h"

namespace {

using mc::fuzz::TempFile;

bool same_bytes(const mc::Tensor& a, const mc::Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && a.nbytes() == b.nbytes() &&
         (a.nbytes() == 0 || std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0);
}

void check(const std::string& path, const std::string& resaved) {
  const mc::io::SafeTensorsFile f = mc::io::SafeTensorsFile::open(path);
  const auto names = f.names();
  FUZZ_CHECK(names.size() == f.size(), names.size(), " names for ", f.size(), " tensors");
  mc::StateDict readable;
  for (const auto& name : names) {
    FUZZ_CHECK(f.contains(name), "names() lists '", name, "' but contains() does not");
    const mc::io::SafeTensorInfo& info = f.info(name);
    FUZZ_CHECK(info.name == name && info.begin <= info.end, "entry '", name, "'");
    mc::Tensor copy;
    try {
      copy = f.copy(name);
    } catch (const mc::Error&) {
      continue;  // a valid dtype MedConv does not read (U16, F8_E4M3, ...): a documented error
    }
    FUZZ_CHECK(copy.nbytes() == info.end - info.begin, "'", name, "' copies ", copy.nbytes(),
               " bytes of a ", info.end - info.begin, "-byte range");
    FUZZ_CHECK(copy.shape() == info.shape, "'", name, "' copy has another shape");
    const mc::Tensor view = mc::fuzz::must("view after copy", [&] { return f.view(name); });
    FUZZ_CHECK(same_bytes(view, copy), "'", name, "': view and copy differ");
    readable.emplace_back(name, copy);
  }
  const mc::io::SafeTensorsFile g = mc::fuzz::must("save and open again", [&] {
    mc::io::save_safetensors(resaved, readable, f.metadata());
    return mc::io::SafeTensorsFile::open(resaved);
  });
  FUZZ_CHECK(g.size() == readable.size(), "saved ", readable.size(), " tensors, read ", g.size());
  FUZZ_CHECK(g.metadata() == f.metadata(), "metadata changed in a save and open");
  for (const auto& [name_, t] : readable) {
    const std::string& name = name_;  // clang 14 lambdas cannot capture a structured binding
    FUZZ_CHECK(g.contains(name), "'", name, "' is missing after a save and open");
    const mc::Tensor back = mc::fuzz::must("reading a saved tensor", [&] { return g.copy(name); });
    FUZZ_CHECK(same_bytes(back, t), "'", name, "' changed in a save and open");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const TempFile file(".safetensors"), resaved(".resaved.safetensors");
  mc::fuzz::write_file(file.path, mc::fuzz::as_text(data, size));
  mc::fuzz::run([&] { check(file.path, resaved.path); });
  return 0;
}
