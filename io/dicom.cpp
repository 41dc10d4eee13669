// DICOM files through GDCM: folder scan (headers only), pixel decoding, the series reader.
// Without GDCM (MC_WITH_DICOM off or not found) the readers throw; io/dicom_series.cpp's
// grouping and geometry are built either way.
#include "io/dicom.h"

#include <filesystem>

#if MC_HAVE_DICOM
#include <gdcmImageReader.h>
#include <gdcmReader.h>
#include <gdcmStringFilter.h>
#include <gdcmTrace.h>
#include <gdcmUIDs.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#endif

namespace mc::io {

namespace fs = std::filesystem;

#if !MC_HAVE_DICOM

bool dicom_supported() { return false; }

namespace {
[[noreturn]] void no_dicom(const std::string& dir) {
  MC_FAIL(dir, ": cannot read DICOM: built without DICOM support (GDCM); install libgdcm-dev "
          "and rebuild, or convert the series to NIfTI (dcm2niix)");
}
}  // namespace

Volume read_dicom_series(const std::string& dir, const DicomOptions&, DicomReadInfo*) {
  no_dicom(dir);
}
std::vector<DicomSeriesInfo> list_dicom_series(const std::string& dir, const DicomOptions&) {
  no_dicom(dir);
}
std::vector<DicomSlice> scan_dicom_folder(const std::string& dir, const DicomOptions&,
                                          std::vector<std::string>*) {
  no_dicom(dir);
}

#else

bool dicom_supported() { return true; }

namespace {

// GDCM prints warnings about odd files on stderr; we report problems ourselves.
void quiet_gdcm() {
  static std::once_flag once;
  std::call_once(once, [] {
    gdcm::Trace::SetDebug(false);
    gdcm::Trace::SetWarning(false);
    gdcm::Trace::SetError(false);
  });
}

std::string trim(std::string s) {
  const char* ws = " \t\r\n";
  s.erase(0, s.find_first_not_of(ws));
  const size_t e = s.find_last_not_of(ws);
  s.erase(e == std::string::npos ? 0 : e + 1);
  while (!s.empty() && s.back() == '\0') s.pop_back();
  return s;
}

std::vector<double> numbers(const std::string& file, const char* what, const std::string& v) {
  std::vector<double> out;
  size_t at = 0;
  while (at <= v.size()) {
    size_t end = v.find('\\', at);
    if (end == std::string::npos) end = v.size();
    const std::string part = trim(v.substr(at, end - at));
    char* stop = nullptr;
    const double x = std::strtod(part.c_str(), &stop);
    if (part.empty() || *stop != '\0' || !std::isfinite(x))
      MC_FAIL(file, ": ", what, " \"", v, "\" is not a list of numbers");
    out.push_back(x);
    at = end + 1;
  }
  return out;
}

template <size_t N>
std::optional<std::array<double, N>> fixed(const std::string& file, const char* what,
                                           const std::string& v) {
  if (v.empty()) return std::nullopt;
  const auto x = numbers(file, what, v);
  if (x.size() != N) MC_FAIL(file, ": ", what, " \"", v, "\" has ", x.size(), " values, not ", N);
  std::array<double, N> a;
  std::copy(x.begin(), x.end(), a.begin());
  return a;
}

std::optional<double> one(const std::string& file, const char* what, const std::string& v) {
  if (v.empty()) return std::nullopt;
  return numbers(file, what, v)[0];  // multi-valued DS (rare): the first value
}

std::string ts_name(const std::string& uid) {
  gdcm::UIDs u;
  if (!uid.empty() && u.SetFromUID(uid.c_str()) && u.GetName()) return u.GetName();
  return uid.empty() ? "unknown transfer syntax" : uid;
}

// Reads the header of one file. Returns false (with the reason) for files that are not DICOM
// images; throws for a file that claims to be DICOM but cannot be parsed.
bool read_header(const std::string& path, DicomSlice& s, std::string& why) {
  // GDCM sees only files whose structure is intact and that hold an image with pixel data.
  DicomFileLayout layout;
  if (!check_dicom_structure(path, &layout)) {
    why = "not a DICOM file";
    return false;
  }
  if (layout.sop_class == "1.2.840.10008.1.3.10") {
    why = "DICOMDIR (a directory of the media, not an image)";
    return false;
  }
  if (!layout.has_rows) {
    why = "DICOM without an image (no Rows)";
    return false;
  }
  if (layout.pixel_data_bytes < 0) MC_FAIL(path, ": a DICOM image without pixel data (truncated?)");
  gdcm::Reader r;
  r.SetFileName(path.c_str());
  if (!r.ReadUpToTag(gdcm::Tag(0x7fe0, 0x0010)))
    MC_FAIL(path, ": unreadable DICOM file (GDCM cannot parse it)");
  const gdcm::File& file = r.GetFile();
  const gdcm::DataSet& ds = file.GetDataSet();
  if (!ds.FindDataElement(gdcm::Tag(0x0028, 0x0011)))
    MC_FAIL(path, ": a DICOM image without Columns (0028,0011)");
  gdcm::StringFilter sf;
  sf.SetFile(file);
  auto get = [&](uint16_t group, uint16_t element) {
    const gdcm::Tag t(group, element);
    return ds.FindDataElement(t) ? trim(sf.ToString(t)) : std::string();
  };
  auto integer = [&](uint16_t group, uint16_t element, const char* what, int64_t dflt) {
    const auto v = one(path, what, get(group, element));
    return v ? int64_t(std::llround(*v)) : dflt;
  };
  s.file = path;
  s.series_uid = get(0x0020, 0x000e);
  s.description = get(0x0008, 0x103e);
  s.modality = get(0x0008, 0x0060);
  s.image_type = get(0x0008, 0x0008);
  const char* ts = file.GetHeader().GetDataSetTransferSyntax().GetString();
  s.transfer_syntax = ts ? trim(ts) : std::string();
  s.series_number = integer(0x0020, 0x0011, "SeriesNumber", -1);
  s.instance_number = integer(0x0020, 0x0013, "InstanceNumber", -1);
  s.rows = integer(0x0028, 0x0010, "Rows", 0);
  s.cols = integer(0x0028, 0x0011, "Columns", 0);
  s.frames = integer(0x0028, 0x0008, "NumberOfFrames", 1);
  s.samples = integer(0x0028, 0x0002, "SamplesPerPixel", 1);
  s.bits_allocated = integer(0x0028, 0x0100, "BitsAllocated", 16);
  const std::string photometric = get(0x0028, 0x0004);
  if (!photometric.empty()) s.photometric = photometric;
  s.position = fixed<3>(path, "ImagePositionPatient", get(0x0020, 0x0032));
  s.orientation = fixed<6>(path, "ImageOrientationPatient", get(0x0020, 0x0037));
  s.pixel_spacing = fixed<2>(path, "PixelSpacing", get(0x0028, 0x0030));
  s.slope = one(path, "RescaleSlope", get(0x0028, 0x1053)).value_or(1.0);
  s.intercept = one(path, "RescaleIntercept", get(0x0028, 0x1052)).value_or(0.0);
  s.slice_thickness = one(path, "SliceThickness", get(0x0018, 0x0050));
  s.spacing_between_slices = one(path, "SpacingBetweenSlices", get(0x0018, 0x0088));
  s.gantry_tilt = one(path, "GantryDetectorTilt", get(0x0018, 0x1120));
  s.modality_lut = ds.FindDataElement(gdcm::Tag(0x0028, 0x3000)) &&
                   !ds.FindDataElement(gdcm::Tag(0x0028, 0x1053));
  const int64_t need = (s.rows * s.cols * s.frames * s.samples * s.bits_allocated + 7) / 8;
  if (!layout.encapsulated && layout.pixel_data_bytes < need)
    MC_FAIL(path, ": truncated DICOM file: its pixel data holds ", layout.pixel_data_bytes,
            " bytes, a ", s.cols, " x ", s.rows, " x ", s.frames, " image of ", s.bits_allocated,
            "-bit pixels needs ", need);
  return true;
}

// Stored integers -> HU, keeping only the BitsStored bits (sign-extended when signed).
template <class T>
void to_hu(const char* raw, float* out, int64_t n, int bits_stored, bool is_signed, double slope,
           double inter) {
  const int shift = int(sizeof(T) * 8) - bits_stored;
  for (int64_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, raw + i * int64_t(sizeof(T)), sizeof(T));
    int64_t x;
    if (is_signed) {
      x = int64_t(std::make_signed_t<T>(std::make_unsigned_t<T>(v) << shift)) >> shift;
    } else {
      x = int64_t(std::make_unsigned_t<T>(std::make_unsigned_t<T>(v) << shift) >> shift);
    }
    out[i] = float(double(x) * slope + inter);
  }
}

struct Decoded {
  std::string ts;  // transfer syntax name
  bool lossy = false, is_signed = false;
  int bits_allocated = 16;
};

Decoded decode_slice(const DicomSlice& s, const std::string& where, float* out) {
  const std::string f = where + ", file " + fs::path(s.file).filename().string();
  gdcm::ImageReader r;
  r.SetFileName(s.file.c_str());
  if (!r.Read())
    MC_FAIL(f, ": cannot read its image (", ts_name(s.transfer_syntax),
            "): the file is truncated, corrupt or uses an unsupported encoding");
  const gdcm::Image& im = r.GetImage();
  const gdcm::TransferSyntax tsx = im.GetTransferSyntax();
  Decoded info;
  info.ts = ts_name(tsx.GetString() ? tsx.GetString() : s.transfer_syntax);
  info.lossy = im.IsLossy();
  const unsigned* d = im.GetDimensions();
  if (d[0] != unsigned(s.cols) || d[1] != unsigned(s.rows) ||
      (im.GetNumberOfDimensions() > 2 && d[2] > 1))
    MC_FAIL(f, ": decoded image is ", d[0], " x ", d[1], " x ",
            im.GetNumberOfDimensions() > 2 ? d[2] : 1, ", the header says ", s.cols, " x ",
            s.rows, " x 1");
  const gdcm::PixelFormat pf = im.GetPixelFormat();
  if (pf.GetSamplesPerPixel() != 1)
    MC_FAIL(f, ": ", pf.GetSamplesPerPixel(), " samples per pixel; CT slices have one");
  const int alloc = pf.GetBitsAllocated(), stored = pf.GetBitsStored();
  const bool is_signed = pf.GetPixelRepresentation() == 1;
  if (!(alloc == 8 || alloc == 16 || alloc == 32) || stored < 1 || stored > alloc ||
      pf.GetHighBit() != stored - 1)
    MC_FAIL(f, ": unsupported pixel layout (BitsAllocated ", alloc, ", BitsStored ", stored,
            ", HighBit ", pf.GetHighBit(), ")");
  const int64_t n = s.rows * s.cols;
  const size_t need = size_t(n) * size_t(alloc / 8);
  std::vector<char> buf(im.GetBufferLength());
  if (buf.size() < need || !im.GetBuffer(buf.data()))
    MC_FAIL(f, ": cannot decode the pixel data (", info.ts,
            "): truncated or corrupt data, or no GDCM codec for it");
  switch (alloc) {
    case 8: to_hu<uint8_t>(buf.data(), out, n, stored, is_signed, s.slope, s.intercept); break;
    case 16: to_hu<uint16_t>(buf.data(), out, n, stored, is_signed, s.slope, s.intercept); break;
    case 32: to_hu<uint32_t>(buf.data(), out, n, stored, is_signed, s.slope, s.intercept); break;
  }
  info.is_signed = is_signed;
  info.bits_allocated = alloc;
  return info;
}

int nifti_code(int alloc, bool is_signed) {
  switch (alloc) {
    case 8: return is_signed ? 256 : 2;
    case 16: return is_signed ? 4 : 512;
    default: return is_signed ? 8 : 768;
  }
}

}  // namespace

std::vector<DicomSlice> scan_dicom_folder(const std::string& dir, const DicomOptions& opts,
                                          std::vector<std::string>* ignored) {
  quiet_gdcm();
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) MC_FAIL(dir, ": not a folder (a DICOM series is a folder)");
  std::vector<std::string> files;
  auto add = [&](const fs::directory_entry& e) {
    if (e.is_regular_file()) files.push_back(e.path().string());
  };
  if (opts.recursive) {
    for (const auto& e : fs::recursive_directory_iterator(dir)) add(e);
  } else {
    for (const auto& e : fs::directory_iterator(dir)) add(e);
  }
  std::sort(files.begin(), files.end());
  std::vector<DicomSlice> out;
  for (const auto& f : files) {
    DicomSlice s;
    std::string why;
    if (read_header(f, s, why)) out.push_back(std::move(s));
    else if (ignored) ignored->push_back(fs::relative(f, dir, ec).string() + ": " + why);
  }
  return out;
}

std::vector<DicomSeriesInfo> list_dicom_series(const std::string& dir, const DicomOptions& opts) {
  return group_series(scan_dicom_folder(dir, opts, nullptr));
}

Volume read_dicom_series(const std::string& dir, const DicomOptions& opts, DicomReadInfo* info) {
  DicomReadInfo local;
  DicomReadInfo& ri = info ? *info : local;
  ri = DicomReadInfo{};
  const auto all = scan_dicom_folder(dir, opts, &ri.ignored);
  if (all.empty()) {
    std::string why;
    for (size_t i = 0; i < ri.ignored.size() && i < 5; ++i) why += "\n  " + ri.ignored[i];
    MC_FAIL(dir, ": no DICOM images in this folder",
            ri.ignored.empty() ? std::string(" (it holds no files)")
                               : " (" + std::to_string(ri.ignored.size()) + " file(s) skipped:" +
                                     why + ")");
  }
  const auto slices = select_series(all, opts, dir, &ri.series, &ri.notes);
  const std::string where = dir + ", series " + ri.series.str();
  const SeriesGeometry g = series_geometry(slices, opts, where);
  ri.notes.insert(ri.notes.end(), g.notes.begin(), g.notes.end());

  const int64_t nx = slices[0].cols, ny = slices[0].rows, nz = int64_t(slices.size());
  Volume v = make_volume(nx, ny, nz, g.affine);
  v.path = dir;
  v.version = 0;
  std::set<std::string> tss;
  std::set<std::pair<double, double>> rescales;
  for (int64_t k = 0; k < nz; ++k) {
    const DicomSlice& s = slices[g.order[size_t(k)]];
    const Decoded d = decode_slice(s, where, v.ptr() + k * nx * ny);
    tss.insert(d.ts);
    ri.lossy = ri.lossy || d.lossy;
    rescales.insert({s.slope, s.intercept});
    if (k == 0) v.datatype = nifti_code(d.bits_allocated, d.is_signed);
  }
  if (rescales.size() == 1) {
    v.slope = rescales.begin()->first;
    v.inter = rescales.begin()->second;
  } else {
    v.slope = v.inter = std::nan("");
    ri.notes.push_back("rescale slope/intercept vary per slice (" +
                       std::to_string(rescales.size()) + " pairs), applied per slice");
  }
  ri.transfer_syntaxes.assign(tss.begin(), tss.end());
  ri.slices = nz;
  ri.slice_spacing_mm = g.spacing_mm;
  if (ri.lossy) ri.notes.push_back("lossy-compressed pixel data: HU values are approximate");
  return v;
}

#endif

}  // namespace mc::io
