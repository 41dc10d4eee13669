// The small text tools of config loading (config.cpp): YAML scalars as numbers and booleans,
// nodes described for messages, and the closest of a list of names for "did you mean".
#pragma once
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mc::pipeline::config_detail {

size_t edit_distance(const std::string& a, const std::string& b);
// The choice closest to v (case-insensitive), or "" when none is close.
std::string suggest_choice(const std::string& v, const std::vector<std::string>& choices);
// A leading '+' is allowed; anything after the number is not.
std::optional<double> parse_float(std::string s);
std::optional<int64_t> parse_int(std::string s);
std::optional<bool> parse_bool(std::string s);  // true/yes/on, false/no/off
bool finite_number(const YAML::Node& n, double& out);
std::string describe(const YAML::Node& n);  // what a node holds, for "got ..." in messages

}  // namespace mc::pipeline::config_detail
