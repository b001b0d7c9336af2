// Internal: how deep a JSON text nests, for the parsers that take JSON from
// outside (channel lines, request bodies).
//
// nlohmann parses any depth without recursion, but copying, comparing or
// dumping the value it builds recurses: a few tens of thousands of levels
// (`[[[[...]]]]`, two bytes a level) overflow the stack of whoever touches
// the message. Such a text is refused before it is parsed.
#pragma once

#include <cstddef>
#include <string_view>

namespace corral::detail {

/// The deepest nesting a received JSON document may have. Node 20 cannot
/// send deeper: its JSON.stringify recurses and runs out of stack at about
/// 4,000 levels. A copy of 10,000 levels takes well under a megabyte of stack.
inline constexpr int max_json_nesting = 10000;

/// Whether `text` opens more than `limit` arrays or objects inside each
/// other (brackets in strings aside). Says nothing of whether it is JSON.
inline bool json_nests_deeper_than(std::string_view text, int limit) noexcept {
  int depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

}  // namespace corral::detail
