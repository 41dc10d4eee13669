// The programs' command lines on CLI11: mc_eval, mc_predict and mc_prep declare their options
// here-style (pipeline/*_cli.cpp) so the programs and the tests parse the same way, in-process.
#pragma once
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace mc::pipeline::cli {

// An App whose help starts with `usage` (our usage lines instead of CLI11's "Usage: ...
// [OPTIONS]"), then `description`, the options by group, and `footer`.
std::unique_ptr<CLI::App> make_app(const std::string& name, const std::string& usage,
                                   const std::string& description, const std::string& footer = "");

// Value checks whose message names the option and quotes the value with `quote`:
// "--volume: \"big\" is not an integer" (mc_prep) or "--tau2: 'abc' is not a number".
CLI::Validator integer(char quote = '\'');
CLI::Validator number(char quote = '\'');  // finite
CLI::Validator count(char quote = '\'');   // an integer >= 0

struct Parsed {
  bool help = false;              // --help / -h: nothing else was checked
  std::vector<std::string> rest;  // what CLI11 did not recognise, in order: key=value or typos
};
// Parses `args` (without the program name). CLI11's errors (a bad value, a missing value)
// become mc::Error; library code never exits.
Parsed parse(CLI::App& app, const std::vector<std::string>& args);

// key=value arguments (the run config's overrides) go to `overrides`; the first other one is
// returned ("" when there is none) for the program to name in its error.
std::string take_overrides(const std::vector<std::string>& rest, std::vector<std::string>& overrides);

// A program's last step: flushes and closes stdout and returns rc, or, when that fails (a full
// disk, a closed pipe), says so on stderr and returns rc or 1: results that did not arrive are
// never an exit status of 0.
int finish_stdout(const std::string& program, int rc);

}  // namespace mc::pipeline::cli
