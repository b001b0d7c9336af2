#include "daemon/app_spec.hpp"

#include <algorithm>
#include <cctype>

namespace corral::daemon {

namespace {

error bad(const std::string& what) { return error(std::make_error_code(std::errc::invalid_argument), what); }

}  // namespace

bool valid_app_name(const std::string& name) {
  if (name.empty() || name.size() > 100 || name == "all" || name[0] == '.') return false;
  if (std::all_of(name.begin(), name.end(), [](unsigned char c) { return std::isdigit(c); })) return false;
  return std::all_of(name.begin(), name.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '@';
  });
}

json to_json(const app_spec& s) {
  const auto& l = s.lifecycle;
  const auto& p = l.policy;
  return json{{"name", s.name},
              {"argv", s.argv},
              {"cwd", s.cwd},
              {"env", s.env},
              {"instances", s.instances},
              {"time", s.time},
              {"merge_logs", s.merge_logs},
              {"max_log_size", s.max_log_size},
              {"log_retain", s.log_retain},
              {"kill_signal", s.kill_signal},
              {"shutdown_with_message", s.shutdown_with_message},
              {"kill_timeout", l.kill_timeout.count()},
              {"wait_ready", l.wait_ready},
              {"listen_timeout", l.listen_timeout.count()},
              {"autorestart", p.autorestart},
              {"restart_delay", p.restart_delay.count()},
              {"exp_backoff_restart_delay", p.exp_backoff_restart_delay.count()},
              {"min_uptime", p.min_uptime.count()},
              {"max_restarts", p.max_restarts},
              {"stop_exit_codes", p.stop_exit_codes},
              {"running", s.running},
              {"interpreter", s.interpreter},
              {"listen", s.listen},
              {"lb", s.lb}};
}

result<app_spec> app_spec_from_json(const json& j) {
  if (!j.is_object()) return bad("app: expected an object");
  app_spec s;
  try {
    s.name = j.at("name").get<std::string>();
    s.argv = j.at("argv").get<std::vector<std::string>>();
    s.cwd = j.value("cwd", std::string());
    s.env = j.value("env", std::map<std::string, std::string>());
    s.instances = j.value("instances", 1);
    s.time = j.value("time", false);
    s.merge_logs = j.value("merge_logs", true);
    s.max_log_size = j.value("max_log_size", uint64_t{10u << 20});
    s.log_retain = j.value("log_retain", 5);
    s.kill_signal = j.value("kill_signal", 2);
    s.shutdown_with_message = j.value("shutdown_with_message", false);
    auto& l = s.lifecycle;
    l.kill_timeout = ms(j.value("kill_timeout", int64_t{1600}));
    l.wait_ready = j.value("wait_ready", false);
    l.listen_timeout = ms(j.value("listen_timeout", int64_t{3000}));
    auto& p = l.policy;
    p.autorestart = j.value("autorestart", true);
    p.restart_delay = ms(j.value("restart_delay", int64_t{0}));
    p.exp_backoff_restart_delay = ms(j.value("exp_backoff_restart_delay", int64_t{0}));
    p.min_uptime = ms(j.value("min_uptime", int64_t{1000}));
    p.max_restarts = j.value("max_restarts", 16);
    p.stop_exit_codes = j.value("stop_exit_codes", std::vector<int>());
    s.running = j.value("running", true);
    s.interpreter = j.value("interpreter", std::string());
    s.listen = j.value("listen", std::vector<std::string>());
    s.lb = j.value("lb", std::string("shared"));
  } catch (const json::exception& e) {
    return bad(std::string("app: ") + e.what());
  }
  if (!valid_app_name(s.name)) return bad("app: invalid name '" + s.name + "' (letters, digits, - _ . @; not a number)");
  if (s.argv.empty() || s.argv[0].empty()) return bad("app '" + s.name + "': empty command");
  if (s.instances < 1 || s.instances > 1024) return bad("app '" + s.name + "': instances must be 1..1024");
  if (s.kill_signal < 1 || s.kill_signal > 64) return bad("app '" + s.name + "': bad kill_signal");
  auto& l = s.lifecycle;
  if (l.kill_timeout.count() < 0 || l.listen_timeout.count() < 0 || l.policy.restart_delay.count() < 0 ||
      l.policy.exp_backoff_restart_delay.count() < 0 || l.policy.min_uptime.count() < 0 || l.policy.max_restarts < 0)
    return bad("app '" + s.name + "': negative duration or count");
  if (s.log_retain < 0 || s.log_retain > 1000) return bad("app '" + s.name + "': log_retain must be 0..1000");
  if (s.max_log_size != 0 && s.max_log_size < 4096)
    return bad("app '" + s.name + "': max_log_size must be 0 (never rotate) or at least 4096 bytes");
  if (s.listen.size() > 64) return bad("app '" + s.name + "': too many listen addresses");
  for (const auto& l : s.listen)
    if (auto a = parse_listen(l); !a) return bad("app '" + s.name + "': " + a.err().message());
  if (s.lb != "shared" && s.lb != "round_robin")
    return bad("app '" + s.name + "': lb must be shared or round_robin, got '" + s.lb + "'");
  if (s.lb == "round_robin" && s.listen.empty())
    return bad("app '" + s.name + "': lb round_robin needs a port or listen address (cluster mode)");
  return s;
}

result<net::address> parse_listen(const std::string& text) {
  net::address a;
  if (text.rfind("unix:", 0) == 0) {
    a.path = text.substr(5);
    if (a.path.empty() || a.path[0] != '/') return bad("listen '" + text + "': a Unix socket path must be absolute");
    return a;
  }
  auto colon = text.rfind(':');
  if (colon == std::string::npos) return bad("listen '" + text + "': expected host:port or unix:/path");
  std::string host = text.substr(0, colon), port = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), [](unsigned char c) { return std::isdigit(c); }))
    return bad("listen '" + text + "': bad port");
  a.port = std::stoi(port);
  if (a.port > 65535) return bad("listen '" + text + "': port above 65535");
  a.host = host.empty() ? "0.0.0.0" : host;
  return a;
}

}  // namespace corral::daemon
