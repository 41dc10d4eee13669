// mc_prep as a library call: its command line (CLI11) and what it runs, so tests run it
// without a process. The work itself is io/prep.h's (and io/synthetic.h's).
#pragma once
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "io/prep.h"

namespace mc::pipeline {

struct PrepCommand {
  bool help = false;
  int64_t synthetic = 0;  // > 0: generate this many synthetic subjects into prep.out_dir
  int64_t synthetic_size = 64;
  std::string synthetic_binary;  // "A,B": also a class column, A for T <= -2.5, else B
  std::string config;                  // --config: every setting from the run config's data.*
  std::vector<std::string> overrides;  // key=value, with --config
  // --to-nifti CT OUT.nii.gz: writes the CT as read (a DICOM series folder: HU as float32 on
  // the reader's grid, io/dicom.h) and nothing else. Empty: not asked.
  std::string to_nifti_ct, to_nifti_out;
  io::PrepOptions prep;
};
// --opt VALUE or --opt=VALUE; unknown options and bad values are errors (mc::Error) naming them.
PrepCommand parse_prep_command(const std::vector<std::string>& args);
std::string prep_usage();
// Prepares (or generates) as the command says, printing the summary on `out`. Returns the exit
// status: 0 when at least one subject was prepared, 1 when none. Problems with the run itself
// (bad options, unreadable labels) throw mc::Error.
int run_prep_command(const PrepCommand& cmd, std::ostream& out);

}  // namespace mc::pipeline
