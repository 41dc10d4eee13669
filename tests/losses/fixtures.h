// Reader for tests/fixtures/losses_metrics/*.txt (written by make_loss_metric_fixtures.py):
// one `key v1 v2 ...` per line; numbers parse exactly (Python repr), `nan` marks undefined.
#pragma once
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace mc::test {

struct Fixture {
  std::string path;
  std::map<std::string, std::vector<double>> num;
  std::map<std::string, std::string> text;

  bool has(const std::string& k) const { return num.count(k) > 0; }
  const std::vector<double>& operator[](const std::string& k) const {
    auto it = num.find(k);
    if (it == num.end()) throw std::runtime_error(path + ": no key " + k);
    return it->second;
  }
  double scalar(const std::string& k) const { return (*this)[k].at(0); }
  int64_t integer(const std::string& k) const { return int64_t(scalar(k)); }
  std::vector<int64_t> ints(const std::string& k) const {
    std::vector<int64_t> v;
    for (double d : (*this)[k]) v.push_back(int64_t(d));
    return v;
  }
};

inline std::string fixture_path(const std::string& name) {
  return std::string(MC_SOURCE_DIR) + "/tests/fixtures/losses_metrics/" + name + ".txt";
}

inline Fixture load_fixture(const std::string& name) {
  Fixture f;
  f.path = fixture_path(name);
  std::ifstream in(f.path);
  if (!in) throw std::runtime_error("cannot open fixture " + f.path);
  std::string line, key, tok;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    if (!(ls >> key)) continue;
    std::vector<double> vals;
    bool numeric = true;
    std::string first;
    while (ls >> tok) {
      char* end = nullptr;
      const double v = std::strtod(tok.c_str(), &end);
      if (*end != '\0') numeric = false;
      if (first.empty()) first = tok;
      vals.push_back(v);
    }
    if (numeric) f.num[key] = vals;
    else f.text[key] = first;
  }
  return f;
}

}  // namespace mc::test
