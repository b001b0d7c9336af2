#include "app_options.hpp"

#include <unistd.h>

#include <string.h>

#include <algorithm>
#include <cstdint>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <tuple>
#include <thread>

#include "daemon/command_resolve.hpp"
#include "daemon/cron.hpp"
#include "daemon/log_lines.hpp"
#include "daemon/paths.hpp"
#include "daemon/users.hpp"

namespace corral::cli {

namespace {

error invalid(const std::string& what) { return error(std::make_error_code(std::errc::invalid_argument), what); }

spec_outcome bad(const std::string& field, const std::string& message) { return {std::nullopt, {field, message}}; }

// watch's paths, absolute: each relative to the app's cwd ("" and "." are
// the cwd), once each. One that does not exist (yet) is taken: the daemon
// awaits it (a build's output directory, a config file made later); one
// that cannot be looked at (permission) is refused here, by name.
result<std::vector<std::string>> watch_paths(const std::vector<std::string>& given, const std::string& cwd) {
  namespace fs = std::filesystem;
  std::vector<std::string> out;
  for (const auto& g : given) {
    std::string p = g.empty() ? cwd : (fs::path(cwd) / g).lexically_normal().string();
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    std::error_code ec;
    const bool there = fs::exists(p, ec);
    if (!there && ec && ec != std::errc::no_such_file_or_directory && ec != std::errc::not_a_directory)
      return invalid(ec.message() + ": " + p);
    if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(std::move(p));
  }
  if (out.size() > daemon::limits::max_watch)
    return invalid("at most " + std::to_string(daemon::limits::max_watch) + " paths");
  return out;
}

}  // namespace

result<int> parse_signal(const std::string& s) {
  std::string name = s;
  if (name.rfind("SIG", 0) == 0) name = name.substr(3);
  for (int sig = 1; sig < 32; ++sig) {
    const char* abbrev = sigabbrev_np(sig);
    if (abbrev && name == abbrev) return sig;
  }
  try {
    size_t used = 0;
    int n = std::stoi(s, &used);
    if (used == s.size() && n > 0 && n <= daemon::limits::max_signal) return n;
  } catch (...) {
  }
  return invalid("unknown signal '" + s + "'");
}

result<uint64_t> parse_size(const std::string& s, uint64_t minimum, const std::string& min_text,
                            const std::string& zero) {
  auto bad_size = [&] { return invalid("expected a size like 10M, 512K or 1048576, got '" + s + "'"); };
  if (s.empty()) return bad_size();
  std::size_t digits = 0;
  while (digits < s.size() && std::isdigit(static_cast<unsigned char>(s[digits]))) ++digits;
  if (digits == 0 || digits > 12) return bad_size();
  uint64_t n = std::stoull(s.substr(0, digits));
  std::string unit = s.substr(digits);
  uint64_t mult = 1;
  if (unit == "K" || unit == "k" || unit == "KB" || unit == "kB") mult = 1u << 10;
  else if (unit == "M" || unit == "MB") mult = 1u << 20;
  else if (unit == "G" || unit == "GB") mult = 1u << 30;
  else if (!unit.empty()) return bad_size();
  // 12 digits of G pass 2^64: it would wrap (to 0, "never rotate", for 16 Gi G).
  if (n > UINT64_MAX / mult) return invalid("'" + s + "' is too large (at most 16 EiB)");
  uint64_t bytes = n * mult;
  if (bytes != 0 && bytes < minimum)
    return invalid("'" + s + "' is below the " + min_text + " minimum (0 means " + zero + ")");
  return bytes;
}

result<int> parse_instances(const std::string& s) {
  if (s == "max" || s == "0" || s == "-1") return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  try {
    size_t used = 0;
    int n = std::stoi(s, &used);
    if (used == s.size() && n > 0 && n <= daemon::limits::max_instances) return n;
  } catch (...) {
  }
  return invalid("expected a number 1.." + std::to_string(daemon::limits::max_instances) + " or 'max', got '" + s + "'");
}

result<std::string> log_path(const std::string& given, const std::string& cwd) {
  namespace fs = std::filesystem;
  if (given.empty()) return std::string();
  fs::path p = given;
  if (given == "~" || given.rfind("~/", 0) == 0) {
    const char* home = std::getenv("HOME");
    if (!home || !*home) return invalid("'" + given + "': $HOME is not set");
    p = fs::path(home) / given.substr(std::min<size_t>(2, given.size()));
  } else if (p.is_relative()) {
    p = fs::path(cwd) / p;
  }
  std::string out = p.lexically_normal().string();
  std::error_code ec;
  if (given.back() == '/' || fs::is_directory(out, ec)) return invalid("'" + given + "' is a directory, not a file");
  return out;
}

spec_outcome make_app_spec(const app_options& o, const std::string& base_dir, const std::string& path_env) {
  auto n = parse_instances(o.instances);
  if (!n) return bad("instances", n.err().message());
  auto sig = parse_signal(o.kill_signal);
  if (!sig) return bad("kill_signal", sig.err().message());
  auto log_size = parse_size(o.max_log_size);
  if (!log_size) return bad("max_log_size", log_size.err().message());
  auto memory = parse_size(o.max_memory_restart, daemon::limits::min_memory_restart, "1M", "no limit");
  if (!memory) return bad("max_memory_restart", memory.err().message());
  if (!o.cron_restart.empty())
    if (auto c = daemon::cron_schedule::parse(o.cron_restart); !c) return bad("cron_restart", c.err().message());
  if (o.log_retain < 0 || o.log_retain > daemon::limits::max_log_retain)
    return bad("log_retain", "expected 0.." + std::to_string(daemon::limits::max_log_retain) + ", got " +
                                 std::to_string(o.log_retain));
  for (auto [field, v] : {std::pair{"kill_timeout", o.kill_timeout}, {"restart_delay", o.restart_delay},
                          {"exp_backoff_restart_delay", o.exp_backoff_restart_delay}, {"min_uptime", o.min_uptime},
                          {"listen_timeout", o.listen_timeout}, {"max_restarts", int64_t{o.max_restarts}},
                          {"watch_delay", o.watch_delay}})
    if (v < 0) return bad(field, "must not be negative, got " + std::to_string(v));
  if (o.port < -1 || o.port > 65535) return bad("port", "expected 0..65535, got " + std::to_string(o.port));
  for (const auto& [k, v] : o.env)
    if (k.empty() || k.find('=') != std::string::npos) return bad("env", "bad variable name '" + k + "'");

  std::error_code ec;
  namespace fs = std::filesystem;
  std::string cwd = o.cwd.empty() ? base_dir : (fs::path(base_dir) / o.cwd).lexically_normal().string();
  if (cwd.size() > 1 && cwd.back() == '/') cwd.pop_back();
  if (!fs::is_directory(cwd, ec)) return bad("cwd", "not a directory: " + cwd);

  std::string log_paths[4];
  app_options quiet;  // disable_logs: the default paths become /dev/null
  if (o.disable_logs) {
    quiet.out_file = o.out_file.empty() ? "/dev/null" : o.out_file;
    quiet.error_file = o.error_file.empty() ? "/dev/null" : o.error_file;
  }
  const app_options& paths = o.disable_logs ? quiet : o;
  for (auto [field, given, to] : {std::tuple{"out_file", &paths.out_file, &log_paths[0]},
                                  {"error_file", &paths.error_file, &log_paths[1]},
                                  {"log_file", &o.log_file, &log_paths[2]},
                                  {"pid_file", &o.pid_file, &log_paths[3]}}) {
    auto path = log_path(*given, cwd);
    if (!path) return bad(field, path.err().message());
    *to = *path;
  }
  if (auto why = daemon::log_date_format_problem(o.log_date_format); !why.empty())
    return bad("log_date_format", "'" + o.log_date_format + "' " + why);
  auto watch = watch_paths(o.watch, cwd);
  if (!watch) return bad("watch", watch.err().message());
  for (const auto& p : o.ignore_watch)
    if (p.empty() || p.size() > daemon::limits::max_pattern)
      return bad("ignore_watch", "a pattern must be 1.." + std::to_string(daemon::limits::max_pattern) + " characters");
  if (o.ignore_watch.size() > daemon::limits::max_ignore_watch)
    return bad("ignore_watch", "at most " + std::to_string(daemon::limits::max_ignore_watch) + " patterns");

  auto resolved = daemon::resolve_command(o.script, o.args, o.interpreter, cwd, path_env);
  if (!resolved) return bad("script", resolved.err().message());
  daemon::app_spec spec;
  spec.name = (o.name.empty() ? resolved->default_name : o.name) + o.name_suffix;
  if (!daemon::valid_app_name(spec.name))
    return bad("name", "invalid app name '" + spec.name + "' (letters, digits, - _ . @, not a number)");
  if (!daemon::valid_app_name(o.namespace_name))
    return bad("namespace", "invalid namespace '" + o.namespace_name + "' (letters, digits, - _ . @, not a number, not all)");
  spec.namespace_name = o.namespace_name;
  spec.argv = resolved->argv;
  if (!o.interpreter_args.empty()) {
    if (resolved->interpreter == "exec" || resolved->interpreter == "shell")
      return bad("interpreter_args", "'" + o.script + "' does not run under an interpreter");
    spec.argv.insert(spec.argv.begin() + 1, o.interpreter_args.begin(), o.interpreter_args.end());
  }
  spec.interpreter = resolved->interpreter;
  spec.cwd = cwd;
  spec.env = o.env;
  spec.instances = *n;
  spec.time = o.time;
  spec.merge_logs = o.merge_logs;
  spec.log_date_format = o.log_date_format;
  if (o.log_type != "raw" && o.log_type != "json") return bad("log_type", "expected raw or json, got '" + o.log_type + "'");
  spec.log_type = o.log_type;
  spec.out_file = log_paths[0];
  spec.error_file = log_paths[1];
  spec.log_file = log_paths[2];
  spec.pid_file = log_paths[3];
  if (auto why = daemon::pid_file_problem(spec.pid_file); !spec.pid_file.empty() && !why.empty())
    return bad("pid_file", why);
  if (auto why = daemon::env_var_problem(o.instance_var); !why.empty()) return bad("instance_var", why);
  spec.instance_var = o.instance_var;
  spec.increment_var = o.increment_var;
  if (o.filter_env.size() > daemon::limits::max_ignore_watch) return bad("filter_env", "at most 256 prefixes");
  spec.filter_env = o.filter_env;
  if (!o.increment_var.empty()) {
    if (auto why = daemon::env_var_problem(o.increment_var); !why.empty()) return bad("increment_var", why);
    if (o.increment_var == o.instance_var || o.increment_var == "CORRAL_INSTANCE")
      return bad("increment_var", "'" + o.increment_var + "' is the instance's index already");
    auto v = o.env.find(o.increment_var);
    if (v == o.env.end())
      return bad("increment_var", "'" + o.increment_var + "' needs a first value in env (" + o.increment_var + "=3000)");
    if (!daemon::is_whole_number(v->second))
      return bad("increment_var", "env " + o.increment_var + " is '" + v->second + "', not a whole number");
  }
  if (!o.uid.empty()) {
    auto user = daemon::find_user(o.uid);
    auto number = daemon::parse_id(o.uid);
    if (!user && !number) return bad("uid", "no user '" + o.uid + "' in /etc/passwd");
    if (!user && o.gid.empty())
      return bad("uid", "uid " + o.uid + " is not in /etc/passwd, so its group is unknown: give the gid too");
    spec.uid = user ? user->uid : *number;
    if (user) spec.gid = user->gid;
    // This very user (the daemon's: the control socket takes no other) and
    // no group asked: nothing to switch, and the daemon's group stays even if
    // it is not the user's primary one (sg, systemd's Group=).
    if (static_cast<uid_t>(spec.uid) == ::geteuid() && o.gid.empty()) spec.uid = spec.gid = -1;
  }
  if (!o.gid.empty()) {
    auto group = daemon::find_group(o.gid);
    auto number = daemon::parse_id(o.gid);
    if (!group && !number) return bad("gid", "no group '" + o.gid + "' in /etc/group");
    spec.gid = group ? group->gid : *number;
  }
  spec.running = o.autostart;
  spec.max_log_size = *log_size;
  spec.log_retain = o.log_retain;
  spec.max_memory_restart = *memory;
  spec.cron_restart = o.cron_restart;
  spec.watch = std::move(*watch);
  spec.ignore_watch = o.ignore_watch;
  spec.watch_delay = daemon::ms(o.watch_delay);
  spec.kill_signal = *sig;
  spec.shutdown_with_message = o.shutdown_with_message;
  auto& l = spec.lifecycle;
  l.kill_timeout = daemon::ms(o.kill_timeout);
  l.wait_ready = o.wait_ready;
  l.listen_timeout = daemon::ms(o.listen_timeout);
  l.policy.autorestart = o.autorestart;
  l.policy.restart_delay = daemon::ms(o.restart_delay);
  l.policy.exp_backoff_restart_delay = daemon::ms(o.exp_backoff_restart_delay);
  l.policy.min_uptime = daemon::ms(o.min_uptime);
  l.policy.max_restarts = o.max_restarts;
  l.policy.stop_exit_codes = o.stop_exit_codes;
  if (o.port >= 0) spec.listen.push_back("0.0.0.0:" + std::to_string(o.port));
  for (const auto& text : o.listen) {
    auto addr = daemon::parse_listen(text);
    if (!addr) return bad("listen", addr.err().message());
    spec.listen.push_back(text);
  }
  if (o.lb != "shared" && o.lb != "round_robin")
    return bad("lb", "expected shared or round_robin, got '" + o.lb + "'");
  if (o.lb == "round_robin" && spec.listen.empty())
    return bad("lb", "round_robin balances cluster mode's connections: give a port or listen address too");
  spec.lb = o.lb;
  if (o.defer_accept && spec.listen.empty())
    return bad("defer_accept", "defers the daemon's accepts in cluster mode: give a port or listen address too");
  spec.defer_accept = o.defer_accept;
  return {std::move(spec), {}};
}

}  // namespace corral::cli
