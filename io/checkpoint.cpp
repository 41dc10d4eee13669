#include "io/checkpoint.h"

#include <filesystem>
#include <random>

#include "engine/check.h"
#include "io/safetensors.h"
#include "io/text.h"

namespace mc::io {
namespace fs = std::filesystem;

std::string state_path_for(const std::string& weights_path) {
  fs::path p(weights_path);
  MC_CHECK(p.extension() == ".safetensors", "checkpoint '", weights_path, "' must end in .safetensors");
  return (p.parent_path() / (p.stem().string() + ".state.safetensors")).string();
}

namespace {
std::string fresh_id(const TrainingState& s) {
  std::random_device rd;  // only tells two writes apart; never used for training
  return std::to_string(s.epoch) + "-" + std::to_string(s.global_step) + "-" + std::to_string(rd());
}

const std::string& field(const SafeTensorsMetadata& m, const std::string& key, const std::string& path) {
  auto it = m.find(key);
  MC_CHECK(it != m.end(), "checkpoint state '", path, "' has no '", key, "' in its metadata");
  return it->second;
}

int64_t to_i64(const SafeTensorsMetadata& m, const std::string& key, const std::string& path) {
  const auto v = parse_int(field(m, key, path));
  MC_CHECK(v, "checkpoint state '", path, "': '", key, "' = '", field(m, key, path), "' is not an integer");
  return *v;
}

double to_double(const SafeTensorsMetadata& m, const std::string& key, const std::string& path) {
  const auto v = parse_double(field(m, key, path));
  MC_CHECK(v, "checkpoint state '", path, "': '", key, "' = '", field(m, key, path), "' is not a number");
  return *v;
}
}  // namespace

std::string save_checkpoint(const std::string& dir, const std::string& tag, const StateDict& weights,
                            const TrainingState& s) {
  fs::create_directories(dir);
  const std::string wpath = (fs::path(dir) / (tag + ".safetensors")).string();
  const std::string id = fresh_id(s);
  StateDict optim;
  for (const auto& [k, t] : s.optimizer_state) optim.emplace_back("optim." + k, t);
  SafeTensorsMetadata meta = s.extra;
  meta["checkpoint_id"] = id;
  meta["epoch"] = std::to_string(s.epoch);
  meta["global_step"] = std::to_string(s.global_step);
  meta["best_value"] = shortest(s.best_value);  // exactly: resuming compares new scores with it
  meta["best_epoch"] = std::to_string(s.best_epoch);
  meta["optimizer"] = s.optimizer;
  meta["config"] = s.config_yaml;
  save_safetensors(state_path_for(wpath), optim, meta);
  // Weights last: "format": "pt" lets transformers-style loaders accept the file.
  SafeTensorsMetadata wmeta = {{"format", "pt"}, {"checkpoint_id", id}, {"epoch", std::to_string(s.epoch)}};
  // The task travels with the weights too, so the weights alone name their classes.
  for (const auto& [k, v] : s.extra)
    if (k.starts_with("task.")) wmeta[k] = v;
  save_safetensors(wpath, weights, wmeta);
  return wpath;
}

TrainingState load_training_state(const std::string& state_path, const std::string& weights_path) {
  MC_CHECK(fs::exists(state_path), "checkpoint state '", state_path, "' not found (needed to resume ",
           weights_path, ")");
  SafeTensorsFile sf = SafeTensorsFile::open(state_path);
  SafeTensorsFile wf = SafeTensorsFile::open(weights_path);
  const auto& m = sf.metadata();
  auto wid = wf.metadata().find("checkpoint_id"), sid = m.find("checkpoint_id");
  MC_CHECK(wid != wf.metadata().end() && sid != m.end() && wid->second == sid->second,
           "checkpoint '", weights_path, "' and its state '", state_path,
           "' are from different saves (a write was interrupted?): resume from another checkpoint");
  TrainingState s;
  s.epoch = to_i64(m, "epoch", state_path);
  s.global_step = to_i64(m, "global_step", state_path);
  s.best_epoch = to_i64(m, "best_epoch", state_path);
  s.best_value = to_double(m, "best_value", state_path);
  s.optimizer = m.count("optimizer") ? m.at("optimizer") : "";
  s.config_yaml = m.count("config") ? m.at("config") : "";
  for (const auto& [k, v] : m)
    if (k != "checkpoint_id" && k != "epoch" && k != "global_step" && k != "best_epoch" &&
        k != "best_value" && k != "optimizer" && k != "config")
      s.extra[k] = v;
  for (auto& [k, t] : sf.copies()) {
    MC_CHECK(k.starts_with("optim."), "checkpoint state '", state_path, "': unexpected tensor '", k, "'");
    s.optimizer_state.emplace_back(k.substr(6), t);
  }
  return s;
}

std::vector<std::string> remove_torn_checkpoints(const std::string& dir) {
  std::vector<std::string> removed;
  std::error_code ec;
  const std::string suffix = ".state.safetensors";
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (!name.starts_with("epoch") || !name.ends_with(suffix)) continue;
    const std::string state = e.path().string();
    const std::string weights = (e.path().parent_path() / (name.substr(0, name.size() - suffix.size()) + ".safetensors")).string();
    std::string why;
    if (!fs::exists(weights, ec)) {
      why = "its weights are missing";
    } else {
      try {  // metadata only: the data is verified when the checkpoint is used
        const auto a = SafeTensorsFile::open(state, false).metadata(), b = SafeTensorsFile::open(weights, false).metadata();
        const auto ia = a.find("checkpoint_id"), ib = b.find("checkpoint_id");
        if (ia == a.end() || ib == b.end() || ia->second != ib->second) why = "its two files are from different saves";
      } catch (const Error& err) {
        why = std::string("unreadable: ") + err.what();
      }
    }
    if (why.empty()) continue;
    fs::remove(weights, ec);
    fs::remove(state, ec);
    removed.push_back(state + " (" + why + ")");
  }
  return removed;
}

}  // namespace mc::io
