// What the user asked to run: one app, its command, options and desired state.
// Shared by the control protocol (start) and the state file; its JSON form is
// specified in docs/manager-protocol.md.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "corral/error.hpp"
#include "corral/net.hpp"
#include "daemon/lifecycle.hpp"

namespace corral::daemon {

using json = nlohmann::json;

/// The bounds of an app's numbers, the same wherever they come from: the
/// command line's flags, an ecosystem file, the control protocol's start, the
/// state and save files.
namespace limits {
inline constexpr int max_instances = 1024;
/// Durations, in milliseconds (about 31 years).
inline constexpr int64_t max_ms = 1'000'000'000'000;
inline constexpr int max_restarts = 1'000'000;
inline constexpr int max_log_retain = 1000;
/// A max_log_size other than 0 (never rotate) is at least this many bytes.
inline constexpr uint64_t min_log_size = 4096;
/// A max_memory_restart other than 0 (no limit) is at least this many bytes.
inline constexpr uint64_t min_memory_restart = 1u << 20;
inline constexpr int max_signal = 64;
/// uid and gid: (uid_t)-1 means "unchanged" to setuid(), so it is no id.
inline constexpr int64_t max_id = 4294967294;
inline constexpr int max_exit_code = 255;
inline constexpr size_t max_listen = 64;
/// watch: paths, ignore_watch patterns (and their length), and the inotify
/// watches (directories) of one app.
inline constexpr size_t max_watch = 64;
inline constexpr size_t max_ignore_watch = 256;
inline constexpr size_t max_pattern = 1024;
inline constexpr size_t max_watch_dirs = 10000;
}  // namespace limits

struct app_spec {
  std::string name;
  /// PM2's namespace: a group that commands can name instead of each app
  /// (`corral restart backend`); an app's own name wins over a namespace.
  std::string namespace_name = "default";
  /// argv[0] is an absolute path (the CLI resolved it), or "sh" for `-c`.
  std::vector<std::string> argv;
  std::string cwd;
  std::map<std::string, std::string> env;
  int instances = 1;
  /// Prefix each log line with a timestamp: ISO-8601 in UTC, or
  /// `log_date_format`'s form when that is set.
  bool time = false;
  /// PM2's log_date_format (dayjs tokens, local time; log_lines.hpp's
  /// format_date). Not empty: every line gets a timestamp of this form.
  std::string log_date_format;
  /// PM2's log_type: "raw" (the lines as the app wrote them, the default) or
  /// "json": one object per line, {"message", "timestamp", "type" ("out" or
  /// "err"), "process_id" (the instance index), "app_name"}; `timestamp` is
  /// ISO-8601 UTC, or in log_date_format's form when that is set.
  std::string log_type = "raw";
  /// Where the logs go instead of <home>/logs/<name>-out.log and
  /// <name>-error.log (PM2's out_file and error_file), and a file that gets
  /// both streams besides (PM2's log_file). Absolute; "": the default (out,
  /// error) or none (log_file). Their directories are created (0700) if
  /// missing. When not merged, instance i writes "<stem>-<i><ext>"; a path
  /// that is not a regular file (/dev/null) is shared as it is. One path
  /// given twice (out_file = error_file) is one file, both streams in order.
  std::string out_file;
  std::string error_file;
  std::string log_file;
  /// PM2's pid_file: each instance writes its pid here (0644, replaced
  /// atomically) while it runs, and the file is removed when it exits.
  /// Absolute; "": none. With several instances, instance i writes
  /// "<stem>-<i><ext>" (daemon/paths.hpp). Its directory is made as a log's.
  std::string pid_file;
  /// PM2's instance_var: the variable that tells an instance its index
  /// (0..n-1; CORRAL_INSTANCE always does too).
  std::string instance_var = "NODE_APP_INSTANCE";
  /// PM2's filter_env: the daemon's own environment variables whose names
  /// start with one of these are not passed to the app ("" matches every
  /// one but PATH: PM2's filter_env: true). The spec's env is always passed.
  std::vector<std::string> filter_env;
  /// PM2's increment_var: a variable of `env` that holds a whole number n;
  /// instance i gets n + i (PORT 3000 -> 3000, 3001, ...). "": none.
  std::string increment_var;
  /// Logs: all instances in <name>-out.log / <name>-error.log, each line
  /// prefixed "<index>|" (true, the default), or one pair of files per
  /// instance, <name>-out-<index>.log (false; PM2's merge_logs: false).
  bool merge_logs = true;
  /// Rotate a log file once it reaches this many bytes (0: never), keeping
  /// the `log_retain` most recent rotated files.
  uint64_t max_log_size = 10u << 20;
  int log_retain = 5;
  /// Restart an instance whose process group's resident memory passes this
  /// many bytes (PM2's max_memory_restart; a reload in cluster mode); 0: never.
  uint64_t max_memory_restart = 0;
  /// Restart (reload in cluster mode) every instance when this cron pattern
  /// matches local time (PM2's cron_restart; daemon/cron.hpp); "": never.
  std::string cron_restart;
  /// Restart (reload in cluster mode) every instance when a file below one
  /// of these absolute paths changes (PM2's watch; daemon/watcher.hpp);
  /// empty: never. What ignore_watch's patterns match is left out, and so
  /// are dot-names, node_modules and __pycache__ (daemon/watch_rules.hpp);
  /// changes within watch_delay of the first make one restart.
  std::vector<std::string> watch;
  std::vector<std::string> ignore_watch;
  ms watch_delay{100};
  /// PM2's uid and gid: the daemon (root) starts the app's processes as this
  /// user and group (-1: its own), with the user's supplementary groups
  /// (corral __exec's initgroups); HOME, USER and LOGNAME are the user's unless
  /// `env` sets them.
  int64_t uid = -1;
  int64_t gid = -1;
  int kill_signal = 2;  // SIGINT, as PM2
  bool shutdown_with_message = false;
  lifecycle_options lifecycle;
  /// Desired state: false once the user stopped it.
  bool running = true;
  /// How the CLI interpreted the command, for `describe` ("exec", "shell", "python3", ...).
  std::string interpreter;
  /// Cluster mode when not empty: the addresses the daemon listens on for the
  /// app ("0.0.0.0:3000", "[::1]:8080", "unix:/run/app.sock") and passes to
  /// every instance by socket activation. A port 0 is replaced by the port the
  /// daemon got, so a restored app keeps it.
  std::vector<std::string> listen;
  /// Cluster mode's balancing: "shared" (every instance accepts from the
  /// socket it inherited) or "round_robin" (libcorral apps only: the daemon
  /// is their cluster primary over the channel, accepts, and passes each
  /// connection to the least busy instance; docs/net.md).
  std::string lb = "shared";
  /// Cluster mode: TCP_DEFER_ACCEPT on the daemon's TCP sockets (nginx's
  /// `deferred`): a connection is handed over once the client has sent
  /// something. Only for protocols where the client speaks first (HTTP).
  bool defer_accept = false;
};

/// "host:port", "[v6]:port", ":port" (any IPv4 address) or "unix:/abs/path".
result<net::address> parse_listen(const std::string& text);

json to_json(const app_spec& spec);
/// Checks every field's type and range. The error names the app and the key:
/// "app 'web': kill_timeout must be a number, got a string"; `unnamed` stands
/// for "app 'web'" while the name itself is unreadable.
result<app_spec> app_spec_from_json(const json& j, const std::string& unnamed = "app");

/// Why `name` cannot be instance_var or increment_var ("" if it can): not a
/// shell variable name ([A-Za-z_][A-Za-z0-9_]*), or one the daemon sets itself
/// (LISTEN_FDS, NODE_CHANNEL_FD, CORRAL_HOME, ...).
std::string env_var_problem(const std::string& name);

/// "-12", "3000": an optional minus and 1..15 digits.
bool is_whole_number(const std::string& text);

/// A name is safe as a file name component and not a number (numbers are ids).
bool valid_app_name(const std::string& name);

}  // namespace corral::daemon
