#include "io/state_dict_io.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "engine/check.h"
#include "io/safetensors.h"

namespace mc::io {
namespace {

constexpr std::string_view kModulePrefix = "module.";
constexpr std::string_view kNumBatchesTracked = "num_batches_tracked";

std::string describe(const Tensor& t) {
  std::string s = shape_str(t.shape()) + " " + dtype_name(t.dtype());
  if (t.layout() == Layout::NDHWC) s += " channels-last";
  return s;
}

// Copyable without losing meaning: same shape, both floating or both integer, and the same
// memory order (copy_ moves bytes in storage order).
bool compatible(const Tensor& dst, const Tensor& src) {
  return dst.shape() == src.shape() && is_floating(dst.dtype()) == is_floating(src.dtype()) &&
         (dst.dim() != 5 || dst.layout() == src.layout());
}

void list(std::ostringstream& o, const char* title, const std::vector<std::string>& v, bool quote) {
  if (v.empty()) return;
  o << "\n  " << title << " (" << v.size() << "): ";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) o << (quote ? ", " : "; ");
    if (quote) o << '"' << v[i] << '"';
    else o << v[i];
  }
}

std::string problems(const LoadReport& r) {
  std::ostringstream o;
  list(o, "Missing key(s) in state_dict", r.missing, true);
  list(o, "Unexpected key(s) in state_dict", r.unexpected, true);
  list(o, "Size or type mismatch", r.mismatched, false);
  return o.str();
}

}  // namespace

void check_finite_weights(const StateDict& sd, const std::string& source, const std::string& tail) {
  for (const auto& [name, s] : sd) {
    if (!s.defined() || !is_floating(s.dtype()) || s.numel() == 0) continue;
    const std::vector<double> v = s.to(DType::F64).to_vector<double>();
    int64_t bad = 0, first = -1;
    for (size_t j = 0; j < v.size(); ++j)
      if (!std::isfinite(v[j]) && bad++ == 0) first = int64_t(j);
    if (bad)
      MC_FAIL(source, ": tensor '", name, "' has ", bad, " non-finite value(s) of ", v.size(),
              " (the first, at index ", first, ", is ", v[size_t(first)], ")", tail);
    if (name.ends_with("running_var")) {
      const auto m = std::min_element(v.begin(), v.end());
      if (*m < 0)
        MC_FAIL(source, ": tensor '", name, "' holds a negative variance (", *m, " at index ",
                m - v.begin(), "); a batch-norm running_var must be >= 0", tail);
    }
  }
}

std::string LoadReport::summary() const {
  std::ostringstream o;
  o << "loaded " << loaded.size() << " tensor(s)" << problems(*this);
  list(o, "Kept (num_batches_tracked absent from the source)", kept, true);
  return o.str();
}

LoadReport load_state_dict(const StateDict& dst, const StateDict& src, const LoadOptions& opts) {
  std::unordered_map<std::string, const Tensor*> model;
  bool model_has_prefix = false;
  for (const auto& [name, t] : dst) {
    MC_CHECK(model.emplace(name, &t).second, "load_state_dict: the model has key '", name, "' twice");
    model_has_prefix |= name.starts_with(kModulePrefix);
  }
  const bool strip = opts.strip_module_prefix && !model_has_prefix;

  std::unordered_map<std::string, const Tensor*> source;
  LoadReport r;
  for (const auto& [raw, t] : src) {
    std::string name = strip && raw.starts_with(kModulePrefix) ? raw.substr(kModulePrefix.size()) : raw;
    MC_CHECK(source.emplace(name, &t).second, "load_state_dict: the source has key '", name,
             "' twice", name == raw ? "" : " (after stripping \"module.\")");
    if (!model.count(name)) r.unexpected.push_back(name);
  }

  std::vector<std::pair<const Tensor*, const Tensor*>> copies;  // (dst, src), validated first
  for (const auto& [name, t] : dst) {
    auto it = source.find(name);
    if (it == source.end()) {
      const bool tolerated = opts.allow_missing_num_batches_tracked && name.ends_with(kNumBatchesTracked);
      (tolerated ? r.kept : r.missing).push_back(name);
      continue;
    }
    const Tensor& s = *it->second;
    MC_CHECK(s.defined() && t.defined(), "load_state_dict: '", name, "' is undefined in the ",
             t.defined() ? "source" : "model");
    if (!compatible(t, s)) {
      r.mismatched.push_back(name + ": expected " + describe(t) + ", got " + describe(s));
      continue;
    }
    copies.emplace_back(&t, &s);
    r.loaded.push_back(name);
  }

  if (opts.strict && !r.ok())
    MC_FAIL("load_state_dict (strict): error(s) in loading state_dict; nothing was copied:",
            problems(r));
  // Finite or refuse, before anything is copied.
  StateDict floating;
  for (size_t i = 0; i < copies.size(); ++i) floating.emplace_back(r.loaded[i], *copies[i].second);
  check_finite_weights(floating, "load_state_dict", "; nothing was copied");
  for (auto [d, s] : copies) {
    Tensor view = *d;  // shares the model's storage
    view.copy_(*s);
  }
  return r;
}

LoadReport load_state_dict_file(const StateDict& dst, const std::string& path, const LoadOptions& opts) {
  const StateDict src = SafeTensorsFile::open(path).views();  // its errors name the file
  try {
    return load_state_dict(dst, src, opts);
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " [while loading '" + path + "']");
  }
}

StateDict inflate_2d_to_3d(const StateDict& src2d, int in_chans, const std::string& stem) {
  MC_CHECK(in_chans >= 1, "inflate_2d_to_3d: in_chans must be >= 1, got ", in_chans);
  StateDict out;
  bool stem_seen = false;
  for (const auto& [name, t] : src2d) {
    if (t.dim() != 4) {
      out.emplace_back(name, t);
      continue;
    }
    const int64_t O = t.size(0), k = t.size(2);
    int64_t I = t.size(1);
    MC_CHECK(t.size(3) == k, "inflate_2d_to_3d: kernel '", name, "' is ", k, "x", t.size(3),
             ", not square: no single depth to inflate it to");
    std::vector<double> w = t.to_vector<double>();  // [O][I][k][k]
    const int64_t kk = k * k;

    if (name == stem && in_chans != 3) {  // timm's adapt_input_conv, on the 2D kernel
      stem_seen = true;
      std::vector<double> a;
      if (in_chans == 1) {
        // Sums each group of 3 input channels: RGB -> gray (and space-to-depth stems group-wise).
        MC_CHECK(I % 3 == 0 || I == 1, "inflate_2d_to_3d: stem '", name, "' has ", I,
                 " input channels; summing RGB to 1 channel needs a multiple of 3");
        const int64_t g = I == 1 ? 1 : 3, I2 = I / g;
        a.assign(size_t(O * I2 * kk), 0.0);
        for (int64_t o = 0; o < O; ++o)
          for (int64_t i = 0; i < I; ++i)
            for (int64_t p = 0; p < kk; ++p) a[size_t((o * I2 + i / g) * kk + p)] += w[size_t((o * I + i) * kk + p)];
        I = I2;
      } else {
        // Cycles R, G, B, R, ... and scales by 3 / in_chans to keep the response's magnitude.
        MC_CHECK(I == 3, "inflate_2d_to_3d: stem '", name, "' has ", I,
                 " input channels; adapting to ", in_chans, " needs 3 (RGB)");
        a.resize(size_t(O * in_chans * kk));
        const double scale = 3.0 / double(in_chans);
        for (int64_t o = 0; o < O; ++o)
          for (int64_t i = 0; i < in_chans; ++i)
            for (int64_t p = 0; p < kk; ++p)
              a[size_t((o * in_chans + i) * kk + p)] = w[size_t((o * 3 + i % 3) * kk + p)] * scale;
        I = in_chans;
      }
      w = std::move(a);
    }

    // (O, I, k, k) -> (O, I, k, k, k): each depth slice is the 2D kernel / k.
    std::vector<double> v(size_t(O * I * k * kk));
    for (int64_t oi = 0; oi < O * I; ++oi)
      for (int64_t d = 0; d < k; ++d)
        for (int64_t p = 0; p < kk; ++p) v[size_t((oi * k + d) * kk + p)] = w[size_t(oi * kk + p)] / double(k);
    out.emplace_back(name, Tensor::from(v, {O, I, k, k, k}).to(t.dtype()).to(t.device()));
  }
  MC_CHECK(in_chans == 3 || stem_seen, "inflate_2d_to_3d: in_chans = ", in_chans,
           " but there is no 4-D stem kernel '", stem, "' to adapt");
  return out;
}

size_t drop_keys(StateDict& sd, const std::string& prefix) {
  return size_t(std::erase_if(sd, [&](const auto& kv) { return kv.first.starts_with(prefix); }));
}

}  // namespace mc::io
