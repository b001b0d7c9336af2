// `corral`: the process manager's command line, and `corral daemon`.
// Every error is one line on stderr and a non-zero exit.
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <charconv>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cerrno>
#include <string_view>
#include <filesystem>
#include <fmt/format.h>
#include <thread>

#include "app_options.hpp"
#include "client.hpp"
#include "daemon/launch.hpp"
#include "ecosystem.hpp"
#include "daemon/app_spec.hpp"
#include "daemon/command_resolve.hpp"
#include "daemon/daemon.hpp"
#include "logs.hpp"
#include "run.hpp"
#include "monit.hpp"
#include "startup.hpp"
#include "serve.hpp"
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

// `corral start` and `corral run` take the same flags; an ecosystem file
// takes only --env and --only.
struct start_options {
  std::string command;  // a program, script, shell command, or ecosystem file
  cli::app_options app;
  std::vector<std::string> env;  // K=V, or for a file also the NAME of env_NAME
  std::string interpreter_args;
  bool log_per_instance = false;
  bool no_autorestart = false;
  bool no_autostart = false;
  std::vector<std::string> only;
  CLI::App* sub = nullptr;
  CLI::Option* watch = nullptr;  // given with no path: the cwd
  CLI::Option* filter_env = nullptr;  // given with no prefix: all but PATH
};

// A whole number lo..hi, refused in the flag's words: CLI11's
// NonNegativeNumber prints DBL_MAX as its bound, and a value past the
// field's type is only "Could not convert".
CLI::Validator whole_number(int64_t lo, int64_t hi) {
  return CLI::Validator(
      [lo, hi](std::string& s) -> std::string {
        int64_t v = 0;
        auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec == std::errc() && end == s.data() + s.size() && v >= lo && v <= hi) return {};
        return fmt::format("expected a whole number {}..{}, got '{}'", lo, hi, s);
      },
      fmt::format("INT in {}..{}", lo, hi));
}

using daemon::limits::max_ms;

// A flag that may stand alone or take a comma-separated list, repeatable
// (`--watch`, `--watch src,lib`); the caller tells "alone" by its count.
CLI::Option* optional_list(CLI::App* c, const char* name, std::vector<std::string>& into, const std::string& help) {
  return c->add_option(name, into, help)
      ->expected(0, 1)
      ->delimiter(',')
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
}

void add_start_flags(CLI::App* c, start_options& so) {
  so.sub = c;
  auto& a = so.app;
  c->add_option("-n,--name", a.name, "app name (default: the program's name)");
  c->add_option("-i,--instances", a.instances, "number of instances, or 'max' for one per CPU");
  c->add_option("--namespace", a.namespace_name,
                "a group of apps that commands can name as one (corral restart <namespace>; default: default)");
  c->add_option("--cwd", a.cwd, "working directory");
  c->add_option("--env", so.env, "K=V added to the environment (repeatable); with a file, NAME selects env_NAME");
  c->add_option("--only", so.only, "with a file: only these apps (comma-separated)")->delimiter(',');
  c->add_option("--interpreter", a.interpreter, "run the script with this interpreter ('none' to exec it)");
  c->add_option("--interpreter-args", so.interpreter_args, "arguments for the interpreter, before the script");
  c->add_flag("--time", a.time, "prefix log lines with a timestamp");
  c->add_option("--log-date-format", a.log_date_format,
                "prefix log lines with local time in this form (dayjs tokens, PM2's: \"YYYY-MM-DD HH:mm:ss Z\")");
  c->add_option("--log-type", a.log_type, "raw (the default) or json: one JSON object per line, as PM2's log_type");
  c->add_option("-o,--output", a.out_file, "stdout's log file (default: <home>/logs/<name>-out.log)");
  c->add_option("-e,--error", a.error_file, "stderr's log file (default: <home>/logs/<name>-error.log)");
  c->add_option("-l,--log", a.log_file, "a log file that gets stdout and stderr both (besides the two)");
  c->add_option("--pid,--pid-file", a.pid_file,
                "write each instance's pid to this file while it runs (several instances: <stem>-<i><ext>)");
  c->add_option("--instance-var", a.instance_var,
                "the variable that tells each instance its index 0..n-1 (default NODE_APP_INSTANCE)");
  c->add_option("--increment-var", a.increment_var,
                "a variable of --env that each instance gets one more of (--env PORT=3000: 3000, 3001, ...)");
  so.filter_env = optional_list(c, "--filter-env", a.filter_env,
                                "do not pass the daemon's variables whose names start with these (comma-separated; "
                                "none given: all but PATH); --env's are passed");
  c->add_option("--uid", a.uid, "run the app as this user (name or number; the daemon must run as root)");
  c->add_option("--gid", a.gid, "run the app in this group (default: the --uid user's primary group)");
  c->add_flag("--log-per-instance", so.log_per_instance,
              "one pair of log files per instance (<name>-out-<i>.log) instead of merged files");
  c->add_option("--max-log-size", a.max_log_size, "rotate a log file at this size (bytes, or 10K/10M/1G; 0: never; default 10M)");
  c->add_option("--log-retain", a.log_retain, "rotated log files kept per file (default 5)")
      ->check(CLI::Range(0, daemon::limits::max_log_retain));
  c->add_option("--cron-restart", a.cron_restart,
                "restart the app when this cron pattern matches local time (\"0 3 * * *\"; six fields: seconds "
                "first; a rolling reload in cluster mode)");
  // `--watch` alone, or with paths: `start app.py --watch`, `--watch src,lib`.
  so.watch = optional_list(c, "--watch", a.watch,
                           "restart the app when a file changes below these paths (none given: its cwd; repeatable or "
                           "comma-separated; a rolling reload in cluster mode)");
  c->add_option("--ignore-watch", a.ignore_watch,
                "with --watch: names or paths to leave out (globs: '*.log', 'tmp', 'data/**'; dot-names, "
                "node_modules and __pycache__ always are)")
      ->delimiter(',');
  c->add_option("--watch-delay", a.watch_delay, "with --watch: ms over which changes make one restart (default 100)")
      ->check(whole_number(0, max_ms));
  c->add_option("--max-memory-restart", a.max_memory_restart,
                "restart an instance whose memory (RSS of its process group) passes this (300M, 1G; a reload in "
                "cluster mode; 0: no limit, the default)");
  c->add_flag("--no-autorestart", so.no_autorestart, "do not restart the app when it exits");
  c->add_flag("--no-autostart", so.no_autostart, "add the app stopped (corral start <name> starts it)");
  c->add_flag("--disable-logs", a.disable_logs, "send stdout and stderr to /dev/null (unless -o/-e say otherwise)");
  c->add_flag("--wait-ready", a.wait_ready, "online only once the app sends 'ready'");
  c->add_flag("--shutdown-with-message", a.shutdown_with_message, "stop by sending 'shutdown' on the channel");
  c->add_option("--kill-signal", a.kill_signal, "graceful stop signal (default SIGINT)");
  c->add_option("--kill-timeout", a.kill_timeout, "ms before SIGKILL (default 1600)")->check(whole_number(0, max_ms));
  c->add_option("--restart-delay", a.restart_delay, "ms before a restart")->check(whole_number(0, max_ms));
  c->add_option("--exp-backoff-restart-delay", a.exp_backoff_restart_delay, "first backoff delay in ms (doubles)")
      ->check(whole_number(0, max_ms));
  c->add_option("--min-uptime", a.min_uptime, "ms under which a run is unstable (default 1000)")
      ->check(whole_number(0, max_ms));
  c->add_option("--max-restarts", a.max_restarts, "unstable restarts before errored (default 16)")
      ->check(whole_number(0, daemon::limits::max_restarts));
  c->add_option("--listen-timeout", a.listen_timeout, "ms to wait for 'ready' (default 3000)")
      ->check(whole_number(0, max_ms));
  c->add_option("--stop-exit-codes", a.stop_exit_codes, "exit codes that mean done (no restart)")
      ->check(whole_number(0, daemon::limits::max_exit_code));
  c->add_option("--port", a.port, "cluster mode: the daemon listens on this TCP port (0: any) for the instances")
      ->check(CLI::Range(0, 65535));
  c->add_option("--listen", a.listen, "cluster mode: host:port or unix:/path to listen on (repeatable)");
  c->add_option("--lb", a.lb,
                "cluster mode's balancing: shared (default: every instance accepts) or round_robin (libcorral apps: "
                "the daemon accepts and passes each connection to the least busy instance)");
  c->add_flag("--defer-accept", a.defer_accept,
              "cluster mode, for protocols where the client speaks first (HTTP): the kernel hands a connection over "
              "once its request has arrived (TCP_DEFER_ACCEPT, nginx's 'deferred')");
}

std::string path_env() {
  const char* path = std::getenv("PATH");
  return path ? path : "/usr/bin:/bin";
}

bool is_ecosystem_file(const std::string& arg) {
  std::error_code ec;
  return cli::ecosystem_format(arg) && std::filesystem::is_regular_file(arg, ec);
}

// The flag a spec_error's field came from: "kill_signal" -> "--kill-signal".
std::string flag_of(const std::string& field) {
  if (field == "instances") return "-i/--instances";
  if (field == "exp_backoff_restart_delay") return "--exp-backoff-restart-delay";
  if (field == "out_file") return "-o/--output";
  if (field == "error_file") return "-e/--error";
  if (field == "log_file") return "-l/--log";
  if (field == "pid_file") return "--pid-file";
  std::string f = "--" + field;
  std::replace(f.begin(), f.end(), '_', '-');
  return f;
}

// What a daemon could know an app by: a name, a namespace, an id, or all. Anything else
// is the user's mistake, said without starting a daemon to say it.
bool could_name_an_app(const std::string& target) {
  bool id = !target.empty() && std::all_of(target.begin(), target.end(), [](unsigned char c) { return std::isdigit(c); });
  return target == "all" || id || daemon::valid_app_name(target);
}

std::string not_an_app(const std::string& target) {
  return "'" + target + "' is not an app name, a namespace, an id or all";
}

// --env with an ecosystem file: K=V over every app's env, or the one NAME
// whose env_NAME maps are merged over env.
result<cli::eco_load_options> eco_options(const std::vector<std::string>& env) {
  auto usage = [](const std::string& msg) { return error(std::make_error_code(std::errc::invalid_argument), msg); };
  cli::eco_load_options lo;
  lo.path_env = path_env();
  for (const auto& e : env) {
    auto eq = e.find('=');
    if (eq == 0) return usage("--env: expected K=V or an environment name, got '" + e + "'");
    if (eq != std::string::npos) lo.env[e.substr(0, eq)] = e.substr(eq + 1);
    else if (!lo.env_name.empty()) return usage("--env: one environment name only ('" + lo.env_name + "', '" + e + "')");
    else lo.env_name = e;
  }
  return lo;
}

// What the command line asks, as specs: every app of an ecosystem file, or
// the one app of the command. `unresolved` is set (and nothing returned)
// when the command is neither a file nor runnable: maybe an app's name.
result<std::vector<daemon::app_spec>> specs_of(start_options& o, std::string& unresolved) {
  auto usage = [](const std::string& msg) { return error(std::make_error_code(std::errc::invalid_argument), msg); };
  if (is_ecosystem_file(o.command)) {
    for (const auto* opt : o.sub->get_options())
      if (opt->count() > 0 && opt->check_name("--env") == false && opt->check_name("--only") == false &&
          !opt->get_positional() && !opt->check_name("--help"))
        return usage(opt->get_name() + ": does not apply to an ecosystem file (set it in the file)");
    auto lo = eco_options(o.env);
    if (!lo) return lo.err();
    lo->only = o.only;
    return cli::load_ecosystem(o.command, *lo);
  }
  std::error_code ec;
  if (cli::ecosystem_format(o.command) && !std::filesystem::exists(o.command, ec))
    return usage(o.command + ": no such ecosystem file");
  if (!o.only.empty()) return usage("--only: only for an ecosystem file");
  cli::app_options a = o.app;
  a.script = o.command;
  for (const auto& kv : o.env) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) return usage("--env: expected K=V, got '" + kv + "'");
    a.env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  if (!o.interpreter_args.empty()) {
    auto w = cli::split_words(o.interpreter_args);
    if (!w) return usage("--interpreter-args: " + w.err().message());
    a.interpreter_args = *w;
  }
  if (o.watch->count() > 0 && a.watch.empty()) a.watch.push_back(".");
  if (o.filter_env->count() > 0 && a.filter_env.empty()) a.filter_env.push_back("");
  a.merge_logs = !o.log_per_instance;
  a.autorestart = !o.no_autorestart;
  a.autostart = !o.no_autostart;
  auto out = cli::make_app_spec(a, std::filesystem::current_path(ec).string(), path_env());
  if (out.spec) return std::vector<daemon::app_spec>{std::move(*out.spec)};
  if (out.error.field == "script") {
    unresolved = out.error.message;
    return std::vector<daemon::app_spec>{};
  }
  if (out.error.field == "name") return usage(out.error.message + " (use --name)");
  return usage(flag_of(out.error.field) + ": " + out.error.message);
}

// `corral serve`: the app is this binary's `__serve`, in cluster mode on
// the port (the daemon owns it: -i N, reload and update keep it open), named
// as PM2 names it.
status serve_options(start_options& o, const std::string& dir, int port, bool spa, bool precompressed) {
  std::error_code ec;
  auto abs = std::filesystem::absolute(dir, ec);
  if (ec || !std::filesystem::is_directory(abs, ec)) {
    bool exists = !ec && std::filesystem::exists(abs, ec);
    bool digits = !dir.empty() && dir.find_first_not_of("0123456789") == std::string::npos;
    return error(std::make_error_code(std::errc::not_a_directory),
                 "serve: " + dir + (exists ? ": not a directory" : ": no such directory") +
                     (digits && !exists ? " (the directory comes first: corral serve DIR " + dir + ")" : ""));
  }
  if (o.app.port >= 0 || !o.app.listen.empty())
    return error(std::make_error_code(std::errc::invalid_argument), "serve: give the port as its second argument");
  o.command = daemon::self_exe_path();
  o.app.interpreter = "none";
  o.app.args = {"__serve", abs.lexically_normal().string(), "--port", std::to_string(port)};
  if (spa) o.app.args.push_back("--spa");
  if (precompressed) o.app.args.push_back("--precompressed");
  o.app.port = port;
  if (o.app.name.empty()) o.app.name = "static-page-server-" + std::to_string(port);
  return {};
}

// A command newer than the daemon (upgraded, not yet `corral update`d) says so.
result<json> older_daemon_hint(result<json> r) {
  if (!r && r.err().message().starts_with("unknown command '"))
    return error(r.err().code(), r.err().message() + ": the running daemon is older than this corral; " +
                                     "`corral update` replaces it");
  return r;
}

class session {
 public:
  explicit session(daemon::home_paths home) : home_(std::move(home)) {}

  /// One request, to the daemon that answers, started if none does. A
  /// daemon that resets the connection we just made, our first request
  /// unread, was dying as we connected (killed a moment ago, its socket
  /// still accepting while its last threads exit) and did nothing with it:
  /// the request goes once more, to the daemon that takes its place. Not on
  /// a connection already used: a daemon gone since (`corral run` exits with
  /// its last app) is not replaced behind the user's back.
  result<json> call(const std::string& cmd, json args = json::object()) {
    // A daemon older than this binary (upgraded, not yet `corral update`d)
    // would drop what it does not know of an app spec: an app meant to run
    // as www-data would run as root.
    if (!version_checked_ && (cmd == "start" || args.contains("app") || args.contains("env"))) {
      version_checked_ = true;
      auto p = call("ping");
      if (!p) return p;
      if (int v = p->value("version", 0); v < daemon::protocol_version)
        return error(std::make_error_code(std::errc::protocol_not_supported),
                     "the running daemon (pid " + std::to_string(p->value("pid", 0)) + ") is older than this corral " +
                         "(protocol " + std::to_string(v) + ", this one " + std::to_string(daemon::protocol_version) +
                         ") and would ignore settings it does not know: run `corral update` to replace it first");
    }
    bool fresh = !client_;
    auto r = call_once(cmd, args);
    if (!r && fresh && client_ && client_->unheard()) {
      client_.reset();
      r = call_once(cmd, std::move(args));
    }
    return older_daemon_hint(std::move(r));
  }

  int print_list() {
    auto rows = call("list");
    if (!rows) return fail(rows.err().message());
    warn_if_state_unsaved();
    return print_rows(*rows);
  }

  /// A daemon that cannot write its state file (a full disk, no descriptors
  /// left) keeps trying; until it works, a daemon killed would come back
  /// with an older list. The user hears it where they look.
  void warn_if_state_unsaved() {
    auto p = call("ping");
    if (!p) return;
    if (auto why = p->value("state_save_error", std::string()); !why.empty())
      std::fprintf(stderr, "corral: warning: the daemon cannot save its state (%s); it keeps trying\n", why.c_str());
  }

  /// The list after a command the daemon carried out. A foreground daemon
  /// (`corral run`) exits as soon as its last app is stopped or deleted,
  /// maybe before this list is asked: the command did not fail.
  int print_list_after_command() {
    auto rows = call("list");
    if (rows) {
      warn_if_state_unsaved();
      return print_rows(*rows);
    }
    auto ec = rows.err().code();
    if (ec != std::errc::connection_reset && ec != std::errc::broken_pipe) return fail(rows.err().message());
    std::fprintf(stderr, "corral: the daemon has exited (corral run exits once no app runs)\n");
    return 0;
  }

 private:
  result<json> call_once(const std::string& cmd, json args) {
    if (!client_) {
      pid_t started = 0;
      auto c = cli::client::connect_or_start(home_, started);
      if (!c) return c.err();
      client_.emplace(std::move(c.value()));
      if (started > 0) {
        auto ping = client_->call("ping");
        // Ours lost to another daemon starting meanwhile (`corral update`'s
        // next one): that one says what it restored, not us.
        if (ping && ping->value("pid", 0) != started) ping = error(std::make_error_code(std::errc::no_such_process), "");
        if (auto why = ping ? ping->value("state_error", std::string()) : std::string(); !why.empty()) {
          auto moved = ping->value("state_moved_to", std::string());
          std::string kept = moved.empty() ? "it could not move it aside (see daemon.log)" : "the file is kept as " + moved;
          std::fprintf(stderr, "corral: the daemon was not running; started a new one (pid %d), which could not use "
                               "its state file: %s; %s; no app was restored from it\n",
                       ping->value("pid", 0), why.c_str(), kept.c_str());
        }
        if (ping && ping->value("restored", 0) > 0) {
          std::fprintf(stderr, "corral: the daemon was not running; started a new one (pid %d) and restored %d app(s)\n",
                       ping->value("pid", 0), ping->value("restored", 0));
          if (int n = ping->value("handed_over", 0); n > 0)
            std::fprintf(stderr, "corral: it took over the sockets of the %d instance(s) the old daemon left running, "
                                 "which stop gracefully as the new ones start\n", n);
          if (auto why = ping->value("takeover_error", std::string()); !why.empty())
            std::fprintf(stderr, "corral: it could not take over the listening sockets of the instance(s) the old "
                                 "daemon left running (%s: the daemon needs the right to ptrace its apps); it killed "
                                 "them and bound the sockets anew, refusing connections meanwhile\n", why.c_str());
        }
      }
    }
    return client_->call(cmd, std::move(args));
  }

  static int print_rows(const json& rows) {
    std::fputs(cli::format_table(rows).c_str(), stdout);
    return 0;
  }

  daemon::home_paths home_;
  std::optional<cli::client> client_;
  bool version_checked_ = false;
};

// A watched path that does not exist yet is awaited (the daemon watches for
// its creation); said here once, so that a mistyped one is not silent.
void note_missing_watch_paths(const std::vector<daemon::app_spec>& specs) {
  for (const auto& spec : specs)
    for (const auto& p : spec.watch)
      if (std::error_code ec; !std::filesystem::exists(p, ec))
        std::fprintf(stderr, "corral: app '%s': watch: %s does not exist (yet): it is watched for its creation\n",
                     spec.name.c_str(), p.c_str());
}

int cmd_start(session& s, start_options& o) {
  std::string unresolved;
  auto specs = specs_of(o, unresolved);
  if (!specs) return fail(specs.err().message(), exit_usage);
  if (!unresolved.empty()) {
    // Not a program, nor anything an app could be called: no daemon needed.
    if (!could_name_an_app(o.command)) return fail(unresolved, exit_usage);
    // Not a program: maybe the name or id of a known app to start again.
    auto r = s.call("start", {{"target", o.command}, {"resolve_error", unresolved}});
    if (!r) return fail(r.err().message());
    return s.print_list();
  }
  note_missing_watch_paths(*specs);
  // A known name is started again if stopped and otherwise left as it is,
  // its settings unchanged (as the daemon does for any start of a known name).
  auto known = s.call("list");
  if (!known) return fail(known.err().message());
  int failures = 0;
  for (const auto& spec : *specs) {
    for (const auto& row : *known)
      if (row.value("name", "") == spec.name) {
        std::fprintf(stderr, "corral: app '%s' already exists: started if stopped, settings unchanged "
                             "(delete it first to apply new ones)\n", spec.name.c_str());
        break;
      }
    auto r = s.call("start", {{"app", daemon::to_json(spec)}});
    if (!r) {
      fail(specs->size() > 1 ? spec.name + ": " + r.err().message() : r.err().message());
      ++failures;
    }
  }
  int code = s.print_list();
  return failures ? exit_error : code;
}

// stop, restart, reload, delete: of an app, an id, all, or every app of an
// ecosystem file (by name).
int cmd_target(session& s, const std::string& cmd, const std::string& target, json args = json::object(),
               const std::map<std::string, json>& envs = {}, const std::string& env_name = "") {
  std::vector<std::string> targets{target};
  if (is_ecosystem_file(target)) {
    // Only the names: a script removed since `start` must not keep its app
    // from being stopped or deleted.
    auto names = cli::ecosystem_app_names(target, path_env(), env_name);
    if (!names) return fail(names.err().message(), exit_usage);
    targets = std::move(*names);
  } else if (!could_name_an_app(target)) {
    return fail(cmd + ": " + not_an_app(target), exit_usage);
  }
  int failures = 0;
  for (const auto& t : targets) {
    args["target"] = t;
    if (auto e = envs.find(t); e != envs.end()) args["env"] = e->second;
    else args.erase("env");
    auto r = s.call(cmd, args);
    if (!r) {
      fail(r.err().message());
      ++failures;
    }
  }
  int code = s.print_list_after_command();
  return failures ? exit_error : code;
}

// restart and reload: --update-env and --env (PM2's). With an ecosystem
// file, each app's environment becomes the file's (env, env_NAME, K=V); with
// an app's name, K=V are set in its environment. The result: the new env by
// app name (empty: nothing to update).
struct update_options {
  bool update_env = false;
  std::vector<std::string> env;
};

result<std::map<std::string, json>> env_updates(session& s, const std::string& target, const update_options& u) {
  auto usage = [](const std::string& msg) { return error(std::make_error_code(std::errc::invalid_argument), msg); };
  std::map<std::string, json> out;
  if (!u.update_env && u.env.empty()) return out;
  if (is_ecosystem_file(target)) {
    auto lo = eco_options(u.env);
    if (!lo) return lo.err();
    auto specs = cli::load_ecosystem(target, *lo);
    if (!specs) return specs.err();
    for (const auto& spec : *specs) out[spec.name] = spec.env;
    return out;
  }
  if (u.env.empty()) {
    // PM2's deploy line (`pm2 restart app --update-env`) must not break a
    // deploy script: the restart goes on, and what the flag cannot do is said.
    std::fprintf(stderr, "corral: --update-env: corral gives apps no shell's environment, so '%s' keeps its own; "
                         "name an ecosystem file, or set variables with --env K=V\n", target.c_str());
    return out;
  }
  auto rows = s.call("describe", {{"target", target}});
  if (!rows) return rows.err();
  if (rows->empty() || !daemon::valid_app_name(target) || rows->at(0).value("name", "") != target)
    return usage("--env: name one app ('" + target + "' is not an app's name)");
  json env = rows->at(0)["app"].value("env", json::object());
  for (const auto& kv : u.env) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) return usage("--env: expected K=V, got '" + kv + "'");
    env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  out[target] = env;
  return out;
}

// startOrRestart, startOrReload (PM2's): an ecosystem file's apps that are
// not known start; the known ones restart (reload), with the file's env
// when --update-env or --env says so.
int cmd_start_or(session& s, const std::string& cmd, const std::string& file, const update_options& u, int parallel) {
  if (!is_ecosystem_file(file))
    return fail(std::string(cmd == "reload" ? "startOrReload" : "startOrRestart") + ": expected an ecosystem file, got '" +
                    file + "'", exit_usage);
  auto lo = eco_options(u.env);
  if (!lo) return fail(lo.err().message(), exit_usage);
  auto specs = cli::load_ecosystem(file, *lo);
  if (!specs) return fail(specs.err().message(), exit_usage);
  auto known = s.call("list");
  if (!known) return fail(known.err().message());
  int failures = 0;
  for (const auto& spec : *specs) {
    bool exists = std::any_of(known->begin(), known->end(), [&](const json& row) { return row.value("name", "") == spec.name; });
    json args{{"target", spec.name}};
    if (cmd == "reload") args["parallel"] = parallel;
    if (exists && (u.update_env || !u.env.empty())) args["env"] = spec.env;
    auto r = exists ? s.call(cmd, args) : s.call("start", {{"app", daemon::to_json(spec)}});
    if (!r) {
      fail(spec.name + ": " + r.err().message());
      ++failures;
    }
  }
  int code = s.print_list_after_command();
  return failures ? exit_error : code;
}

int cmd_logs(session& s, const std::string& target, int lines, bool follow, bool err_only, bool out_only) {
  auto r = s.call("logs_info", {{"target", target.empty() ? "all" : target}});
  if (!r) return fail(r.err().message());
  std::vector<cli::log_source> sources;
  for (const auto& a : *r) {
    // Per-instance files (merge_logs false) say whose they are: "web[1] out | ".
    std::string who = a.value("name", "");
    if (a.contains("instance")) who += "[" + std::to_string(a.value("instance", 0)) + "]";
    if (!err_only) sources.push_back({who + " out | ", a.value("out", "")});
    if (!out_only) sources.push_back({who + " err | ", a.value("err", "")});
  }
  cli::drop_repeated_paths(sources);  // out_file = error_file, several apps' /dev/null
  if (sources.size() == 1) sources[0].label.clear();  // one file: bare lines
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

// The pid in the home's daemon.pid, or 0.
pid_t daemon_pid_of(const daemon::home_paths& home) {
  std::FILE* f = std::fopen(home.pid.c_str(), "re");
  if (!f) return 0;
  int pid = 0;
  if (std::fscanf(f, "%d", &pid) != 1) pid = 0;
  std::fclose(f);
  return pid;
}

// `corral update`: the daemon stops what the next one cannot take over,
// writes its state and starts this binary as the next daemon, which takes
// over the cluster-mode instances' sockets (docs/manager-state.md) and
// starts the rest again.
int cmd_update(const daemon::home_paths& home) {
  const std::string exe = daemon::self_exe_path();
  auto c = cli::client::connect(home);
  if (!c) {
    std::printf("no daemon running: the next command starts %s\n", exe.c_str());
    return 0;
  }
  auto ping = c->call("ping");
  if (!ping) return fail(ping.err().message());
  const pid_t old_pid = ping->value("pid", 0);
  // take_lock: this binary, the next daemon, takes the lock's descriptor
  // (an older one would wait for a lock that descriptor holds).
  auto r = c->call("update", {{"exe", exe}, {"take_lock", true}});
  if (!r) return fail(r.err().message());
  if (!wait_gone(old_pid, std::chrono::seconds(30)))
    return fail("the old daemon (pid " + std::to_string(old_pid) + ") did not exit within 30 s (see " +
                home.daemon_log + ")");
  // The new daemon was started by the old one: wait for it rather than
  // start another.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  json now;
  for (;;) {
    if (auto n = cli::client::connect(home))
      if (auto p = n->call("ping"); p && p->value("pid", 0) != old_pid) {
        now = *p;
        break;
      }
    if (std::chrono::steady_clock::now() > deadline)
      return fail("the new daemon does not answer on " + home.socket + " after 30 s (see " + home.daemon_log +
                  "); the next corral command starts one, which restores the apps");
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::printf("daemon replaced: pid %d -> pid %d (%s)\n", static_cast<int>(old_pid), now.value("pid", 0), exe.c_str());
  int kept = r->value("kept", 0), stopped = r->value("stopped", 0);
  if (kept > 0)
    std::printf("%d cluster-mode instance(s) kept serving: the new daemon took over their sockets and replaces them "
                "gracefully\n", kept);
  if (stopped > 0) std::printf("%d instance(s) were stopped gracefully and started again\n", stopped);
  if (auto why = now.value("takeover_error", std::string()); !why.empty())
    std::fprintf(stderr, "corral: the new daemon could not take over the listening sockets (%s: it needs the right "
                         "to ptrace its apps); it killed those instances and bound the sockets anew\n", why.c_str());
  session s(home);
  return s.print_list();
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

// `corral __exec [--no-listen-pid] [--uid N] [--gid N] -- prog args...`:
// how the daemon starts an instance in cluster mode, or as another user.
// systemd's LISTEN_PID must be the app's own pid, known only after fork, and
// uv_spawn runs nothing of ours between fork and exec; so the daemon execs
// this, which sets it and execs the app in the same process. With --uid (a
// root daemon's app run as another user), it first takes that identity as
// systemd's User= does: the user's supplementary groups (initgroups), the
// gid (given, or the user's), then the uid. Parsed before CLI11: it runs on
// every instance start.
[[noreturn]] void exec_app(int argc, char** argv) {
  auto die = [](const std::string& why) {
    std::fprintf(stderr, "corral __exec: %s\n", why.c_str());
    std::_Exit(127);
  };
  bool listen_pid = true;
  long long uid = -1, gid = -1;
  int k = 2;
  auto id_at = [&](int at) {
    char* end = nullptr;
    long long v = at < argc ? std::strtoll(argv[at], &end, 10) : -1;
    if (at >= argc || *end || v < 0 || v > 0x7fffffff) die(std::string(argv[at - 1]) + ": expected a number");
    return v;
  };
  for (; k < argc && std::string_view(argv[k]) != "--"; ++k) {
    std::string_view a(argv[k]);
    if (a == "--no-listen-pid") listen_pid = false;
    else if (a == "--uid") uid = id_at(++k);
    else if (a == "--gid") gid = id_at(++k);
    else die("unknown option " + std::string(a));
  }
  if (k < argc) ++k;  // "--"
  if (k >= argc) die("no program");
  if (uid >= 0 || gid >= 0) {
    std::string who = "uid " + std::to_string(uid) + " gid " + std::to_string(gid);
    auto failed = [&](const char* call) { die("cannot run the app as " + who + ": " + call + ": " + std::strerror(errno)); };
    const passwd* pw = uid >= 0 ? ::getpwuid(static_cast<uid_t>(uid)) : nullptr;
    if (gid < 0 && uid >= 0) {
      if (!pw) die("uid " + std::to_string(uid) + " is not in /etc/passwd and no gid was given");
      gid = pw->pw_gid;
    }
    // Only the user's groups; one with no name gets none, as under libuv.
    // Groups that cannot be listed (an NSS module this static binary cannot
    // load) leave the primary one, said in the app's error log.
    if (pw && ::initgroups(pw->pw_name, static_cast<gid_t>(gid)) != 0) {
      std::fprintf(stderr, "corral __exec: initgroups(%s): %s; running with the group %lld only\n", pw->pw_name,
                   std::strerror(errno), gid);
      pw = nullptr;
    }
    if (!pw && ::setgroups(0, nullptr) != 0) failed("setgroups");
    if (::setgid(static_cast<gid_t>(gid)) != 0) failed("setgid");
    if (uid >= 0 && ::setuid(static_cast<uid_t>(uid)) != 0) failed("setuid");
    if (uid > 0 && ::setuid(0) == 0) die("could take root back after setuid(" + std::to_string(uid) + ")");
  }
  if (listen_pid) ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
  ::execvp(argv[k], argv + k);
  std::fprintf(stderr, "corral: exec %s: %s\n", argv[k], std::strerror(errno));
  std::_Exit(127);
}

}  // namespace

namespace {
int run_command(int argc, char** argv);
}

int main(int argc, char** argv) {
  try {
    return run_command(argc, argv);
  } catch (const nlohmann::json::exception& e) {
    // An answer of a shape this binary does not expect: a daemon of another
    // version, most likely.
    return fail(std::string("unexpected answer from the daemon (") + e.what() +
                "); if it runs another version of corral, `corral update` replaces it");
  }
}

namespace {

int run_command(int argc, char** argv) {
  if (argc >= 2 && std::string_view(argv[1]) == "__exec") exec_app(argc, argv);
  if (argc >= 2 && std::string_view(argv[1]) == "__serve") return cli::serve_main(argc, argv);
  ::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"corral: a process manager for programs in any language"};
  app.require_subcommand(1);
  auto home = daemon::resolve_home();

  start_options so;
  auto* start = app.add_subcommand("start", "start an app (a program, a script, a shell command) or an ecosystem file's apps");
  start->add_option("command", so.command, "program, script (.py .js .sh), shell command, or ecosystem file")->required();
  add_start_flags(start, so);
  start_options vo;  // serve
  std::string serve_dir = ".";
  int serve_port = 8080;
  bool serve_spa = false;
  auto* serve = app.add_subcommand("serve", "serve a directory's files over HTTP as an app (PM2's serve; port 8080 by default)");
  serve->add_option("path", serve_dir, "the directory (default: the current one)");
  serve->add_option("port", serve_port, "the TCP port, on every address (default 8080)")->check(CLI::Range(0, 65535));
  serve->add_flag("--spa", serve_spa, "a single-page app: its index.html for every path that is no file");
  bool serve_precompressed = false;
  serve->add_flag("--precompressed", serve_precompressed,
                  "send a file's .br or .gz copy beside it to clients that take it (nginx's gzip_static)");
  add_start_flags(serve, vo);
  start_options ro;
  auto* run = app.add_subcommand("run", "containers: run the apps in the foreground, their logs on stdout (pm2-runtime)");
  run->add_option("command", ro.command, "ecosystem file, program, script or shell command")->required();
  add_start_flags(run, ro);

  std::string target;
  auto target_cmd = [&](const char* name, const char* help) {
    auto* c = app.add_subcommand(name, help);
    c->add_option("target", target, "app name, id, or all")->required();
    return c;
  };
  auto* stop = target_cmd("stop", "stop an app (name, id or all)");
  auto* restart = target_cmd("restart", "restart an app (name, id or all)");
  auto* del = target_cmd("delete", "stop and forget an app (name, id or all)");
  std::string file_env;  // stop, delete, reset of a file's apps started with --env NAME (append_env_to_name)
  auto* describe = target_cmd("describe", "everything about an app");
  describe->alias("show");  // PM2's names
  describe->alias("info");
  int parallel = 1;
  auto* reload = target_cmd("reload", "replace the instances one by one with no downtime (cluster mode)");
  reload->add_option("--parallel", parallel, "instances replaced at once (default 1)")->check(CLI::Range(1, daemon::limits::max_instances));
  update_options uo;
  for (auto* c : {restart, reload}) {
    c->add_flag("--update-env", uo.update_env,
                "with an ecosystem file: the apps get the file's env (and env_NAME with --env NAME) first");
    c->add_option("--env", uo.env, "K=V set in the app's environment first (repeatable); with a file, NAME selects env_NAME");
  }
  auto* start_or_restart = app.add_subcommand("startOrRestart", "start an ecosystem file's new apps, restart the others");
  auto* start_or_reload = app.add_subcommand("startOrReload", "start an ecosystem file's new apps, reload the others");
  start_or_reload->alias("startOrGracefulReload");
  for (auto* c : {start_or_restart, start_or_reload}) {
    c->add_option("file", target, "ecosystem file")->required();
    c->add_flag("--update-env", uo.update_env, "the running apps get the file's env (and env_NAME with --env NAME)");
    c->add_option("--env", uo.env, "NAME selects env_NAME; K=V over every app's env (repeatable)");
  }
  start_or_reload->add_option("--parallel", parallel, "instances replaced at once (default 1)")
      ->check(CLI::Range(1, daemon::limits::max_instances));
  std::string scale_to;
  auto* scale = target_cmd("scale", "set an app's number of instances");
  scale->add_option("instances", scale_to, "the new number of instances (or max)")->required();
  auto* env_cmd = target_cmd("env", "the environment an app's instances were started with (name, id or all)");
  auto* reset = target_cmd("reset", "set an app's restart counts back to 0 (name, id or all)");
  for (auto* c : {stop, del, reset})
    c->add_option("--env", file_env, "with an ecosystem file: the NAME its apps were started with (append_env_to_name)");
  std::string signal_name;
  auto* sendsig = app.add_subcommand("signal", "send a signal to an app's processes (name, id or all)");
  sendsig->alias("sendSignal");  // PM2's name
  sendsig->add_option("signal", signal_name, "SIGUSR2, USR2 or 12")->required();
  sendsig->add_option("target", target, "app name, id, or all")->required();
  auto* list = app.add_subcommand("list", "the apps as a table");
  list->alias("ls");
  list->alias("status");
  auto* jlist = app.add_subcommand("jlist", "the apps as JSON");
  std::string init_file = "ecosystem.config.js";
  auto* init = app.add_subcommand("init", "write a starting ecosystem file (default ecosystem.config.js; .yaml, .json)");
  init->alias("ecosystem");
  init->add_option("file", init_file, "the file to write (never over an existing one)");
  auto* prettylist = app.add_subcommand("prettylist", "the apps as indented JSON");
  auto* id_cmd = app.add_subcommand("id", "the ids of an app's instances, one per line (PM2's)");
  id_cmd->add_option("target", target, "app name, id, namespace or all")->required();
  auto* pid_cmd = app.add_subcommand("pid", "the pids of an app's running instances, one per line (PM2's)");
  pid_cmd->add_option("target", target, "app name, id, namespace or all")->required();
  auto* ping = app.add_subcommand("ping", "check that the daemon answers (starts it if needed)");
  int lines = 15;
  bool follow = false, err_only = false, out_only = false;
  auto* logs = app.add_subcommand("logs", "show the last lines of an app's logs");
  logs->add_option("target", target, "app name or id (default: all)");
  logs->add_option("--lines", lines, "how many lines (default 15)")->check(whole_number(0, INT_MAX));
  logs->add_flag("-f,--follow", follow, "keep printing new lines");
  logs->add_flag("--err", err_only, "stderr only");
  logs->add_flag("--out", out_only, "stdout only");
  auto* flush = app.add_subcommand("flush", "empty the log files");
  flush->add_option("target", target, "app name or id (default: all)");
  auto* reload_logs = app.add_subcommand("reloadLogs", "reopen every log file (after logrotate moved them)");
  reload_logs->alias("reload-logs");
  auto* save = app.add_subcommand("save", "remember the app list for resurrect");
  save->alias("dump");  // PM2's
  auto* cleardump = app.add_subcommand("cleardump", "empty the list save remembered (resurrect then starts none)");
  auto* resurrect = app.add_subcommand("resurrect", "start the apps saved by save");
  auto* kill = app.add_subcommand("kill", "stop every app, then the daemon");
  auto* update = app.add_subcommand("update", "replace the running daemon with this corral binary (after an upgrade); "
                                               "cluster-mode apps keep serving, the others restart");
  auto* daemon_cmd = app.add_subcommand("daemon", "run the daemon in the foreground");
  cli::monit_options mo;
  auto* monit = app.add_subcommand("monit", "live view of cpu, memory and logs (q or Ctrl+C quits)");
  monit->add_option("target", mo.target, "app name or id (default: all)");
  monit->add_flag("--once", mo.once, "print one snapshot and exit");
  monit->add_option("--interval", mo.interval_ms, "ms between refreshes (default 1000)")->check(CLI::Range(100, 60000));
  monit->add_option("--lines", mo.log_lines, "log lines per log file (default: fit the terminal; none when piped)")
      ->check(CLI::Range(0, daemon::limits::max_log_retain));
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
  bool version = false;  // (answered before the required command, below)
  app.add_flag("-v,--version", version, "print corral's version and exit");
  if (before.size() == 2 && (before[1] == "-v" || before[1] == "--version")) {
    std::puts("corral " CORRAL_VERSION);
    return 0;
  }
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
  if (!after.empty() && !start->parsed() && !run->parsed())
    return fail("arguments after -- are only for start and run", exit_usage);
  so.app.args = after;
  ro.app.args = after;

  if (daemon_cmd->parsed()) return daemon::run_daemon(home);
  if (init->parsed()) {
    if (auto w = cli::write_ecosystem_template(init_file); !w) return fail(w.err().message());
    std::printf("wrote %s: edit its scripts, then `corral start %s`\n", init_file.c_str(), init_file.c_str());
    return 0;
  }
  if (monit->parsed()) {
    if (monit->count("target") > 0 && !could_name_an_app(mo.target))
      return fail("monit: " + not_an_app(mo.target), exit_usage);
    return cli::run_monit(home, mo);
  }
  if (startup->parsed()) return cli::run_startup(home, sto);
  if (unstartup->parsed()) return cli::run_unstartup(sto);
  if (run->parsed()) {
    std::string unresolved;
    auto specs = specs_of(ro, unresolved);
    if (!specs) return fail(specs.err().message(), exit_usage);
    if (!unresolved.empty()) return fail(unresolved, exit_usage);
    note_missing_watch_paths(*specs);
    return cli::run_foreground(*specs);
  }
  // describe, scale, logs, flush, signal, env: a target no app can have needs no daemon
  // to be refused (stop, restart, delete and reload: cmd_target, after an
  // ecosystem file's names). None given to logs or flush means all.
  for (auto* c : {describe, scale, logs, flush, sendsig, env_cmd, pid_cmd, id_cmd})
    if (c->parsed() && !(target.empty() && c->count("target") == 0) && !could_name_an_app(target))
      return fail(c->get_name() + ": " + not_an_app(target), exit_usage);
  int sig = 0;
  if (sendsig->parsed()) {
    auto n = cli::parse_signal(signal_name);
    if (!n) return fail("signal: " + n.err().message(), exit_usage);
    sig = *n;
  }
  session s(home);
  if (start->parsed()) return cmd_start(s, so);
  if (serve->parsed()) {
    bool named = !vo.app.name.empty();
    if (auto r = serve_options(vo, serve_dir, serve_port, serve_spa, serve_precompressed); !r) return fail(r.err().message(), exit_usage);
    if (serve_port == 0 && !named) {
      // Port 0 is a new port each time: a second such server is another
      // app (static-page-server-0-2, ...), not the first one started again.
      auto rows = s.call("list");
      if (!rows) return fail(rows.err().message());
      auto taken = [&](const std::string& n) {
        return std::any_of(rows->begin(), rows->end(), [&](const json& r) { return r.value("name", "") == n; });
      };
      std::string base = vo.app.name;
      for (int k = 2; taken(vo.app.name); ++k) vo.app.name = base + "-" + std::to_string(k);
    }
    return cmd_start(s, vo);
  }
  if ((stop->parsed() || del->parsed() || reset->parsed()) && !file_env.empty()) {
    if (!is_ecosystem_file(target)) return fail("--env NAME is for an ecosystem file's apps", exit_usage);
    if (file_env.find('=') != std::string::npos)
      return fail("--env: expected the environment name the apps were started with, got '" + file_env + "'", exit_usage);
  }
  if (stop->parsed()) return cmd_target(s, "stop", target, json::object(), {}, file_env);
  if (start_or_restart->parsed()) return cmd_start_or(s, "restart", target, uo, parallel);
  if (start_or_reload->parsed()) return cmd_start_or(s, "reload", target, uo, parallel);
  if (restart->parsed() || reload->parsed()) {
    auto envs = env_updates(s, target, uo);
    if (!envs) return fail(envs.err().message(), envs.err().code() == std::errc::invalid_argument ? exit_usage : exit_error);
    // --env NAME with a file: the names append_env_to_name gives.
    auto lo = eco_options(uo.env);
    std::string env_name = lo ? lo->env_name : "";
    if (restart->parsed()) return cmd_target(s, "restart", target, json::object(), *envs, env_name);
    return cmd_target(s, "reload", target, {{"parallel", parallel}}, *envs, env_name);
  }
  if (del->parsed()) return cmd_target(s, "delete", target, json::object(), {}, file_env);
  if (reset->parsed()) return cmd_target(s, "reset", target, json::object(), {}, file_env);
  if (env_cmd->parsed()) {
    auto r = s.call("env", {{"target", target}});
    if (!r) return fail(r.err().message());
    bool first = true;
    for (const auto& row : *r) {
      std::printf("%s# %s, id %d%s\n", first ? "" : "\n", row.value("name", "").c_str(), row.value("id", 0),
                  row["env"].empty() ? " (not started yet)" : "");
      first = false;
      for (const auto& [k, v] : row["env"].items()) std::printf("%s=%s\n", k.c_str(), cli::env_value(v.get<std::string>()).c_str());
    }
    return 0;
  }
  if (sendsig->parsed()) {
    auto r = s.call("signal", {{"target", target}, {"signal", sig}});
    if (!r) return fail(r.err().message());
    std::string pids;
    for (const auto& p : r->value("signalled", json::array())) pids += (pids.empty() ? "" : ", ") + p.dump();
    const char* abbrev = sigabbrev_np(sig);
    std::printf("sent %s%s to %s\n", abbrev ? "SIG" : "signal ", abbrev ? abbrev : std::to_string(sig).c_str(),
                pids.empty() ? "no process" : ("pid " + pids).c_str());
    return 0;
  }
  if (scale->parsed()) {
    auto n = cli::parse_instances(scale_to);
    if (!n) return fail("instances: " + n.err().message(), exit_usage);
    auto r = s.call("scale", {{"target", target}, {"instances", *n}});
    if (!r) return fail(r.err().message());
    return s.print_list();
  }
  if (list->parsed()) {
    // PM2's "In-memory PM2 is out-of-date": the binary was upgraded, the
    // daemon still runs the old one.
    if (auto pid = daemon_pid_of(home); pid > 0 && daemon::exe_replaced(pid))
      std::fprintf(stderr, "corral: the daemon (pid %d) runs a corral binary replaced on disk since it started: "
                           "`corral update` replaces it (cluster-mode apps keep serving)\n", static_cast<int>(pid));
    return s.print_list();
  }
  if (describe->parsed()) {
    auto r = s.call("describe", {{"target", target}});
    if (!r) return fail(r.err().message());
    std::puts(r->dump(2).c_str());
    return 0;
  }
  if (pid_cmd->parsed() || id_cmd->parsed()) {  // (kill -USR2 $(corral pid api))
    auto r = s.call("list", {{"target", target}});
    if (!r) return fail(r.err().message());
    for (const auto& row : *r)
      if (id_cmd->parsed()) std::printf("%d\n", row.value("id", -1));
      else if (int pid = row.value("pid", 0); pid > 0) std::printf("%d\n", pid);
    return 0;
  }
  if (jlist->parsed() || prettylist->parsed()) {
    auto r = s.call("list", {{"full", true}});
    if (!r) return fail(r.err().message());
    std::puts(r->dump(prettylist->parsed() ? 2 : -1).c_str());
    return 0;
  }
  if (ping->parsed()) {
    auto r = s.call("ping");
    if (!r) return fail(r.err().message());
    std::printf("pong (daemon pid %d, home %s)\n", r->value("pid", 0), r->value("home", "").c_str());
    if (auto why = r->value("state_save_error", std::string()); !why.empty())
      std::fprintf(stderr, "corral: warning: the daemon cannot save its state (%s); it keeps trying\n", why.c_str());
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
  if (reload_logs->parsed()) {
    // No daemon, no file open: a logrotate postrotate must not start one
    // (it would restore the apps a `systemctl stop` stopped).
    auto c = cli::client::connect(home);
    if (!c) {
      int err = c.err().code().value();
      if (err != ENOENT && err != ECONNREFUSED) return fail(c.err().message());
      std::puts("no daemon running: no log file to reopen");
      return 0;
    }
    auto r = older_daemon_hint(c->call("reload_logs", {{"target", "all"}}));
    if (!r) return fail(r.err().message());
    std::puts("log files reopened");
    return 0;
  }
  if (cleardump->parsed()) {
    auto r = s.call("clear_dump");
    if (!r) return fail(r.err().message());
    std::printf("emptied %s: resurrect starts no app until the next save\n", r->value("path", "").c_str());
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
  if (update->parsed()) return cmd_update(home);
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

}  // namespace
