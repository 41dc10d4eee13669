// NIfTI reader on arbitrary bytes as a file (read_nifti takes a path). The reader detects gzip
// by its magic, so gzip'd seeds exercise the compressed path too; nifti_gz_fuzz.cpp compresses
// every input, so that header mutations reach the compressed path as well.
#include "fuzz/nifti_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const mc::fuzz::TempFile file(".nii");
  mc::fuzz::write_file(file.path, mc::fuzz::as_text(data, size));
  mc::fuzz::run([&] { mc::fuzz::read_and_check_nifti(file.path); });
  return 0;
}
