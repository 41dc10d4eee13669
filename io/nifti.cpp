#include "io/nifti.h"

#ifdef MC_HAVE_NIFTI
#include <nifti2_io.h>
#endif
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <mutex>
#include <sstream>

#include "io/atomic_file.h"
#include "io/bounds.h"

namespace mc::io {
namespace {

namespace fs = std::filesystem;

#ifdef MC_HAVE_NIFTI
static_assert(sizeof(nifti_1_header) == 348 && sizeof(nifti_2_header) == 540);

// nifti_clib reports problems on stderr; we check everything ourselves and throw instead.
void quiet_niftilib() {
  static std::once_flag once;
  std::call_once(once, [] { nifti_set_debug_level(0); });
}

// Reads .nii and .nii.gz alike. gzip goes through inflate() directly rather than gzread(),
// which accepts a stream whose trailer (CRC, length) is cut off once all data is out: here a
// stream must end with a verified trailer, or it is reported as truncated.
class Reader {
 public:
  explicit Reader(const std::string& path) : path_(path), buf_(size_t(1) << 20) {
    std::error_code ec;  // a symlink loop is this file's error, not a filesystem_error
    if (!fs::exists(path, ec) && !ec) MC_FAIL(path, ": no such file");
    f_ = std::fopen(path.c_str(), "rb");
    if (!f_) MC_FAIL(path, ": cannot open (", std::strerror(errno), ")");
    unsigned char magic[2] = {0, 0};
    gz_ = std::fread(magic, 1, 2, f_) == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    std::rewind(f_);
    if (gz_ && inflateInit2(&zs_, 15 + 16) != Z_OK) MC_FAIL(path, ": zlib initialisation failed");
  }
  ~Reader() {
    if (gz_) inflateEnd(&zs_);
    if (f_) std::fclose(f_);
  }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  bool compressed() const { return gz_; }

  // Reads up to n bytes; fewer only at a clean end of file.
  int64_t read(void* dst, int64_t n) {
    if (!gz_) return int64_t(std::fread(dst, 1, size_t(n), f_));
    auto* out = static_cast<unsigned char*>(dst);
    int64_t done = 0;
    while (done < n) {
      if (zs_.avail_in == 0 && !refill()) {
        if (member_done_) break;  // clean end after a complete gzip member
        MC_FAIL(path_, ": truncated gzip stream (the file ends inside the compressed data)");
      }
      if (member_done_) {  // more bytes after a member: the next member of a multi-member file
        inflateReset(&zs_);
        member_done_ = false;
      }
      const uInt chunk = uInt(std::min<int64_t>(n - done, int64_t(1) << 30));
      zs_.next_out = out + done;
      zs_.avail_out = chunk;
      const int ret = inflate(&zs_, Z_NO_FLUSH);
      done += chunk - zs_.avail_out;
      if (ret == Z_STREAM_END) member_done_ = true;
      else if (ret != Z_OK && ret != Z_BUF_ERROR)
        MC_FAIL(path_, ": corrupt gzip stream (zlib: ", zs_.msg ? zs_.msg : "error ", ret, ")");
    }
    return done;
  }
  void skip(int64_t n) {
    std::vector<char> scratch(static_cast<size_t>(std::min<int64_t>(n, 1 << 16)));
    while (n > 0) {
      const int64_t want = std::min<int64_t>(n, int64_t(scratch.size()));
      if (read(scratch.data(), want) != want) return;  // the data read reports the shortfall
      n -= want;
    }
  }
  // Decompresses to the end, so a missing or wrong trailer is found.
  void check_trailer() {
    if (!gz_) return;
    char scratch[4096];
    while (read(scratch, sizeof scratch) > 0) {}
  }

 private:
  bool refill() {
    zs_.next_in = buf_.data();
    zs_.avail_in = uInt(std::fread(buf_.data(), 1, buf_.size(), f_));
    if (std::ferror(f_)) MC_FAIL(path_, ": read error (", std::strerror(errno), ")");
    return zs_.avail_in > 0;
  }
  std::string path_;
  FILE* f_ = nullptr;
  bool gz_ = false, member_done_ = false;
  z_stream zs_{};
  std::vector<unsigned char> buf_;
};

std::string dims_str(const std::vector<int64_t>& d) {
  std::string s;
  for (size_t i = 0; i < d.size(); ++i) s += (i ? "x" : "") + std::to_string(d[i]);
  return s;
}

// Converts n raw voxels of NIfTI type T to float32, applying value * slope + inter.
template <class T>
void convert(const char* raw, float* out, int64_t n, double slope, double inter, bool scale) {
  const T* src = reinterpret_cast<const T*>(raw);
  if (!scale) {
    for (int64_t i = 0; i < n; ++i) out[i] = float(src[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = float(double(src[i]) * slope + inter);
  }
}

void convert_any(int datatype, const char* raw, float* out, int64_t n, double slope,
                 double inter, bool scale) {
  switch (datatype) {
    case DT_UINT8: return convert<uint8_t>(raw, out, n, slope, inter, scale);
    case DT_INT8: return convert<int8_t>(raw, out, n, slope, inter, scale);
    case DT_INT16: return convert<int16_t>(raw, out, n, slope, inter, scale);
    case DT_UINT16: return convert<uint16_t>(raw, out, n, slope, inter, scale);
    case DT_INT32: return convert<int32_t>(raw, out, n, slope, inter, scale);
    case DT_UINT32: return convert<uint32_t>(raw, out, n, slope, inter, scale);
    case DT_INT64: return convert<int64_t>(raw, out, n, slope, inter, scale);
    case DT_UINT64: return convert<uint64_t>(raw, out, n, slope, inter, scale);
    case DT_FLOAT32: return convert<float>(raw, out, n, slope, inter, scale);
    case DT_FLOAT64: return convert<double>(raw, out, n, slope, inter, scale);
  }
}

int bytes_per_voxel(int datatype) {
  switch (datatype) {
    case DT_UINT8: case DT_INT8: return 1;
    case DT_INT16: case DT_UINT16: return 2;
    case DT_INT32: case DT_UINT32: case DT_FLOAT32: return 4;
    case DT_INT64: case DT_UINT64: case DT_FLOAT64: return 8;
  }
  return 0;  // complex, RGB, float128, binary: not CT data
}

Affine from_dmat(const nifti_dmat44& m) {
  Affine a;
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) a[r][c] = m.m[r][c];
  return a;
}

// Header extensions beyond 2^40 bytes are not plausible; the bound keeps offset + size in int64.
constexpr int64_t kMaxVoxOffset = int64_t(1) << 40;
// deflate's largest ratio is 1032:1 (zlib's FAQ); with gzip's headers, members and slack a .gz
// file of N bytes holds less than 1040 N + 1 MiB: a header claiming more is refused unread.
constexpr int64_t kMaxGzipRatio = 1040;

// The header fields we use, whichever NIfTI version they came from.
struct Header {
  int version = 1;
  bool swapped = false;  // the file's byte order is not ours
  int64_t header_bytes = 348;
  std::vector<int64_t> dims;
  int datatype = 0;
  int64_t vox_offset = 0;
  double slope = 0, inter = 0;
  Affine affine;
};

template <class H>
void check_dims(const std::string& path, const H& h, Header& out) {
  const int64_t nd = h.dim[0];
  if (nd < 1 || nd > 7) MC_FAIL(path, ": dim[0] = ", nd, " is not in 1..7");
  for (int64_t d = 1; d <= nd; ++d) {
    if (h.dim[d] < 1) MC_FAIL(path, ": dim[", d, "] = ", h.dim[d], " (must be >= 1)");
    out.dims.push_back(h.dim[d]);
  }
}

Header parse_header(const std::string& path, Reader& in) {
  quiet_niftilib();
  union {
    nifti_1_header h1;
    nifti_2_header h2;
    char bytes[540];
  } u;
  std::memset(&u, 0, sizeof u);
  if (in.read(u.bytes, 4) != 4) MC_FAIL(path, ": file too short for a NIfTI header");
  int32_t size = u.h1.sizeof_hdr, swapped_size = size;
  nifti_swap_4bytes(1, &swapped_size);
  const bool swap = size != 348 && size != 540;
  if (swap) size = swapped_size;
  if (size != 348 && size != 540)
    MC_FAIL(path, ": not a NIfTI file (sizeof_hdr = ", u.h1.sizeof_hdr, ", expected 348 or 540)");
  if (in.read(u.bytes + 4, size - 4) != size - 4) MC_FAIL(path, ": truncated NIfTI header");

  Header h;
  h.version = size == 348 ? 1 : 2;
  h.swapped = swap;
  h.header_bytes = size;
  nifti_image* nim = nullptr;
  if (h.version == 1) {
    if (swap) nifti_swap_as_nifti1(&u.h1);
    const char* m = u.h1.magic;
    if (std::memcmp(m, "ni1", 4) == 0)
      MC_FAIL(path, ": two-file NIfTI (.hdr/.img) is not supported; convert to .nii");
    if (std::memcmp(m, "n+1", 4) != 0)
      MC_FAIL(path, ": wrong magic (not \"n+1\"): this is not a single-file NIfTI-1 image");
    check_dims(path, u.h1, h);
    h.datatype = u.h1.datatype;
    // A float: a cast of NaN, inf or >= 2^63 would be undefined, a fraction silently truncated.
    const float off = u.h1.vox_offset;
    if (!std::isfinite(off) || off < 0 || off > float(kMaxVoxOffset) || off != std::floor(off))
      MC_FAIL(path, ": vox_offset ", off, " is not a whole number of bytes in 0..", kMaxVoxOffset);
    h.vox_offset = int64_t(off);
    h.slope = u.h1.scl_slope;
    h.inter = u.h1.scl_inter;
    nim = nifti_convert_n1hdr2nim(u.h1, path.c_str());
  } else {
    if (swap) nifti_swap_as_nifti2(&u.h2);
    if (std::memcmp(u.h2.magic, "n+2\0\r\n\032\n", 8) != 0)
      MC_FAIL(path, ": wrong magic (not \"n+2\"): this is not a single-file NIfTI-2 image");
    check_dims(path, u.h2, h);
    h.datatype = u.h2.datatype;
    h.vox_offset = u.h2.vox_offset;
    if (h.vox_offset < 0 || h.vox_offset > kMaxVoxOffset)
      MC_FAIL(path, ": vox_offset ", h.vox_offset, " is not in 0..", kMaxVoxOffset);
    h.slope = u.h2.scl_slope;
    h.inter = u.h2.scl_inter;
    nim = nifti_convert_n2hdr2nim(u.h2, path.c_str());
  }
  if (!nim) MC_FAIL(path, ": nifti_clib rejected the header");
  // nifti_clib already chose: qto_xyz is the qform, or pixdim scaling when qform_code <= 0.
  h.affine = from_dmat(nim->sform_code > 0 ? nim->sto_xyz : nim->qto_xyz);
  nifti_image_free(nim);

  if (bytes_per_voxel(h.datatype) == 0)
    MC_FAIL(path, ": unsupported datatype ", h.datatype, " (", nifti_datatype_string(h.datatype),
            "); supported: uint8/16/32/64, int8/16/32/64, float32, float64");
  if (h.vox_offset == 0) h.vox_offset = h.header_bytes + 4;
  if (h.vox_offset < h.header_bytes)
    MC_FAIL(path, ": vox_offset ", h.vox_offset, " lies inside the header");
  return h;
}
#endif  // MC_HAVE_NIFTI

}  // namespace

// ---------------------------------------------------------------- reading

#ifdef MC_HAVE_NIFTI
bool nifti_supported() { return true; }

Volume read_nifti(const std::string& path) {
  Reader in(path);
  const Header h = parse_header(path, in);

  Volume v;
  v.path = path;
  v.version = h.version;
  v.datatype = h.datatype;
  v.affine = h.affine;
  v.dims = h.dims;
  while (v.dims.size() > 1 && v.dims.back() == 1) v.dims.pop_back();

  const int nbyper = bytes_per_voxel(h.datatype);
  int64_t nvox = 1;
  for (int64_t d : v.dims) {
    if (nvox > (int64_t(1) << 57) / d)
      MC_FAIL(path, ": dims ", dims_str(h.dims), " are too large");
    nvox *= d;
  }
  const int64_t nbytes = nvox * nbyper;
  const std::string what = dims_str(h.dims) + " " + nifti_datatype_string(h.datatype);
  // Bounded before allocating: nbytes < 2^60 and vox_offset <= 2^40, so the sums cannot overflow.
  const int64_t file_bytes = int64_t(fs::file_size(path));
  if (!in.compressed()) {
    if (file_bytes < h.vox_offset + nbytes)
      MC_FAIL(path, ": dims don't match the data size: header says ", what, " (", nbytes,
              " bytes from offset ", h.vox_offset, ") but the file has ", file_bytes, " bytes");
  } else if (h.vox_offset + nbytes > kMaxGzipRatio * file_bytes + (int64_t(1) << 20)) {
    MC_FAIL(path, ": dims don't match the data size: header says ", what, " (", nbytes,
            " bytes from offset ", h.vox_offset, ") but a gzip file of ", file_bytes,
            " bytes cannot hold more than ", kMaxGzipRatio * file_bytes + (int64_t(1) << 20));
  }
  // The raw bytes and the float32 volume live at the same time.
  check_allocation(path, nbytes + nvox * int64_t(sizeof(float)), "the voxels of " + what);
  in.skip(h.vox_offset - h.header_bytes);  // header extensions
  std::vector<char> raw(static_cast<size_t>(nbytes));
  const int64_t got = in.read(raw.data(), nbytes);
  if (got != nbytes)
    MC_FAIL(path, ": image data ends after ", got, " of ", nbytes, " bytes (header says ", what,
            "): the file is truncated or its dims don't match the data size");
  in.check_trailer();
  if (h.swapped && nbyper > 1) nifti_swap_Nbytes(nvox, nbyper, raw.data());

  // Scaling policy: nibabel's (slope finite and non-zero; then the intercept must be finite).
  const bool scale = std::isfinite(h.slope) && h.slope != 0 && !(h.slope == 1 && h.inter == 0);
  if (scale && !std::isfinite(h.inter))
    MC_FAIL(path, ": scl_slope is ", h.slope, " but scl_inter is not finite");
  v.slope = scale ? h.slope : 1.0;
  v.inter = scale ? h.inter : 0.0;

  Shape shape(v.dims.rbegin(), v.dims.rend());
  v.data = Tensor::empty(shape);
  convert_any(h.datatype, raw.data(), v.ptr(), nvox, v.slope, v.inter, scale);
  return v;
}

Volume read_volume(const std::string& path) {
  Volume v = read_nifti(path);
  if (v.dims.size() > 3)
    MC_FAIL(path, ": is a ", v.dims.size(), "-D image (", dims_str(v.dims),
            "); a 3-D volume is needed");
  while (v.dims.size() < 3) v.dims.push_back(1);
  v.data = v.data.view({v.nz(), v.ny(), v.nx()});
  return v;
}

// ---------------------------------------------------------------- writing

namespace {

template <class T>
std::vector<char> encode_integer(const Volume& v, const std::string& path, const char* type) {
  const int64_t n = v.numel();
  std::vector<char> out(size_t(n) * sizeof(T));
  T* dst = reinterpret_cast<T*>(out.data());
  const float* src = v.ptr();
  for (int64_t i = 0; i < n; ++i) {
    const double r = std::nearbyint(double(src[i]));
    if (!(r >= double(std::numeric_limits<T>::min()) && r <= double(std::numeric_limits<T>::max())))
      MC_FAIL(path, ": value ", src[i], " at voxel ", i, " does not fit ", type);
    dst[i] = T(r);
  }
  return out;
}

// Header then voxels into an atomic file (io/atomic_file.h), gzip-compressed (level 6, as
// gzopen's "wb6") when the name ends in .gz: zlib's streaming deflate, as in its zpipe.c.
void write_bytes(const std::string& path, const char* a, size_t na, const char* b, size_t nb) {
  AtomicFile f(path);
  if (!path.ends_with(".gz")) {
    f.write(a, na), f.write(b, nb), f.commit();
    return;
  }
  z_stream z{};
  MC_CHECK(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK, path, ": zlib cannot start");
  const std::unique_ptr<z_stream, int (*)(z_stream*)> end(&z, deflateEnd);
  std::vector<unsigned char> out(size_t(1) << 20);
  const std::pair<const char*, size_t> parts[] = {{a, na}, {b, nb}};
  for (size_t i = 0; i < 2; ++i) {
    auto [p, n] = parts[i];
    do {
      const size_t chunk = std::min<size_t>(n, size_t(1) << 30);
      z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(p)), z.avail_in = uInt(chunk);
      p += chunk, n -= chunk;
      const int flush = i == 1 && n == 0 ? Z_FINISH : Z_NO_FLUSH;
      do {
        z.next_out = out.data(), z.avail_out = uInt(out.size());
        MC_CHECK(deflate(&z, flush) != Z_STREAM_ERROR, path, ": zlib failed while compressing");
        f.write(out.data(), out.size() - z.avail_out);
      } while (z.avail_out == 0);
    } while (n > 0);
  }
  f.commit();
}

}  // namespace

void write_nifti(const std::string& path, const Volume& v, NiftiType type) {
  quiet_niftilib();
  MC_CHECK(!v.dims.empty() && v.dims.size() <= 7, path, ": cannot write a ", v.dims.size(),
           "-D image");
  MC_CHECK(v.data.defined() && v.data.dtype() == DType::F32 && !v.data.is_cuda() &&
               v.data.numel() == v.numel(),
           path, ": volume data must be a CPU f32 tensor of ", dims_str(v.dims), " voxels");
  nifti_1_header h;
  std::memset(&h, 0, sizeof h);
  h.sizeof_hdr = 348;
  h.dim[0] = short(v.dims.size());
  for (int d = 1; d <= 7; ++d) {
    const int64_t n = d <= int(v.dims.size()) ? v.dims[d - 1] : 1;
    MC_CHECK(n <= 32767, path, ": dim ", n, " is too large for NIfTI-1");
    h.dim[d] = short(n);
    h.pixdim[d] = 1;
  }
  std::vector<char> data;
  switch (type) {
    case NiftiType::F32:
      h.datatype = DT_FLOAT32, h.bitpix = 32;
      data.assign(reinterpret_cast<const char*>(v.ptr()),
                  reinterpret_cast<const char*>(v.ptr() + v.numel()));
      break;
    case NiftiType::U8:
      h.datatype = DT_UINT8, h.bitpix = 8;
      data = encode_integer<uint8_t>(v, path, "uint8");
      break;
    case NiftiType::I16:
      h.datatype = DT_INT16, h.bitpix = 16;
      data = encode_integer<int16_t>(v, path, "int16");
      break;
  }
  nifti_dmat44 m;
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) m.m[r][c] = v.affine[r][c];
  double qb, qc, qd, qx, qy, qz, dx, dy, dz, qfac;
  nifti_dmat44_to_quatern(m, &qb, &qc, &qd, &qx, &qy, &qz, &dx, &dy, &dz, &qfac);
  const auto sp = v.spacing();
  h.pixdim[0] = float(qfac);
  for (int d = 0; d < 3; ++d) h.pixdim[d + 1] = float(sp[d]);
  h.vox_offset = 352;
  h.scl_slope = 1;
  h.xyzt_units = NIFTI_UNITS_MM;
  h.qform_code = h.sform_code = NIFTI_XFORM_SCANNER_ANAT;
  h.quatern_b = float(qb), h.quatern_c = float(qc), h.quatern_d = float(qd);
  h.qoffset_x = float(qx), h.qoffset_y = float(qy), h.qoffset_z = float(qz);
  for (int c = 0; c < 4; ++c) {
    h.srow_x[c] = float(v.affine[0][c]);
    h.srow_y[c] = float(v.affine[1][c]);
    h.srow_z[c] = float(v.affine[2][c]);
  }
  std::strncpy(h.descrip, "MedConv", sizeof h.descrip);
  std::memcpy(h.magic, "n+1", 4);

  char head[352] = {};  // header + 4 zero bytes: "no extensions"
  std::memcpy(head, &h, sizeof h);
  write_bytes(path, head, sizeof head, data.data(), data.size());
}

#else  // a build without nifti_clib (MC_WITH_NIFTI=OFF)

namespace {
[[noreturn]] void no_nifti(const std::string& path, const char* what) {
  MC_FAIL(path, ": cannot ", what, " NIfTI: this program was built without nifti_clib "
          "(configured with MC_WITH_NIFTI=OFF; rebuild with libnifti2-dev installed)");
}
}  // namespace

bool nifti_supported() { return false; }
Volume read_nifti(const std::string& path) { no_nifti(path, "read"); }
Volume read_volume(const std::string& path) { no_nifti(path, "read"); }
void write_nifti(const std::string& path, const Volume&, NiftiType) { no_nifti(path, "write"); }

#endif  // MC_HAVE_NIFTI

}  // namespace mc::io
