#include "daemon/protocol.hpp"


namespace corral::daemon {

namespace {

error bad(const std::string& what) { return error(std::make_error_code(std::errc::bad_message), what); }

}  // namespace

json encode(const request& r) { return json{{"id", r.id}, {"cmd", r.cmd}, {"args", r.args}}; }

json encode(const response& r) {
  json j{{"id", r.id}, {"ok", r.ok}};
  if (r.ok)
    j["result"] = r.result;
  else
    j["error"] = r.error;
  return j;
}

std::string encode_line(const json& doc) {
  // error_handler::replace: an app's name or log line with invalid UTF-8 must
  // not throw on the daemon's loop.
  return doc.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

result<json> parse_line(std::string_view line) {
  auto j = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return bad("control: malformed JSON line");
  return j;
}

result<request> decode_request(const json& j) {
  if (!j.is_object()) return bad("control: request must be an object");
  request r;
  auto id = j.find("id");
  if (id == j.end() || !id->is_number_unsigned()) return bad("control: request needs an unsigned \"id\"");
  r.id = id->get<uint64_t>();
  auto cmd = j.find("cmd");
  if (cmd == j.end() || !cmd->is_string()) return bad("control: request needs a string \"cmd\"");
  r.cmd = cmd->get<std::string>();
  auto args = j.find("args");
  if (args != j.end()) {
    if (!args->is_object()) return bad("control: \"args\" must be an object");
    r.args = *args;
  }
  return r;
}

result<response> decode_response(const json& j) {
  if (!j.is_object()) return bad("control: response must be an object");
  response r;
  auto id = j.find("id");
  auto ok = j.find("ok");
  if (id == j.end() || !id->is_number_unsigned() || ok == j.end() || !ok->is_boolean())
    return bad("control: response needs \"id\" and \"ok\"");
  r.id = id->get<uint64_t>();
  r.ok = ok->get<bool>();
  if (r.ok) {
    auto res = j.find("result");
    r.result = res == j.end() ? json() : *res;
  } else {
    auto e = j.find("error");
    if (e == j.end() || !e->is_string()) return bad("control: failed response needs a string \"error\"");
    r.error = e->get<std::string>();
  }
  return r;
}

}  // namespace corral::daemon
