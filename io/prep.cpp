#include "io/prep.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "io/atomic_file.h"
#include "io/cache.h"
#include "io/csv.h"
#include "io/progress.h"
#include "io/text.h"

namespace mc::io {
namespace {

namespace fs = std::filesystem;

// The first candidate that is a regular file, or that exists but cannot be examined (a
// symlink loop, no permission): reading it then fails with that subject's reason, instead of a
// filesystem_error ending the whole run or a misleading "missing".
std::string first_existing(std::initializer_list<fs::path> candidates) {
  for (const auto& p : candidates) {
    std::error_code ec;
    const fs::file_status st = fs::status(p, ec);
    if (fs::is_regular_file(st)) return p.string();
    if (ec && ec != std::errc::no_such_file_or_directory && ec != std::errc::not_a_directory &&
        fs::is_symlink(fs::symlink_status(p, ec)))
      return p.string();
  }
  return {};
}

std::string strip_nifti_ext(const std::string& name) {
  for (const char* ext : {".nii.gz", ".nii"}) {
    const std::string e = ext;
    if (name.size() > e.size() && name.compare(name.size() - e.size(), e.size(), e) == 0)
      return name.substr(0, name.size() - e.size());
  }
  return {};
}

// Our errors end in " [file.cpp:123]": useful in a log, noise in a manifest.
std::string clean_reason(std::string msg) {
  if (!msg.empty() && msg.back() == ']') {
    const size_t open = msg.rfind(" [");
    if (open != std::string::npos) msg.resize(open);
  }
  std::replace(msg.begin(), msg.end(), '\n', ' ');
  return msg;
}

// A folder holding a DICOM image: some file (in it or below, first found) starts with a
// Part-10 preamble. Cheap enough for pairing: it stops at the first match and reads 132 bytes
// a file.
bool has_dicom_file(const fs::path& dir) {
  std::error_code ec;
  int64_t looked = 0;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (++looked > 4096) break;  // a folder this large without one is no series folder
    if (!it->is_regular_file(ec)) continue;
    std::ifstream f(it->path(), std::ios::binary);
    char head[132] = {};
    if (f.read(head, sizeof head) && std::string(head + 128, 4) == "DICM") return true;
  }
  return false;
}

// The CT of a per-subject folder: ct.nii.gz, ct.nii, a DICOM series in ct/, or the folder
// itself when it holds DICOM files.
std::string subject_folder_ct(const fs::path& dir) {
  std::string ct = first_existing({dir / "ct.nii.gz", dir / "ct.nii"});
  if (!ct.empty()) return ct;
  if (fs::is_directory(dir / "ct") && has_dicom_file(dir / "ct")) return (dir / "ct").string();
  if (has_dicom_file(dir)) return dir.string();
  return {};
}

std::string fmt(double x, int digits) { return std::isfinite(x) ? fixed(x, digits) : ""; }

std::string windows_str(const std::vector<HUWindow>& ws) {
  std::string s;
  for (const auto& w : ws) s += (s.empty() ? "" : ";") + fmt(w.level, 1) + "," + fmt(w.width, 1);
  return s;
}

// The subject's vertebrae into row.hu; a failure is a note, never the subject's failure.
void measure_subject(const PrepOptions& o, const SubjectFiles& f, const Volume& ct, const Volume& seg,
                     const std::optional<RoiOptions>& roi, ManifestRow& row) {
  try {
    const RoiOptions ro = f.binary_mask ? roi_options(o.hu, -1) : *roi;
    std::optional<Volume> bodies;
    const std::string body = body_seg_path(o.hu, f.id);
    if (!body.empty()) {
      if (fs::is_regular_file(body)) bodies = read_on_grid(body, ct, o.preprocess);
      else row.hu_note = "no body segmentation " + body + ": bodies estimated";
    }
    row.hu = measure_vertebrae(ct, &seg, bodies ? &*bodies : nullptr, ro);
  } catch (const std::exception& e) {
    row.hu.reset();
    row.hu_note = "HU not measured: " + clean_reason(e.what());
  }
}

}  // namespace

std::vector<std::string> list_ct_subjects(const std::string& ct_dir) {
  MC_CHECK(fs::is_directory(ct_dir), ct_dir, ": CT directory not found");
  std::set<std::string> ids;
  for (const auto& e : fs::directory_iterator(ct_dir)) {
    const std::string name = e.path().filename().string();
    std::error_code ec;  // a looping or dangling link: its subject fails when read, named
    const bool regular = e.is_regular_file(ec), broken = ec.operator bool();
    if (regular || (broken && e.is_symlink(ec))) {
      const std::string id = strip_nifti_ext(name);
      if (!id.empty()) ids.insert(id);
    } else if (e.is_directory(ec) && !subject_folder_ct(e.path()).empty()) {
      ids.insert(name);
    }
  }
  return {ids.begin(), ids.end()};
}

SubjectFiles find_subject_files(const PrepOptions& o, const std::string& id) {
  SubjectFiles f;
  f.id = id;
  const fs::path ct_dir = o.ct_dir;
  const fs::path flat = first_existing({ct_dir / (id + ".nii.gz"), ct_dir / (id + ".nii")});
  f.ct = flat.empty() ? (fs::is_directory(ct_dir / id) ? subject_folder_ct(ct_dir / id) : "")
                      : flat.string();
  if (o.preprocess.precropped) return f;
  const fs::path seg_dir = o.seg_dir.empty() ? ct_dir : fs::path(o.seg_dir);
  std::error_code ec;
  const bool same_dir = fs::exists(seg_dir, ec) && fs::exists(ct_dir, ec) && fs::equivalent(seg_dir, ct_dir, ec);
  if (!same_dir) f.seg = first_existing({seg_dir / (id + ".nii.gz"), seg_dir / (id + ".nii")});
  if (f.seg.empty())
    f.seg = first_existing({seg_dir / id / "segmentations.nii.gz", seg_dir / id / "segmentations.nii"});
  if (f.seg.empty()) {
    const std::string m = o.mask_name;
    f.seg = first_existing({seg_dir / id / "segmentations" / (m + ".nii.gz"),
                            seg_dir / id / "segmentations" / (m + ".nii"),
                            seg_dir / id / (m + ".nii.gz"), seg_dir / id / (m + ".nii")});
    f.binary_mask = !f.seg.empty();
  }
  return f;
}

std::map<std::string, std::string> cache_meta(const PrepOptions& o, const std::string& split) {
  const PreprocessOptions& p = o.preprocess;
  std::map<std::string, std::string> m = {{"source", "mc_prep"},
          {"split", split},
          {"class_names", o.task.names_csv()},
          {"label_id", p.precropped ? "precropped" : std::to_string(p.label_id)},
          {"volume", std::to_string(p.volume)},
          {"spacing_mm", fmt(p.spacing_mm, 4)},
          {"margin_mm", fmt(p.margin_mm, 4)},
          {"resize", resize_mode_name(p.resize)},
          {"windows", windows_str(p.windows)},
          {"mask_outside", p.mask_outside ? "true" : "false"},
          {"orientation", "RAS canonical; cube axes D=I->S, H=P->A, W=L->R"},
          {"seed", std::to_string(o.seed)},
          {"ct_dir", o.ct_dir},
          {"seg_dir", o.seg_dir},
          {"labels", o.labels_csv}};
  for (auto& [k, v] : task_meta(o.task)) m[k] = v;
  return m;
}

std::optional<RoiOptions> prep_roi_options(const PrepOptions& o) {
  if (!o.hu.enabled || o.preprocess.precropped) return std::nullopt;
  return roi_options(o.hu, o.preprocess.label_id);
}

void write_manifest(const std::string& path, const std::vector<ManifestRow>& rows, const Task& task,
                    const std::optional<RoiOptions>& hu) {
  std::string out = "id,label,class,tscore,split,voxels,volume_ml,mean_hu,median_hu,";
  if (hu)
    for (const auto& c : hu_columns(*hu)) out += c + ",";
  out += "status,reason\n";
  for (const auto& r : rows) {
    const bool stats = r.status == "ok";
    out += csv_field(r.id) + "," + std::to_string(r.label) + "," + (r.label >= 0 ? csv_field(task.name(r.label)) : "") +
           "," + fmt(r.tscore, 2) + "," + csv_field(r.split) +
           "," + (stats ? std::to_string(r.stats.voxels) : "") + "," + (stats ? fmt(r.stats.volume_ml, 3) : "") +
           "," + (stats ? fmt(r.stats.mean_hu, 2) : "") + "," + (stats ? fmt(r.stats.median_hu, 1) : "") + ",";
    if (hu)
      for (const auto& c : hu_cells(stats ? r.hu : std::nullopt, *hu, stats ? r.hu_note : "")) out += csv_field(c) + ",";
    out += r.status + "," + csv_field(r.reason) + "\n";
  }
  write_atomic(path, out);
}

PrepResult run_prep(const PrepOptions& o) {
  MC_CHECK(!o.ct_dir.empty() && !o.out_dir.empty(), "prep: --ct-dir and --out are required");
  MC_CHECK(o.workers >= 1, "prep: workers must be at least 1, got ", o.workers);
  const std::optional<RoiOptions> roi = prep_roi_options(o);  // a bad data.hu.* fails here
  fs::create_directories(o.out_dir);

  // Who is there: every id with a scan or a label.
  LabelTable labels;
  if (!o.labels_csv.empty()) labels = read_labels(o.labels_csv, o.task);
  std::set<std::string> ids;
  for (const auto& id : list_ct_subjects(o.ct_dir)) ids.insert(id);
  for (const auto& e : labels.entries) ids.insert(e.id);

  PrepResult res;
  std::vector<SubjectFiles> files;
  std::vector<size_t> usable;  // rows that can be processed
  for (const std::string& id : ids) {
    ManifestRow row;
    row.id = id;
    const SubjectFiles f = find_subject_files(o, id);
    row.ct = f.ct, row.seg = f.seg;
    const LabelEntry* e = labels.find(id);
    if (e) row.label = e->label, row.tscore = e->tscore;
    if (f.ct.empty()) {
      row.reason = "missing scan: no " + (fs::path(o.ct_dir) / (id + ".nii.gz")).string() +
                   ", " + (fs::path(o.ct_dir) / id / "ct.nii.gz").string() +
                   " or DICOM series in " + (fs::path(o.ct_dir) / id).string();
    } else if (!o.preprocess.precropped && f.seg.empty()) {
      row.reason = "missing segmentation for " + id + " in " +
                   (o.seg_dir.empty() ? o.ct_dir : o.seg_dir);
    } else if (!o.labels_csv.empty() && !e) {
      row.reason = "no label: subject not in " + o.labels_csv;
    } else if (!o.labels_csv.empty() && e->label < 0) {
      row.reason = "no label: empty T-score/class on line " + std::to_string(e->line) + " of " +
                   o.labels_csv;
    }
    row.status = row.reason.empty() ? "" : "skipped";
    if (row.reason.empty()) usable.push_back(res.rows.size());
    res.rows.push_back(row);
    files.push_back(f);
  }

  // Splits, decided before any file is decoded.
  if (!o.split_file.empty()) {
    const auto fixed = read_split_file(o.split_file);
    for (size_t i : usable) {
      auto it = fixed.find(res.rows[i].id);
      if (it != fixed.end()) res.rows[i].split = it->second;
      else res.rows[i].status = "skipped", res.rows[i].reason = "not in split file " + o.split_file;
    }
  } else {
    std::vector<std::string> uid;
    std::vector<int64_t> ulabel;
    for (size_t i : usable) uid.push_back(res.rows[i].id), ulabel.push_back(res.rows[i].label);
    if (o.folds >= 2) {
      const auto fold = stratified_folds(uid, ulabel, o.folds, o.seed);
      for (size_t n = 0; n < usable.size(); ++n) res.rows[usable[n]].split = "fold" + std::to_string(fold[n]);
    } else {
      const auto split = stratified_split(uid, ulabel, o.ratios, o.seed);
      for (size_t n = 0; n < usable.size(); ++n) res.rows[usable[n]].split = split[n];
    }
  }
  std::map<std::string, std::vector<size_t>> by_split;
  for (size_t i : usable)
    if (res.rows[i].status.empty()) by_split[res.rows[i].split].push_back(i);

  // Decode and preprocess one split at a time: only that split's cubes are in memory.
  int64_t todo = 0;
  for (const auto& [s, rows] : by_split) todo += int64_t(rows.size());
  std::optional<Progress> bar;
  if (o.progress) bar.emplace("prep", todo);
  Progress* progress = bar ? &*bar : nullptr;
  std::atomic<int64_t> failures{0};
  if (o.save_crops) fs::create_directories(fs::path(o.out_dir) / "crops");
  for (const auto& [split, rows] : by_split) {
    std::vector<Tensor> cubes(rows.size());
    parallel_for(int64_t(rows.size()), o.workers, [&](int64_t n) {
      ManifestRow& row = res.rows[rows[size_t(n)]];
      const SubjectFiles& f = files[rows[size_t(n)]];
      PreprocessOptions p = o.preprocess;
      if (f.binary_mask) p.label_id = -1;
      try {
        // Read once: the cube and the HU measurements use the same volumes.
        const Volume ct = read_ct_for(f.ct, p);
        std::optional<Volume> seg;
        if (!p.precropped) seg = read_on_grid(f.seg, ct, p);
        Preprocessed r = preprocess(ct, seg ? &*seg : nullptr, p);
        if (roi && seg) measure_subject(o, f, ct, *seg, roi, row);
        row.stats = r.stats;
        row.reason = r.note;
        row.status = "ok";
        if (o.save_crops) {
          Volume crop = make_volume(p.volume, p.volume, p.volume, r.cube_affine);
          crop.data = r.cube.flat_slice(0, {p.volume, p.volume, p.volume}).clone();
          write_nifti((fs::path(o.out_dir) / "crops" / (row.id + ".nii.gz")).string(), crop);
        }
        cubes[size_t(n)] = r.cube;
      } catch (const std::exception& e) {
        row.status = "failed";
        row.reason = clean_reason(e.what());
        if (progress) progress->set_note(std::to_string(++failures) + " failed");
      }
    }, progress);
    std::vector<CacheRecord> records;
    std::vector<Tensor> volumes;
    for (size_t n = 0; n < rows.size(); ++n) {
      if (!cubes[n].defined()) continue;
      const ManifestRow& row = res.rows[rows[n]];
      records.push_back({row.id, row.label, row.tscore});
      volumes.push_back(cubes[n]);
    }
    res.split_counts[split] = int64_t(records.size());
    if (records.empty()) continue;
    const std::string path = (fs::path(o.out_dir) / (split + ".safetensors")).string();
    write_cache(path, records, volumes, cache_meta(o, split));
    res.caches[split] = path;
  }
  if (progress) progress->finish();

  for (const auto& r : res.rows) {
    if (r.status == "ok") ++res.ok;
    else if (r.status == "failed") ++res.failed;
    else ++res.skipped;
  }
  res.manifest = (fs::path(o.out_dir) / "manifest.csv").string();
  write_manifest(res.manifest, res.rows, o.task, roi);
  return res;
}

std::string prep_summary(const PrepResult& r, const Task& task) {
  std::ostringstream s;
  s << "prep: " << r.ok << " ok, " << r.skipped << " skipped, " << r.failed << " failed of "
    << r.rows.size() << " subjects\n";
  for (const auto& [split, n] : r.split_counts) {
    const int64_t K = task.num_classes();
    std::vector<int64_t> per(size_t(K + 1), 0);
    for (const auto& row : r.rows)
      if (row.split == split && row.status == "ok") ++per[size_t(row.label < 0 || row.label >= K ? K : row.label)];
    s << "  " << split << ": " << n;
    for (int64_t c = 0; c < K; ++c) s << "  " << task.name(c) << " " << per[size_t(c)];
    if (per[size_t(K)]) s << "  unknown " << per[size_t(K)];
    auto it = r.caches.find(split);
    s << "  -> " << (it == r.caches.end() ? "(no cache: nothing usable)" : it->second) << "\n";
  }
  int shown = 0;
  for (const auto& row : r.rows) {
    if (row.status == "ok") continue;
    if (shown++ == 20) {
      s << "  ... (see the manifest)\n";
      break;
    }
    s << "  " << row.status << " " << row.id << ": " << row.reason << "\n";
  }
  s << "manifest: " << r.manifest << "\n";
  return s.str();
}

}  // namespace mc::io
