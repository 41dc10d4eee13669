// A small generated data set, prepared once per test binary, and run configs over it (the demo
// config with paths overridden) for the end-to-end tests.
#pragma once
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "pipeline/config.h"
#include "pipeline/prep_config.h"
#include "io/synthetic.h"
#include "test_util.h"

namespace mc::test {

// Per process: CTest runs test cases in parallel processes, which must not share (or delete
// each other's) data.
inline const std::string& e2e_dataset() {
  static const std::string dir = [] {
    const std::filesystem::path d = std::filesystem::path(process_temp_root()) / "e2e_data";
    std::filesystem::remove_all(d);
    remove_at_exit(d.string());
    io::SyntheticOptions s;
    s.count = 150;
    s.size = 48;
    s.seed = 11;
    io::write_synthetic_dataset(d.string(), s, nullptr);
    return d.string();
  }();
  return dir;
}

// The overrides that point configs/demo.yaml at the data set and `out`, on the CPU.
inline std::vector<std::string> e2e_overrides(const std::string& out) {
  const std::string d = e2e_dataset();
  return {"data.raw.ct_dir=" + d + "/ct", "data.raw.seg_dir=" + d + "/seg",
          "data.raw.labels_csv=" + d + "/labels.csv", "data.cache_dir=" + d + "/cache",
          "output.dir=" + out, "train.device=cpu", "data.num_workers=1"};
}

inline std::string demo_config_path() { return std::string(MC_SOURCE_DIR) + "/configs/demo.yaml"; }

inline pipeline::Config e2e_config(const std::string& out, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> ov = e2e_overrides(out);
  ov.insert(ov.end(), extra.begin(), extra.end());
  return pipeline::load_config(demo_config_path(), ov);
}

// The caches depend only on the data section: prepared once.
inline void e2e_prepare() {
  static const bool done = [] {
    io::PrepOptions p = pipeline::prep_options_from_config(e2e_config("unused"));
    p.progress = false;
    const io::PrepResult r = io::run_prep(p);
    if (r.failed != 0) throw Error("e2e data set: " + std::to_string(r.failed) + " subjects failed");
    return true;
  }();
  (void)done;
}

}  // namespace mc::test
