#include "daemon/protocol.hpp"

#include <cstdint>


namespace corral::daemon {

namespace {

error bad(const std::string& what) { return error(std::make_error_code(std::errc::bad_message), what); }

enum class arg_type { string, boolean, integer, object };

// Every argument a command reads, with its type (docs/manager-protocol.md,
// Commands). Checked once here, so a command's handler reads them with
// value() and never meets a type it would throw on. A new argument belongs
// here. (`interval_ms` is monit's own, checked with its range there.)
struct arg_rule {
  const char* name;
  arg_type type;
};
constexpr arg_rule arg_rules[] = {
    {"target", arg_type::string},     {"resolve_error", arg_type::string}, {"app", arg_type::object},
    {"full", arg_type::boolean},      {"parallel", arg_type::integer},     {"instances", arg_type::integer},
    {"signal", arg_type::integer},    {"env", arg_type::object},           {"exe", arg_type::string},
};

bool has_type(const json& v, arg_type t) {
  switch (t) {
    case arg_type::string: return v.is_string();
    case arg_type::boolean: return v.is_boolean();
    case arg_type::object: return v.is_object();
    case arg_type::integer:
      if (v.is_number_unsigned()) return v.get<uint64_t>() <= static_cast<uint64_t>(INT32_MAX);
      return v.is_number_integer() && v.get<int64_t>() >= INT32_MIN && v.get<int64_t>() <= INT32_MAX;
  }
  return false;
}

const char* type_name(arg_type t) {
  switch (t) {
    case arg_type::string: return "a string";
    case arg_type::boolean: return "a boolean";
    case arg_type::object: return "an object";
    case arg_type::integer: return "an integer";
  }
  return "?";
}

}  // namespace

status check_args(json& args) {
  for (const auto& rule : arg_rules) {
    auto it = args.find(rule.name);
    if (it == args.end()) continue;
    if (it->is_null()) {
      args.erase(it);  // null: as if absent
      continue;
    }
    if (!has_type(*it, rule.type))
      return bad(std::string("args.") + rule.name + " must be " + type_name(rule.type) +
                 (rule.type == arg_type::integer && it->is_number_integer() ? " (32-bit)" : ""));
  }
  return {};
}

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
  if (auto s = check_args(r.args); !s) return s.err();
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
