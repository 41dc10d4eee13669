#include "pipeline/cli.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>

#include "engine/check.h"
#include "io/text.h"

namespace mc::pipeline::cli {
namespace {

class Formatter : public CLI::Formatter {
 public:
  explicit Formatter(std::string usage) : usage_(std::move(usage)) {}
  // Our usage lines first, then the description (CLI11 puts the description first).
  std::string make_usage(const CLI::App* app, std::string) const override {
    return usage_ + "\n" + app->get_description() + "\n";
  }
  std::string make_description(const CLI::App*) const override { return ""; }

 private:
  std::string usage_;
};

CLI::Validator check(char quote, bool (*ok)(const std::string&), const char* what) {
  return CLI::Validator(
      [=](std::string& s) { return ok(s) ? std::string() : quote + s + quote + " is not " + what; }, "");
}

}  // namespace

std::unique_ptr<CLI::App> make_app(const std::string& name, const std::string& usage,
                                   const std::string& description, const std::string& footer) {
  auto app = std::make_unique<CLI::App>(description, name);
  auto f = std::make_shared<Formatter>(usage);
  f->column_width(24);
  app->formatter(f);
  app->set_help_flag("-h,--help", "this help");
  app->allow_extras();  // unknown arguments are the program's to judge (key=value overrides)
  if (!footer.empty()) app->footer(footer);
  return app;
}

CLI::Validator integer(char quote) {
  return check(quote, [](const std::string& s) { return io::parse_int(s).has_value(); }, "an integer");
}

CLI::Validator number(char quote) {
  return check(quote, [](const std::string& s) {
    const auto v = io::parse_double(s);
    return v && std::isfinite(*v);
  }, "a number");
}

CLI::Validator count(char quote) {
  return check(quote, [](const std::string& s) {
    const auto v = io::parse_int(s);
    return v && *v >= 0;
  }, "a count");
}

Parsed parse(CLI::App& app, const std::vector<std::string>& args) {
  Parsed p;
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 takes them last first
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    p.help = true;
    return p;
  } catch (const CLI::ParseError& e) {
    throw Error(e.what());
  }
  p.rest = app.remaining();
  return p;
}

std::string take_overrides(const std::vector<std::string>& rest, std::vector<std::string>& overrides) {
  for (const std::string& a : rest) {
    if (a.starts_with("-") || a.find('=') == std::string::npos) return a;
    overrides.push_back(a);
  }
  return "";
}

int finish_stdout(const std::string& program, int rc) {
  std::cout.flush();
  const bool stream_ok = bool(std::cout);
  errno = 0;
  const bool closed = std::fclose(stdout) == 0;
  if (stream_ok && closed) return rc;
  std::cerr << program << ": error: cannot write the output to stdout"
            << (errno ? std::string(": ") + std::strerror(errno) : std::string()) << "\n";
  return rc ? rc : 1;
}

}  // namespace mc::pipeline::cli
