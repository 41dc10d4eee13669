// DICOM CT series -> the Volume the NIfTI reader returns (io/nifti.h), decoded by GDCM.
//
// Why GDCM (libgdcm-dev, GDCM 3.0): it decodes every compressed transfer syntax a CT archive
// sends (JPEG baseline/extended/lossless, JPEG-LS through CharLS, JPEG 2000 through OpenJPEG,
// RLE, deflate). Debian's DCMTK 3.6.7 has no JPEG 2000 decoder (OFFIS sells that codec as an
// add-on), and the real series in our test data is JPEG 2000.
//
// Voxel order and world convention of the returned Volume:
//   i = column index, along the row direction (ImageOrientationPatient[0..2]), fastest;
//   j = row index, along the column direction (ImageOrientationPatient[3..5]);
//   k = slice, sorted by ImagePositionPatient projected on the slice normal (row x column),
//       ascending: ITK's and SimpleITK's order, never file names or InstanceNumber.
//   data is f32 [nz, ny, nx] holding HU = stored * RescaleSlope + RescaleIntercept (per slice);
//   the affine maps (i, j, k) to RAS+ millimetres like a NIfTI sform: DICOM's LPS patient
//   coordinates with x and y negated. dcm2niix writes the same grid with the rows reversed;
//   conform_to (io/ct_source.h) maps a segmentation made on that grid onto ours.
//   Volume::datatype is the NIfTI code of the stored pixel type, Volume::version is 0 (DICOM).
//
// A series is the files sharing SeriesInstanceUID (files without one form one series of their
// own). Errors (mc::Error naming the folder, the series and a file): several series and none
// chosen (lists them), no image, a corrupt or undecodable file, multi-frame files, mixed image
// sizes / pixel spacings / orientations, duplicate positions, missing slices, uneven spacing,
// gantry tilt (positions drifting off the slice normal), colour images, a non-CT modality.
// Files that are not DICOM images (DICOMDIR, text, structured reports) are skipped and listed
// in DicomReadInfo::ignored; localizer images inside the series are left out with a note.
//
// Damaged files: io/dicom_file.cpp walks every file's structure before GDCM sees it, since
// Debian's GDCM is built with assertions (a cut header aborts the process) and reads a cut
// native pixel stream without complaint. A compressed pixel stream damaged inside (not cut)
// can still abort in GDCM's RLE or OpenJPEG's decoder: with 1-3 random bytes changed per file,
// 1 in 300 JPEG 2000 and 3 in 300 RLE fixture files did.
//
// Privacy: nothing this reader returns or throws carries patient-identifying attributes; it
// never reads them. Series UID, description, modality, series number and file names are shown.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "io/nifti.h"

namespace mc::io {

// False when the build had no GDCM (MC_WITH_DICOM off): then the readers below throw.
bool dicom_supported();

struct DicomOptions {
  std::string series_uid;                  // read this series when the folder holds several
  std::string series_key = "series_uid";   // the caller's name for that choice, for messages
  double spacing_rel_tol = 0.01;           // a slice gap may differ from the median gap by
  double spacing_abs_tol_mm = 0.01;        //   max(rel * median, abs) before it is an error
  double drift_tol_px = 0.1;  // positions may leave the line along the normal by this many pixels
  bool recursive = true;      // look into sub-folders (archive exports nest series)
};

// What one file says about itself (no patient attributes).
struct DicomSlice {
  std::string file;
  std::string series_uid, description, modality, image_type;
  std::string transfer_syntax;  // UID
  int64_t series_number = -1, instance_number = -1;
  int64_t rows = 0, cols = 0, frames = 1;
  int64_t samples = 1, bits_allocated = 16;
  std::string photometric = "MONOCHROME2";
  std::optional<std::array<double, 3>> position;     // ImagePositionPatient (LPS mm)
  std::optional<std::array<double, 6>> orientation;  // ImageOrientationPatient
  std::optional<std::array<double, 2>> pixel_spacing;  // as stored: row spacing, column spacing
  double slope = 1, intercept = 0;
  std::optional<double> slice_thickness, spacing_between_slices, gantry_tilt;
  bool modality_lut = false;  // a Modality LUT Sequence instead of rescale slope/intercept
};

struct DicomSeriesInfo {
  std::string uid, description, modality;
  int64_t series_number = -1;
  int64_t files = 0;
  std::string first_file;
  std::string str() const;  // 1.2.3 "CT Body 3.0" (CT, series 4, 20 files)
};

struct DicomReadInfo {
  DicomSeriesInfo series;
  int64_t slices = 0;
  double slice_spacing_mm = 0;
  std::vector<std::string> transfer_syntaxes;  // names, as GDCM spells them
  bool lossy = false;                          // some slice was lossy-compressed
  std::vector<std::string> ignored;            // "file: reason" for files that were skipped
  std::vector<std::string> notes;              // localizers left out, single slice, ...
  std::string summary() const;                 // one line for logs (no patient data)
};

// Reads the series in `dir` (a folder of slices). Throws mc::Error for anything above.
Volume read_dicom_series(const std::string& dir, const DicomOptions& opts = {},
                         DicomReadInfo* info = nullptr);
// The series in `dir`, without decoding pixels.
std::vector<DicomSeriesInfo> list_dicom_series(const std::string& dir,
                                               const DicomOptions& opts = {});
// Headers of every DICOM image under dir; skipped files go to `ignored` ("file: reason").
std::vector<DicomSlice> scan_dicom_folder(const std::string& dir, const DicomOptions& opts,
                                          std::vector<std::string>* ignored);

// ---- the steps that need no decoder (io/dicom_file.cpp, io/dicom_series.cpp), for tests ----

// Every data element of the file (nested sequences and pixel fragments too) must lie inside
// it: GDCM aborts on some truncated headers and pads truncated pixel data silently. Returns
// false for a file that is not DICOM (no "DICM" preamble and no plausible data set); throws
// mc::Error naming the file and the byte for a DICOM file that is truncated or corrupt.
struct DicomFileLayout {
  bool part10 = false;            // 128-byte preamble + "DICM" + file meta information
  std::string transfer_syntax;    // UID from the meta information ("" without one)
  std::string sop_class;          // MediaStorageSOPClassUID from the meta information
  int64_t pixel_data_bytes = -1;  // -1: no PixelData element
  bool encapsulated = false;      // compressed fragments rather than native pixels
  bool has_rows = false;          // the data set has Rows (0028,0010): an image
};
bool check_dicom_structure(const std::string& path, DicomFileLayout* layout = nullptr);

std::vector<DicomSeriesInfo> group_series(const std::vector<DicomSlice>& slices);
// The slices of the chosen series (localizers left out, with a note).
std::vector<DicomSlice> select_series(const std::vector<DicomSlice>& slices,
                                      const DicomOptions& opts, const std::string& dir,
                                      DicomSeriesInfo* chosen, std::vector<std::string>* notes);
struct SeriesGeometry {
  std::vector<size_t> order;  // slice k is slices[order[k]]
  Affine affine = identity_affine();  // RAS+, as described above
  double spacing_mm = 0;              // between slices
  std::vector<std::string> notes;
};
// Checks one series' slices and builds its grid; `where` names the series in errors.
SeriesGeometry series_geometry(const std::vector<DicomSlice>& slices, const DicomOptions& opts,
                               const std::string& where);

}  // namespace mc::io
