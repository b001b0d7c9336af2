#include "daemon/app_spec.hpp"

#include <algorithm>
#include <cctype>

#include "daemon/cron.hpp"
#include "daemon/json_fields.hpp"
#include "daemon/log_lines.hpp"

namespace corral::daemon {

namespace {

error bad(const std::string& what) { return error(std::make_error_code(std::errc::invalid_argument), what); }

// watch's paths are absolute (the CLI resolved them against the cwd), its
// patterns not empty; both lists bounded.
std::string check_watch(const app_spec& s) {
  if (s.watch.size() > limits::max_watch)
    return "watch: at most " + std::to_string(limits::max_watch) + " paths, got " + std::to_string(s.watch.size());
  for (const auto& p : s.watch)
    if (p.empty() || p[0] != '/' || p.find('\0') != std::string::npos)
      return "watch: '" + p + "' is not an absolute path";
  if (s.ignore_watch.size() > limits::max_ignore_watch)
    return "ignore_watch: at most " + std::to_string(limits::max_ignore_watch) + " patterns, got " +
           std::to_string(s.ignore_watch.size());
  for (const auto& p : s.ignore_watch)
    if (p.empty() || p.size() > limits::max_pattern || p.find('\0') != std::string::npos)
      return "ignore_watch: a pattern must be 1.." + std::to_string(limits::max_pattern) + " characters, without NUL";
  return {};
}

// increment_var names a variable of env whose value is a whole number
// (instance i gets it plus i).
std::string increment_problem(const app_spec& s) {
  if (auto why = env_var_problem(s.increment_var); !why.empty()) return why;
  if (s.increment_var == s.instance_var || s.increment_var == "CORRAL_INSTANCE")
    return "'" + s.increment_var + "' is the instance's index already";
  auto it = s.env.find(s.increment_var);
  if (it == s.env.end())
    return "'" + s.increment_var + "' is not in env: give its first value there (" + s.increment_var + "=3000)";
  if (!is_whole_number(it->second))
    return "'" + s.increment_var + "': env " + s.increment_var + " is '" + it->second + "', not a whole number";
  return {};
}

}  // namespace

bool is_whole_number(const std::string& text) {
  size_t digits = text.size() - (!text.empty() && text[0] == '-' ? 1 : 0);
  // Up to 15 digits: n + 1024 instances stays exact and far from overflow.
  return digits > 0 && digits <= 15 &&
         std::all_of(text.end() - static_cast<std::ptrdiff_t>(digits), text.end(),
                     [](unsigned char c) { return std::isdigit(c); });
}

std::string env_var_problem(const std::string& name) {
  bool ok = !name.empty() && !std::isdigit(static_cast<unsigned char>(name[0])) &&
            std::all_of(name.begin(), name.end(), [](unsigned char c) { return std::isalnum(c) || c == '_'; });
  if (!ok) return "'" + name + "' is not a variable name (letters, digits and _, not starting with a digit)";
  static const char* const ours[] = {"CORRAL_APP_NAME", "CORRAL_HOME",     "CORRAL_CHANNEL_FD", "CORRAL_WORKER_ID",
                                     "NODE_CHANNEL_FD", "NODE_CHANNEL_SERIALIZATION_MODE",    "LISTEN_FDS",
                                     "LISTEN_PID",      "LISTEN_FDNAMES",  "NOTIFY_SOCKET"};
  for (const char* k : ours)
    if (name == k) return "'" + name + "' is set by corral itself";
  return {};
}

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
              {"namespace", s.namespace_name},
              {"argv", s.argv},
              {"cwd", s.cwd},
              {"env", s.env},
              {"instances", s.instances},
              {"time", s.time},
              {"merge_logs", s.merge_logs},
              {"log_date_format", s.log_date_format},
              {"log_type", s.log_type},
              {"out_file", s.out_file},
              {"error_file", s.error_file},
              {"log_file", s.log_file},
              {"pid_file", s.pid_file},
              {"instance_var", s.instance_var},
              {"increment_var", s.increment_var},
              {"filter_env", s.filter_env},
              {"max_log_size", s.max_log_size},
              {"log_retain", s.log_retain},
              {"max_memory_restart", s.max_memory_restart},
              {"cron_restart", s.cron_restart},
              {"watch", s.watch},
              {"ignore_watch", s.ignore_watch},
              {"watch_delay", s.watch_delay.count()},
              {"uid", s.uid},
              {"gid", s.gid},
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
              {"lb", s.lb},
              {"defer_accept", s.defer_accept}};
}

result<app_spec> app_spec_from_json(const json& j, const std::string& unnamed) {
  if (!j.is_object()) return bad(unnamed + ": expected an object, got " + json_kind(j));
  json_fields f(j);
  app_spec s;
  f.require("name");
  s.name = f.text("name");
  std::string who = f.error().empty() ? "app '" + s.name + "'" : unnamed;
  s.namespace_name = f.text("namespace", s.namespace_name);
  f.require("argv");
  s.argv = f.texts("argv");
  s.cwd = f.text("cwd");
  s.env = f.text_map("env");
  s.instances = static_cast<int>(f.whole("instances", 1, limits::max_instances, s.instances));
  s.time = f.boolean("time", s.time);
  s.merge_logs = f.boolean("merge_logs", s.merge_logs);
  s.log_date_format = f.text("log_date_format");
  if (auto why = log_date_format_problem(s.log_date_format); !why.empty()) f.fail("log_date_format " + why);
  s.log_type = f.text("log_type", s.log_type);
  if (s.log_type != "raw" && s.log_type != "json") f.fail("log_type must be raw or json, got '" + s.log_type + "'");
  for (auto [key, field] : {std::pair{"out_file", &s.out_file}, {"error_file", &s.error_file}, {"log_file", &s.log_file},
                            {"pid_file", &s.pid_file}}) {
    *field = f.text(key);
    if (!field->empty() && (field->front() != '/' || field->back() == '/' || field->find('\0') != std::string::npos))
      f.fail(std::string(key) + " must be an absolute path to a file, got '" + *field + "'");
  }
  s.instance_var = f.text("instance_var", s.instance_var);
  if (auto why = env_var_problem(s.instance_var); !why.empty()) f.fail("instance_var " + why);
  s.filter_env = f.texts("filter_env");
  if (s.filter_env.size() > limits::max_ignore_watch) f.fail("filter_env: at most 256 prefixes");
  s.increment_var = f.text("increment_var");
  if (auto why = s.increment_var.empty() ? std::string() : increment_problem(s); !why.empty())
    f.fail("increment_var " + why);
  s.max_log_size = f.whole_unsigned("max_log_size", 0, UINT64_MAX, s.max_log_size);
  if (s.max_log_size != 0 && s.max_log_size < limits::min_log_size)
    f.fail("max_log_size must be 0 (never rotate) or at least " + std::to_string(limits::min_log_size) + ", got " +
           std::to_string(s.max_log_size));
  s.log_retain = static_cast<int>(f.whole("log_retain", 0, limits::max_log_retain, s.log_retain));
  s.max_memory_restart = f.whole_unsigned("max_memory_restart", 0, UINT64_MAX, s.max_memory_restart);
  if (s.max_memory_restart != 0 && s.max_memory_restart < limits::min_memory_restart)
    f.fail("max_memory_restart must be 0 (no limit) or at least " + std::to_string(limits::min_memory_restart) +
           ", got " + std::to_string(s.max_memory_restart));
  s.cron_restart = f.text("cron_restart");
  if (!s.cron_restart.empty())
    if (auto c = cron_schedule::parse(s.cron_restart); !c) f.fail("cron_restart: " + c.err().message());
  s.watch = f.texts("watch");
  s.ignore_watch = f.texts("ignore_watch");
  s.uid = f.whole("uid", -1, limits::max_id, s.uid);
  s.gid = f.whole("gid", -1, limits::max_id, s.gid);
  // Else the process would keep the daemon's group (root's, for a root daemon).
  if (s.uid >= 0 && s.gid < 0) f.fail("uid " + std::to_string(s.uid) + " needs a gid too (its user's primary group)");
  s.kill_signal = static_cast<int>(f.whole("kill_signal", 1, limits::max_signal, s.kill_signal));
  s.shutdown_with_message = f.boolean("shutdown_with_message", s.shutdown_with_message);
  auto duration = [&f](const char* key, ms fallback) { return ms(f.whole(key, 0, limits::max_ms, fallback.count())); };
  auto& l = s.lifecycle;
  s.watch_delay = duration("watch_delay", s.watch_delay);
  l.kill_timeout = duration("kill_timeout", l.kill_timeout);
  l.wait_ready = f.boolean("wait_ready", l.wait_ready);
  l.listen_timeout = duration("listen_timeout", l.listen_timeout);
  auto& p = l.policy;
  p.autorestart = f.boolean("autorestart", p.autorestart);
  p.restart_delay = duration("restart_delay", p.restart_delay);
  p.exp_backoff_restart_delay = duration("exp_backoff_restart_delay", p.exp_backoff_restart_delay);
  p.min_uptime = duration("min_uptime", p.min_uptime);
  p.max_restarts = static_cast<int>(f.whole("max_restarts", 0, limits::max_restarts, p.max_restarts));
  p.stop_exit_codes = f.wholes("stop_exit_codes", 0, limits::max_exit_code);
  s.running = f.boolean("running", s.running);
  s.interpreter = f.text("interpreter");
  s.listen = f.texts("listen");
  s.lb = f.text("lb", s.lb);
  s.defer_accept = f.boolean("defer_accept", s.defer_accept);
  if (!f.error().empty()) return bad(who + ": " + f.error());
  if (!valid_app_name(s.name)) return bad("app: invalid name '" + s.name + "' (letters, digits, - _ . @; not a number)");
  if (!valid_app_name(s.namespace_name))
    return bad(who + ": invalid namespace '" + s.namespace_name + "' (letters, digits, - _ . @; not a number, not all)");
  if (s.argv.empty() || s.argv[0].empty()) return bad(who + ": empty command");
  if (s.listen.size() > limits::max_listen) return bad(who + ": too many listen addresses");
  for (const auto& l : s.listen)
    if (auto a = parse_listen(l); !a) return bad(who + ": " + a.err().message());
  if (auto why = check_watch(s); !why.empty()) return bad(who + ": " + why);
  if (s.lb != "shared" && s.lb != "round_robin") return bad(who + ": lb must be shared or round_robin, got '" + s.lb + "'");
  if (s.lb == "round_robin" && s.listen.empty())
    return bad(who + ": lb round_robin needs a port or listen address (cluster mode)");
  if (s.defer_accept && s.listen.empty()) return bad(who + ": defer_accept needs a port or listen address (cluster mode)");
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
