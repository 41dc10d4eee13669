// YAML run configuration from text: the input up to its first NUL byte is the YAML file, each
// NUL-separated piece after it one command-line override ("optim.lr=3e-4"). A configuration
// the parser accepts must come back unchanged from its own YAML (pipeline/config.h promises
// parse_config(to_yaml(c)) == c).
#include "pipeline/config.h"

#include "fuzz/fuzz_util.h"

namespace {

void check(std::string_view input) {
  const size_t nul = input.find('\0');
  const std::string yaml(input.substr(0, nul));
  std::vector<std::string> overrides;
  for (size_t at = nul; at != std::string_view::npos;) {
    const size_t next = input.find('\0', at + 1);
    overrides.emplace_back(input.substr(at + 1, next == std::string_view::npos ? next : next - at - 1));
    at = next;
  }
  const mc::pipeline::Config c = mc::pipeline::parse_config(yaml, "fuzz.yaml", overrides);
  const std::string text = mc::pipeline::to_yaml(c);
  const mc::pipeline::Config back = mc::fuzz::must("parse_config(to_yaml(c))", [&] {
    try {
      return mc::pipeline::parse_config(text, "to_yaml");
    } catch (...) {
      std::fprintf(stderr, "--- to_yaml:\n%s\n", text.c_str());
      throw;
    }
  });
  FUZZ_CHECK(back == c, "parse_config(to_yaml(c)) != c\n--- to_yaml:\n", text,
             "\n--- to_yaml of what it read back:\n", mc::pipeline::to_yaml(back));
  FUZZ_CHECK(mc::pipeline::config_flat(c).size() == mc::pipeline::config_schema().size(), "config_flat misses keys");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mc::fuzz::run([&] { check(mc::fuzz::as_text(data, size)); });
  return 0;
}
