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

/// 2: app specs with pid_file, instance_var, increment_var, uid, gid,
/// filter_env, running (autostart); restart/reload with env. A daemon of
/// version 1 ignores what it does not know, so the CLI refuses to send
/// those to it (`corral update` replaces it).
inline constexpr int protocol_version = 2;

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

/// Checks the request and the type of each argument a command reads; an
/// argument that is null is removed (as if absent). The error names the
/// argument and the type it must have: "args.target must be a string".
result<request> decode_request(const json& doc);
/// decode_request's check of `args` (an object), alone.
status check_args(json& args);
result<response> decode_response(const json& doc);
result<json> parse_line(std::string_view line);

}  // namespace corral::daemon
