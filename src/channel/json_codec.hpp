// Internal: the channel's JSON encoder and line parser.
//
// The channel's throughput is bounded by JSON work (profiled: nlohmann's lexer
// and its temporary strings were over half of a receiver's time), so the hot
// path has its own encoder, which writes straight into the output queue, and
// its own parser for the common case. Both produce exactly what nlohmann
// would: the encoder the bytes of json::dump(), the parser the same value;
// whatever the fast parser does not take (a syntax error, a number out of
// range, deep nesting) goes to nlohmann's parser, which has the last word.
#pragma once

#include <string>

#include "corral/channel.hpp"

namespace corral::detail {

/// Appends `v` as compact JSON (json::dump() with no indent). Invalid UTF-8
/// in a string becomes U+FFFD instead of throwing: send() never throws.
void append_json(std::string& out, const json& v);

/// Parses one line; a discarded value if it is not exactly one JSON document.
json parse_json_line(const char* begin, const char* end);

/// The fast parser alone, for tests: false if it left the line to nlohmann.
bool parse_json_fast_for_test(const char* begin, const char* end, json& out);

}  // namespace corral::detail
