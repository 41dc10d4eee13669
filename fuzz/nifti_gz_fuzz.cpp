// NIfTI reader through its gzip path: each input is an uncompressed file that the harness
// gzips before reading it as .nii.gz, so the fuzzer mutates header and data, not zlib's
// bit stream. Unlike a .nii, a .nii.gz's size says nothing about how much data it holds.
#include <zlib.h>

#include <vector>

#include "fuzz/nifti_check.h"

namespace {

std::string gzip(std::string_view in) {
  z_stream zs{};
  FUZZ_CHECK(deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK,
             "deflateInit2");
  std::string out(deflateBound(&zs, uLong(in.size())), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = uInt(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = uInt(out.size());
  FUZZ_CHECK(deflate(&zs, Z_FINISH) == Z_STREAM_END, "deflate");
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const mc::fuzz::TempFile file(".nii.gz");
  mc::fuzz::write_file(file.path, gzip(mc::fuzz::as_text(data, size)));
  mc::fuzz::run([&] { mc::fuzz::read_and_check_nifti(file.path); });
  return 0;
}
