// The control protocol between `corral` (the CLI) and the daemon: one JSON
// document per line over $CORRAL_HOME/corral.sock, the framing of
// corral::channel. Specified in docs/manager-protocol.md. Pure encode/decode.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "corral/error.hpp"

namespace corral::daemon {

using json = nlohmann::json;

inline constexpr int protocol_version = 1;

struct request {
  uint64_t id = 0;
  std::string cmd;
  json args = json::object();
};

struct response {
  uint64_t id = 0;
  bool ok = true;
  json result;  // when ok
  std::string error;  // when not ok: one line for the user
};

json encode(const request& r);
json encode(const response& r);
/// One line: the document and "\n".
std::string encode_line(const json& doc);

result<request> decode_request(const json& doc);
result<response> decode_response(const json& doc);
result<json> parse_line(std::string_view line);

}  // namespace corral::daemon
