// io/text.h, io/csv.h, io/json.h and io/atomic_file.h: the shared pieces every reader and writer
// uses instead of its own copy.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <sys/stat.h>
#include <chrono>
#include <thread>

#include "io/atomic_file.h"
#include "io/csv.h"
#include "io/json.h"
#include "io/text.h"
#include "test_util.h"

namespace mc::io {
namespace {
namespace fs = std::filesystem;
using test::expect_error;

#define EXPECT_HAS(s, part) EXPECT_NE((s).find(part), std::string::npos) << "missing '" << (part) << "' in:\n" << (s)

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(Text, ShortestRoundTripsEveryDouble) {
  EXPECT_EQ(shortest(0.1), "0.1");
  EXPECT_EQ(shortest(2.0), "2");
  EXPECT_EQ(shortest(-0.0), "-0");
  EXPECT_EQ(shortest(1e-300), "1e-300");
  EXPECT_EQ(shortest(5e-324), "5e-324");
  EXPECT_EQ(shortest(std::nan("")), "nan");
  EXPECT_EQ(shortest(-std::numeric_limits<double>::infinity()), "-inf");
  uint64_t bits = 0x3FF0000000000001;  // walk many bit patterns, all must read back exactly
  for (int i = 0; i < 20000; ++i) {
    bits = bits * 6364136223846793005ULL + 1442695040888963407ULL;
    double v;
    std::memcpy(&v, &bits, 8);
    if (!std::isfinite(v)) continue;
    const auto back = parse_double(shortest(v));
    ASSERT_TRUE(back) << shortest(v);
    ASSERT_EQ(std::memcmp(&*back, &v, 8), 0) << shortest(v);
  }
}

TEST(Text, FixedRoundsLikePrintf) {
  EXPECT_EQ(fixed(90.25, 2), "90.25");
  EXPECT_EQ(fixed(2.675, 2), "2.67");  // 2.675 is 2.67499999... in binary
  EXPECT_EQ(fixed(-0.001, 2), "0.00");
  EXPECT_EQ(fixed(-1.5, 1), "-1.5");
  EXPECT_EQ(fixed(1234.5, 0), "1234");  // ties to even, as printf
}

TEST(Text, ParseTakesTheWholeStringOrNothing) {
  EXPECT_EQ(parse_double("1.5"), 1.5);
  EXPECT_EQ(parse_double("+2e-3"), 2e-3);
  EXPECT_EQ(parse_double("-7"), -7.0);
  EXPECT_FALSE(parse_double(""));
  EXPECT_FALSE(parse_double("1.5x"));
  EXPECT_FALSE(parse_double(" 1"));
  EXPECT_FALSE(parse_double("+-1"));
  EXPECT_TRUE(std::isnan(*parse_double("nan")));
  EXPECT_EQ(parse_int("42"), 42);
  EXPECT_EQ(parse_int("-9223372036854775808"), INT64_MIN);
  EXPECT_FALSE(parse_int("9223372036854775808"));  // out of range
  EXPECT_FALSE(parse_int("4.0"));
  EXPECT_EQ(parse_numbers("0.8,0.1, 0.1"), (std::vector<double>{0.8, 0.1, 0.1}));
  EXPECT_EQ(parse_numbers("-2.5"), (std::vector<double>{-2.5}));
  EXPECT_FALSE(parse_numbers("1,,2"));
  EXPECT_FALSE(parse_numbers("1;2"));
  EXPECT_EQ(lower("Score_0"), "score_0");
  EXPECT_EQ(trim(" \ta b\r\n"), "a b");
  EXPECT_EQ(trim("   "), "");
}

CsvTable csv(const std::string& text, const CsvOptions& o = {}) {
  std::istringstream in(text);
  return parse_csv(in, "t.csv", o);
}

TEST(Csv, QuotesCrlfBomAndSeparators) {
  const CsvTable t = csv("\xEF\xBB\xBFid, note ,x\r\n\"a,1\",\"say \"\"hi\"\"\", 3 \r\n\r\n  \nb,\"two\nlines\",\n");
  EXPECT_EQ(t.header, (std::vector<std::string>{"id", "note", "x"}));
  EXPECT_EQ(t.separator, ',');
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_EQ(t.rows[0].cells, (std::vector<std::string>{"a,1", "say \"hi\"", "3"}));
  EXPECT_EQ(t.rows[0].line, 2);
  EXPECT_EQ(t.rows[1].cells, (std::vector<std::string>{"b", "two\nlines", ""}));
  EXPECT_EQ(t.rows[1].line, 5);
  EXPECT_EQ(t.column("note"), 1);
  EXPECT_EQ(t.column("missing"), -1);
  EXPECT_EQ(t.where(t.rows[1]), "t.csv:5");

  const CsvTable s = csv("# comment\nSubject ID;T-score\n# another\na;-2.5\n", {.comments = true});
  EXPECT_EQ(s.separator, ';');
  EXPECT_EQ(s.header_line, 2);
  ASSERT_EQ(s.rows.size(), 1u);
  EXPECT_EQ(s.rows[0].line, 4);
  EXPECT_EQ(s.rows[0].cells[1], "-2.5");
  EXPECT_EQ(csv("a\tb\n1\t 2\n").rows[0].cells, (std::vector<std::string>{"1", "2"}));
  EXPECT_EQ(csv("x,y\n1,2\n", {.header = false}).rows.size(), 2u);
  EXPECT_TRUE(csv("").header.empty());
}

TEST(Csv, ErrorsNameFileAndLine) {
  expect_error([] { csv("a,b\n1,2\n1,2,3\n"); }, {"t.csv:3: 3 fields, but the header has 2 columns"});
  expect_error([] { csv("a,b\n\"1,2\n"); }, {"t.csv:2", "never closed"});
  expect_error([] { csv("a,b\n\"1\"x,2\n"); }, {"t.csv:2", "after the closing quote"});
  expect_error([] { read_csv("/nonexistent/l.csv", {.what = "labels file"}); },
               {"/nonexistent/l.csv", "cannot open labels file"});
}

TEST(Csv, FieldsWrittenReadBackExactly) {
  const std::vector<std::string> fields = {"plain", "a,b", "semi;colon", "q\"uote", " padded ", "", "two\nlines", "tab\t"};
  std::string line;
  for (const auto& f : fields) line += (line.empty() ? "" : ",") + csv_field(f);
  EXPECT_EQ(csv_field("plain"), "plain");
  EXPECT_EQ(csv_field("a,b"), "\"a,b\"");
  EXPECT_EQ(csv(line + "\n", {.separator = ',', .header = false}).rows.at(0).cells, fields);
}

TEST(Json, LayoutNumbersAndNull) {
  Json j;
  j["name"] = "x \"y\"\n";
  j["n"] = 3;
  j["prior"] = std::vector<double>{2, 5, 0.1};
  j["nan"] = std::nan("");
  j["metric"] = {{"value", 0.5}, {"ci", {0.25, 0.75}}};
  j["rows"] = Json::array({Json{{"a", Json::array({1, 2})}}, Json{{"b", Json::array({Json::array({1})})}}});
  const std::string s = json_text(j);
  EXPECT_EQ(s,
            "{\n  \"name\": \"x \\\"y\\\"\\n\",\n  \"n\": 3,\n  \"prior\": [2, 5, 0.1],\n  \"nan\": null,\n"
            "  \"metric\": {\"value\": 0.5, \"ci\": [0.25, 0.75]},\n  \"rows\": [\n    {\"a\": [1, 2]},\n    {\n"
            "      \"b\": [[1]]\n    }\n  ]\n}");
  EXPECT_EQ(json_text(Json{{"a", 1}, {"b", Json::array()}, {"c", Json::object()}}), "{\"a\": 1, \"b\": [], \"c\": {}}");
  EXPECT_EQ(json_text(Json("caf\xe9")), "\"caf\xef\xbf\xbd\"");  // Latin-1 byte -> U+FFFD, not a throw
  // Whatever the layout, nlohmann reads the same document back.
  const auto back = nlohmann::json::parse(s);
  EXPECT_EQ(back["prior"][2].get<double>(), 0.1);
  EXPECT_TRUE(back["nan"].is_null());
  EXPECT_EQ(back["rows"][1]["b"][0][0], 1);
}

TEST(AtomicFile, ReplacesWholeAndLeavesNoTemporary) {
  const std::string dir = test::temp_dir(), path = dir + "/a.svg";
  write_atomic(path, "<svg/>");
  write_atomic(path, "<svg></svg>");
  EXPECT_EQ(slurp(path), "<svg></svg>");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), {}), 1);
  try {
    write_atomic(dir + "/missing/b.svg", "x");
    FAIL();
  } catch (const Error& e) {
    EXPECT_HAS(std::string(e.what()), "missing/b.svg");
  }
  {
    AtomicFile f(path);  // abandoned before commit: the old file stays, the temporary goes
    f.write("half");
  }
  EXPECT_EQ(slurp(path), "<svg></svg>");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), {}), 1);
  AtomicFile g(path);
  g.write("new ");
  g.write(std::string(3, 'x'));
  EXPECT_EQ(slurp(path), "<svg></svg>");  // nothing visible before commit
  g.commit();
  EXPECT_EQ(slurp(path), "new xxx");
  EXPECT_THROW(g.write("late"), Error);
}

// Safe outputs (issue 11): a symlink is followed, not replaced; a FIFO or a device is written
// in place, never replaced by a regular file; a FIFO without a reader and a directory are
// errors naming the target; a full device is an error, not a silent success.
TEST(AtomicFile, SymlinksFollowedDevicesAndFifosWrittenInPlace) {
  const std::string dir = test::temp_dir();
  write_atomic(dir + "/real.csv", "old");
  fs::create_symlink("real.csv", dir + "/link.csv");
  write_atomic(dir + "/link.csv", "new");
  EXPECT_TRUE(fs::is_symlink(dir + "/link.csv"));
  EXPECT_EQ(slurp(dir + "/real.csv"), "new");

  const std::string fifo = dir + "/pipe";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  expect_error([&] { write_atomic(fifo, "x"); }, {fifo, "not a regular file", "cannot be opened"});
  std::string got;
  std::thread reader([&] { got = slurp(fifo); });
  while (true) {  // wait until the reader has the FIFO open
    try {
      write_atomic(fifo, "through the pipe");
      break;
    } catch (const Error&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  reader.join();
  EXPECT_EQ(got, "through the pipe");
  EXPECT_EQ(fs::status(fifo).type(), fs::file_type::fifo);  // still the FIFO, not a file

  expect_error([&] { write_atomic(dir, "x"); }, {dir, "is a directory"});
  if (fs::exists("/dev/full")) {  // a character device: written in place, and a full one fails
    expect_error([&] { write_atomic("/dev/full", "x"); }, {"/dev/full", "failed"});
    EXPECT_EQ(fs::status("/dev/full").type(), fs::file_type::character);
  }
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), {}), 3);  // real.csv, link.csv, pipe: no temporaries
}

}  // namespace
}  // namespace mc::io
