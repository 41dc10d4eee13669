// Numbers and words as MedConv writes and reads them: one formatter for doubles (the shortest
// decimal that reads back exactly, std::to_chars), whole-string number parsing (std::from_chars,
// so "1.5x" or "" is an error, never a silent 1.5 or 0), and the few string helpers the readers
// share.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mc::io {

// The shortest decimal that reads back as exactly v: 0.1 -> "0.1", 2.0 -> "2", 1e-300 ->
// "1e-300". NaN and infinities come out as "nan", "inf", "-inf" (JSON writers map them to null).
std::string shortest(double v);
// v with exactly `decimals` digits after the point, correctly rounded (printf's "%.*f"); "-0.00"
// comes out as "0.00".
std::string fixed(double v, int decimals);

// printf's "%g" (six significant digits, no trailing zeros): 0.5, 1, 1e-07. For labels and
// headings, not for numbers that must read back exactly.
std::string general(double v);

// The whole of s as a number (an optional leading '+' is allowed; no spaces), else nullopt.
// parse_double accepts "nan" and "inf" as std::from_chars does: callers that need finite values
// check std::isfinite.
std::optional<double> parse_double(std::string_view s);
std::optional<int64_t> parse_int(std::string_view s);

// The numbers of "0.8,0.1,0.1" or "400, 2000" (each as parse_double reads it, spaces around
// it allowed), else nullopt.
std::optional<std::vector<double>> parse_numbers(std::string_view s, char sep = ',');

std::string lower(std::string_view s);           // ASCII only
std::string_view trim(std::string_view s);       // spaces, tabs, CR, LF at both ends
std::string joined(const std::vector<std::string>& v, std::string_view sep = ",");  // "a,b,c"

}  // namespace mc::io
