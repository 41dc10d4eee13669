// "A CT": a NIfTI file (.nii, .nii.gz) or a folder holding a DICOM series, read into the same
// 3-D Volume (io/nifti.h: HU as f32, affine to RAS+ mm). The one call programs use for scans.
#pragma once
#include <string>

#include "io/dicom.h"
#include "io/nifti.h"

namespace mc::io {

enum class CtFormat { Nifti, Dicom };
const char* ct_format_name(CtFormat f);  // "nifti", "dicom"

struct CtSourceInfo {
  CtFormat format = CtFormat::Nifti;
  DicomReadInfo dicom;  // filled for a DICOM folder
  std::string summary;  // one line for logs: the file, or the series (never patient data)
};

// A directory is a DICOM series; a file ending in .nii or .nii.gz is NIfTI. Anything else is
// an error that says what is accepted (a single DICOM slice: its folder is the series).
CtFormat ct_format(const std::string& path);
// True when ct_format() would accept the path (it exists and is a folder or a NIfTI name).
bool is_ct_source(const std::string& path);

Volume read_ct(const std::string& path, const DicomOptions& dicom = {},
               CtSourceInfo* info = nullptr);

// v with its voxel axes permuted and flipped so that it lies on ref's grid (same dims, affines
// within tol_mm at every corner), e.g. a segmentation that TotalSegmentator made from dcm2niix's
// conversion (rows reversed) onto the CT read from the DICOM folder. No interpolation: when the
// grids differ by more than an axis order, it is an error naming both.
Volume conform_to(const Volume& v, const Volume& ref, double tol_mm = 1e-3);

}  // namespace mc::io
