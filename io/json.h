// JSON text for people and for the tools that read our files. Documents are built as
// nlohmann::ordered_json (members stay in the order they were added) and printed here, because
// nlohmann's dump() knows only "one line without spaces" or "one value per line", and prints
// doubles such as 2.0 as "2.0". The layout:
//   - ", " and ": " between items (Python's json.dumps), strings escaped by nlohmann;
//   - numbers as the shortest decimal that reads back exactly (io/text.h), NaN and infinities as
//     null (JSON has neither);
//   - a container at most two levels deep ({"value": 0.5, "ci": [0.4, 0.6]}) on one line, a
//     deeper one with each item on its own line, indented by two spaces per level.
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <string>

namespace mc::io {

using Json = nlohmann::ordered_json;

std::string json_text(const Json& j);

}  // namespace mc::io
