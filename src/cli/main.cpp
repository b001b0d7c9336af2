// `corral`: the process manager's command line, and `corral daemon`.
// Every error is one line on stderr and a non-zero exit.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cerrno>
#include <string_view>
#include <filesystem>
#include <fmt/format.h>
#include <thread>

#include "client.hpp"
#include "daemon/app_spec.hpp"
#include "daemon/command_resolve.hpp"
#include "daemon/daemon.hpp"
#include "logs.hpp"
#include "monit.hpp"
#include "startup.hpp"
#include "table.hpp"

using namespace corral;
using json = nlohmann::json;

namespace {

constexpr int exit_error = 1;
constexpr int exit_usage = 2;

int fail(const std::string& msg, int code = exit_error) {
  std::fprintf(stderr, "corral: %s\n", msg.c_str());
  return code;
}

struct start_options {
  std::string command;
  std::string name;
  std::string instances = "1";
  std::string cwd;
  std::vector<std::string> env;
  std::string interpreter;
  bool time = false;
  bool log_per_instance = false;
  std::string max_log_size = "10M";
  int log_retain = 5;
  bool no_autorestart = false;
  bool wait_ready = false;
  bool shutdown_with_message = false;
  std::string kill_signal = "SIGINT";
  int64_t kill_timeout = 1600;
  int64_t restart_delay = 0;
  int64_t exp_backoff = 0;
  int64_t min_uptime = 1000;
  int64_t listen_timeout = 3000;
  int max_restarts = 16;
  std::vector<int> stop_exit_codes;
  std::vector<std::string> listen;
  int port = -1;
  std::vector<std::string> args;  // after --
};

result<int> parse_signal(const std::string& s) {
  std::string name = s;
  if (name.rfind("SIG", 0) == 0) name = name.substr(3);
  for (int sig = 1; sig < 32; ++sig) {
    const char* abbrev = sigabbrev_np(sig);
    if (abbrev && name == abbrev) return sig;
  }
  try {
    int n = std::stoi(s);
    if (n > 0 && n < 65) return n;
  } catch (...) {
  }
  return error(std::make_error_code(std::errc::invalid_argument), "--kill-signal: unknown signal '" + s + "'");
}

// "1048576", "512K", "10M", "1G" (powers of 1024); "0" means never.
result<uint64_t> parse_size(const std::string& s) {
  auto bad_size = [&] { return error(std::make_error_code(std::errc::invalid_argument),
                                     "expected a size like 10M, 512K or 1048576, got '" + s + "'"); };
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
  uint64_t bytes = n * mult;
  if (bytes != 0 && bytes < 4096) return error(std::make_error_code(std::errc::invalid_argument),
                                               "'" + s + "' is below the 4K minimum (0 means never rotate)");
  return bytes;
}

result<int> parse_instances(const std::string& s) {
  if (s == "max" || s == "0" || s == "-1") return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  try {
    size_t used = 0;
    int n = std::stoi(s, &used);
    if (used == s.size() && n > 0 && n <= 1024) return n;
  } catch (...) {
  }
  return error(std::make_error_code(std::errc::invalid_argument),
               "-i/--instances: expected a number 1..1024 or 'max', got '" + s + "'");
}

class session {
 public:
  explicit session(daemon::home_paths home) : home_(std::move(home)) {}

  result<json> call(const std::string& cmd, json args = json::object()) {
    if (!client_) {
      bool started = false;
      auto c = cli::client::connect_or_start(home_, started);
      if (!c) return c.err();
      client_.emplace(std::move(c.value()));
      if (started) {
        auto ping = client_->call("ping");
        if (ping && ping->value("restored", 0) > 0)
          std::fprintf(stderr, "corral: the daemon was not running; started a new one (pid %d) and restored %d app(s)\n",
                       ping->value("pid", 0), ping->value("restored", 0));
      }
    }
    return client_->call(cmd, std::move(args));
  }

  int print_list() {
    auto rows = call("list");
    if (!rows) return fail(rows.err().message());
    std::fputs(cli::format_table(*rows).c_str(), stdout);
    return 0;
  }

 private:
  daemon::home_paths home_;
  std::optional<cli::client> client_;
};

int cmd_start(session& s, const start_options& o) {
  auto n = parse_instances(o.instances);
  if (!n) return fail(n.err().message(), exit_usage);
  auto sig = parse_signal(o.kill_signal);
  if (!sig) return fail(sig.err().message(), exit_usage);
  std::error_code ec;
  std::string cwd = o.cwd.empty() ? std::filesystem::current_path(ec).string()
                                  : std::filesystem::absolute(o.cwd, ec).string();
  if (!o.cwd.empty() && !std::filesystem::is_directory(cwd, ec)) return fail("--cwd: not a directory: " + cwd, exit_usage);
  daemon::app_spec spec;
  for (const auto& kv : o.env) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) return fail("--env: expected K=V, got '" + kv + "'", exit_usage);
    spec.env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  const char* path = std::getenv("PATH");
  auto resolved = daemon::resolve_command(o.command, o.args, o.interpreter, cwd, path ? path : "/usr/bin:/bin");
  if (!resolved) {
    // Not a program: maybe the name or id of a known app to start again.
    auto r = s.call("start", {{"target", o.command}, {"resolve_error", resolved.err().message()}});
    if (!r) return fail(r.err().message());
    return s.print_list();
  }
  spec.name = o.name.empty() ? resolved->default_name : o.name;
  if (!daemon::valid_app_name(spec.name))
    return fail("invalid app name '" + spec.name + "' (use --name; letters, digits, - _ . @, not a number)", exit_usage);
  spec.argv = resolved->argv;
  spec.interpreter = resolved->interpreter;
  spec.cwd = cwd;
  spec.instances = *n;
  spec.time = o.time;
  auto log_size = parse_size(o.max_log_size);
  if (!log_size) return fail("--max-log-size: " + log_size.err().message(), exit_usage);
  spec.merge_logs = !o.log_per_instance;
  spec.max_log_size = *log_size;
  spec.log_retain = o.log_retain;
  spec.kill_signal = *sig;
  spec.shutdown_with_message = o.shutdown_with_message;
  auto& l = spec.lifecycle;
  l.kill_timeout = daemon::ms(o.kill_timeout);
  l.wait_ready = o.wait_ready;
  l.listen_timeout = daemon::ms(o.listen_timeout);
  l.policy.autorestart = !o.no_autorestart;
  l.policy.restart_delay = daemon::ms(o.restart_delay);
  l.policy.exp_backoff_restart_delay = daemon::ms(o.exp_backoff);
  l.policy.min_uptime = daemon::ms(o.min_uptime);
  l.policy.max_restarts = o.max_restarts;
  l.policy.stop_exit_codes = o.stop_exit_codes;
  if (o.port >= 0) spec.listen.push_back("0.0.0.0:" + std::to_string(o.port));
  for (const auto& text : o.listen) {
    auto addr = daemon::parse_listen(text);
    if (!addr) return fail("--listen: " + addr.err().message(), exit_usage);
    spec.listen.push_back(text);
  }
  auto r = s.call("start", {{"app", daemon::to_json(spec)}});
  if (!r) return fail(r.err().message());
  return s.print_list();
}

int cmd_target(session& s, const std::string& cmd, const std::string& target) {
  auto r = s.call(cmd, {{"target", target}});
  if (!r) return fail(r.err().message());
  return s.print_list();
}

int cmd_logs(session& s, const std::string& target, int lines, bool follow, bool err_only, bool out_only) {
  auto r = s.call("logs_info", {{"target", target.empty() ? "all" : target}});
  if (!r) return fail(r.err().message());
  std::vector<cli::log_source> sources;
  bool one_app = r->size() == 1;
  bool one_stream = err_only || out_only;
  for (const auto& a : *r) {
    std::string name = a.value("name", "");
    if (!err_only) sources.push_back({one_app && one_stream ? "" : name + " out | ", a.value("out", "")});
    if (!out_only) sources.push_back({one_app && one_stream ? "" : name + " err | ", a.value("err", "")});
  }
  return cli::show_logs(sources, lines, follow);
}

bool process_gone(pid_t pid) {
  if (::kill(pid, 0) != 0) return true;
  // A zombie waiting for its (adoptive) parent is gone for us.
  std::FILE* f = std::fopen(fmt::format("/proc/{}/stat", pid).c_str(), "r");
  if (!f) return true;
  char buf[512] = {};
  size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  std::string_view s(buf, n);
  auto close = s.rfind(')');
  return close != std::string_view::npos && close + 2 < s.size() && s[close + 2] == 'Z';
}

bool wait_gone(pid_t pid, std::chrono::milliseconds timeout) {
  if (pid <= 0) return true;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!process_gone(pid)) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

// Splits argv at the first "--": what follows is the app's arguments.
std::vector<std::string> split_dashdash(int argc, char** argv, std::vector<std::string>& after) {
  std::vector<std::string> before;
  bool seen = false;
  for (int k = 0; k < argc; ++k) {
    std::string a = argv[k];
    if (!seen && a == "--") {
      seen = true;
      continue;
    }
    (seen ? after : before).push_back(a);
  }
  return before;
}

// `corral __exec -- prog args...`: how the daemon starts an instance in
// cluster mode. systemd's LISTEN_PID must be the app's own pid, known only
// after fork, and uv_spawn runs nothing of ours between fork and exec; so the
// daemon execs this, which sets it and execs the app in the same process.
// Parsed before CLI11: it runs on every instance start.
[[noreturn]] void exec_with_listen_pid(int argc, char** argv) {
  int k = 2;
  if (k < argc && std::string_view(argv[k]) == "--") ++k;
  if (k >= argc) {
    std::fputs("corral __exec: no program\n", stderr);
    std::_Exit(127);
  }
  ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
  ::execvp(argv[k], argv + k);
  std::fprintf(stderr, "corral: exec %s: %s\n", argv[k], std::strerror(errno));
  std::_Exit(127);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string_view(argv[1]) == "__exec") exec_with_listen_pid(argc, argv);
  ::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"corral: a process manager for programs in any language"};
  app.require_subcommand(1);
  auto home = daemon::resolve_home();

  start_options so;
  auto* start = app.add_subcommand("start", "start an app (a program, a script, or a shell command)");
  start->add_option("command", so.command, "program, script (.py .js .sh) or shell command")->required();
  start->add_option("-n,--name", so.name, "app name (default: the program's name)");
  start->add_option("-i,--instances", so.instances, "number of instances, or 'max' for one per CPU");
  start->add_option("--cwd", so.cwd, "working directory");
  start->add_option("--env", so.env, "K=V added to the environment (repeatable)");
  start->add_option("--interpreter", so.interpreter, "run the script with this interpreter ('none' to exec it)");
  start->add_flag("--time", so.time, "prefix log lines with a timestamp");
  start->add_flag("--log-per-instance", so.log_per_instance,
                  "one pair of log files per instance (<name>-out-<i>.log) instead of merged files");
  start->add_option("--max-log-size", so.max_log_size, "rotate a log file at this size (bytes, or 10K/10M/1G; 0: never; default 10M)");
  start->add_option("--log-retain", so.log_retain, "rotated log files kept per file (default 5)")->check(CLI::Range(0, 1000));
  start->add_flag("--no-autorestart", so.no_autorestart, "do not restart the app when it exits");
  start->add_flag("--wait-ready", so.wait_ready, "online only once the app sends 'ready'");
  start->add_flag("--shutdown-with-message", so.shutdown_with_message, "stop by sending 'shutdown' on the channel");
  start->add_option("--kill-signal", so.kill_signal, "graceful stop signal (default SIGINT)");
  start->add_option("--kill-timeout", so.kill_timeout, "ms before SIGKILL (default 1600)")->check(CLI::NonNegativeNumber);
  start->add_option("--restart-delay", so.restart_delay, "ms before a restart")->check(CLI::NonNegativeNumber);
  start->add_option("--exp-backoff-restart-delay", so.exp_backoff, "first backoff delay in ms (doubles)")
      ->check(CLI::NonNegativeNumber);
  start->add_option("--min-uptime", so.min_uptime, "ms under which a run is unstable (default 1000)")
      ->check(CLI::NonNegativeNumber);
  start->add_option("--max-restarts", so.max_restarts, "unstable restarts before errored (default 16)")
      ->check(CLI::NonNegativeNumber);
  start->add_option("--listen-timeout", so.listen_timeout, "ms to wait for 'ready' (default 3000)")
      ->check(CLI::NonNegativeNumber);
  start->add_option("--stop-exit-codes", so.stop_exit_codes, "exit codes that mean done (no restart)");
  start->add_option("--port", so.port, "cluster mode: the daemon listens on this TCP port (0: any) for the instances")
      ->check(CLI::Range(0, 65535));
  start->add_option("--listen", so.listen, "cluster mode: host:port or unix:/path to listen on (repeatable)");

  std::string target;
  auto target_cmd = [&](const char* name, const char* help) {
    auto* c = app.add_subcommand(name, help);
    c->add_option("target", target, "app name, id, or all")->required();
    return c;
  };
  auto* stop = target_cmd("stop", "stop an app (name, id or all)");
  auto* restart = target_cmd("restart", "restart an app (name, id or all)");
  auto* del = target_cmd("delete", "stop and forget an app (name, id or all)");
  auto* describe = target_cmd("describe", "everything about an app");
  int parallel = 1;
  auto* reload = target_cmd("reload", "replace the instances one by one with no downtime (cluster mode)");
  reload->add_option("--parallel", parallel, "instances replaced at once (default 1)")->check(CLI::Range(1, 1024));
  std::string scale_to;
  auto* scale = target_cmd("scale", "set an app's number of instances");
  scale->add_option("instances", scale_to, "the new number of instances (or max)")->required();
  auto* list = app.add_subcommand("list", "the apps as a table");
  list->alias("ls");
  list->alias("status");
  auto* jlist = app.add_subcommand("jlist", "the apps as JSON");
  auto* ping = app.add_subcommand("ping", "check that the daemon answers (starts it if needed)");
  int lines = 15;
  bool follow = false, err_only = false, out_only = false;
  auto* logs = app.add_subcommand("logs", "show the last lines of an app's logs");
  logs->add_option("target", target, "app name or id (default: all)");
  logs->add_option("--lines", lines, "how many lines (default 15)")->check(CLI::NonNegativeNumber);
  logs->add_flag("-f,--follow", follow, "keep printing new lines");
  logs->add_flag("--err", err_only, "stderr only");
  logs->add_flag("--out", out_only, "stdout only");
  auto* flush = app.add_subcommand("flush", "empty the log files");
  flush->add_option("target", target, "app name or id (default: all)");
  auto* save = app.add_subcommand("save", "remember the app list for resurrect");
  auto* resurrect = app.add_subcommand("resurrect", "start the apps saved by save");
  auto* kill = app.add_subcommand("kill", "stop every app, then the daemon");
  auto* daemon_cmd = app.add_subcommand("daemon", "run the daemon in the foreground");
  cli::monit_options mo;
  auto* monit = app.add_subcommand("monit", "live view of cpu, memory and logs (q or Ctrl+C quits)");
  monit->add_option("target", mo.target, "app name or id (default: all)");
  monit->add_flag("--once", mo.once, "print one snapshot and exit");
  monit->add_option("--interval", mo.interval_ms, "ms between refreshes (default 1000)")->check(CLI::Range(100, 60000));
  monit->add_option("--lines", mo.log_lines, "log lines per log file (default: fit the terminal; none when piped)")
      ->check(CLI::Range(0, 1000));
  cli::startup_options sto;
  auto* startup = app.add_subcommand("startup", "print (or --install) a systemd unit that runs the daemon at boot");
  auto* unstartup = app.add_subcommand("unstartup", "remove the unit written by startup --install");
  for (auto* c : {startup, unstartup}) {
    c->add_flag("--system", sto.system, "a system unit (default when root)");
    c->add_flag("--user", sto.user, "a systemd --user unit (default when not root)");
    c->add_option("--unit-dir", sto.unit_dir, "directory of the unit file (then systemctl is not run)");
  }
  startup->add_flag("--install", sto.install, "write the unit and enable it");

  std::vector<std::string> after;
  auto before = split_dashdash(argc, argv, after);
  if (before.size() > 1 && before[1][0] != '-') {
    bool known = false;
    for (auto* sub : app.get_subcommands({}))
      if (sub->check_name(before[1])) known = true;
    if (!known) return fail("unknown command '" + before[1] + "' (see corral --help)", exit_usage);
  }
  std::vector<char*> cargv;
  for (auto& a : before) cargv.push_back(a.data());
  try {
    app.parse(static_cast<int>(cargv.size()), cargv.data());
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return fail(e.what(), exit_usage);
  }
  if (!after.empty() && !start->parsed()) return fail("arguments after -- are only for start", exit_usage);
  so.args = after;

  if (daemon_cmd->parsed()) return daemon::run_daemon(home);
  if (monit->parsed()) return cli::run_monit(home, mo);
  if (startup->parsed()) return cli::run_startup(home, sto);
  if (unstartup->parsed()) return cli::run_unstartup(sto);
  session s(home);
  if (start->parsed()) return cmd_start(s, so);
  if (stop->parsed()) return cmd_target(s, "stop", target);
  if (restart->parsed()) return cmd_target(s, "restart", target);
  if (del->parsed()) return cmd_target(s, "delete", target);
  if (reload->parsed()) {
    auto r = s.call("reload", {{"target", target}, {"parallel", parallel}});
    if (!r) return fail(r.err().message());
    return s.print_list();
  }
  if (scale->parsed()) {
    auto n = parse_instances(scale_to);
    if (!n) return fail(n.err().message(), exit_usage);
    auto r = s.call("scale", {{"target", target}, {"instances", *n}});
    if (!r) return fail(r.err().message());
    return s.print_list();
  }
  if (list->parsed()) return s.print_list();
  if (describe->parsed()) {
    auto r = s.call("describe", {{"target", target}});
    if (!r) return fail(r.err().message());
    std::puts(r->dump(2).c_str());
    return 0;
  }
  if (jlist->parsed()) {
    auto r = s.call("list", {{"full", true}});
    if (!r) return fail(r.err().message());
    std::puts(r->dump().c_str());
    return 0;
  }
  if (ping->parsed()) {
    auto r = s.call("ping");
    if (!r) return fail(r.err().message());
    std::printf("pong (daemon pid %d, home %s)\n", r->value("pid", 0), r->value("home", "").c_str());
    return 0;
  }
  if (logs->parsed()) {
    if (err_only && out_only) return fail("--err and --out exclude each other", exit_usage);
    return cmd_logs(s, target, lines, follow, err_only, out_only);
  }
  if (flush->parsed()) {
    auto r = s.call("flush", {{"target", target.empty() ? "all" : target}});
    if (!r) return fail(r.err().message());
    std::puts("logs flushed");
    return 0;
  }
  if (save->parsed()) {
    auto r = s.call("save");
    if (!r) return fail(r.err().message());
    std::printf("saved %d app(s) to %s\n", r->value("apps", 0), r->value("path", "").c_str());
    return 0;
  }
  if (resurrect->parsed()) {
    auto r = s.call("resurrect");
    if (!r) return fail(r.err().message());
    return s.print_list();
  }
  if (kill->parsed()) {
    // No daemon, nothing to kill: do not start one just to stop it.
    auto c = cli::client::connect(home);
    if (!c) {
      std::puts("no daemon running");
      return 0;
    }
    auto ping = c->call("ping");
    if (!ping) return fail(ping.err().message());
    auto r = c->call("kill");
    if (!r) return fail(r.err().message());
    // Return only once the daemon is gone, so that the next command starts a
    // fresh one instead of reaching the old one's closing socket.
    if (!wait_gone(ping->value("pid", 0), std::chrono::seconds(10))) return fail("the daemon did not exit within 10 s");
    std::puts("daemon stopped");
    return 0;
  }
  return fail("no command", exit_usage);
}
