// What the user asked for one app, from the command line (`corral start
// <command> [flags]`) or from one entry of an ecosystem file, and the one
// function that turns it into a daemon::app_spec. Both sources go through
// make_app_spec, so they resolve the command and check every value the same
// way and fail with the same messages.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "corral/error.hpp"
#include "daemon/app_spec.hpp"

namespace corral::cli {

struct app_options {
  /// A program, a script (.py .js .sh) or a shell command; see command_resolve.hpp.
  std::string script;
  std::vector<std::string> args;
  /// Empty: the program's name.
  std::string name;
  /// Appended to the name, default or given (PM2's append_env_to_name: "-production").
  std::string name_suffix;
  std::string namespace_name = "default";
  /// Empty: `base_dir`; relative: to `base_dir`.
  std::string cwd;
  std::map<std::string, std::string> env;
  std::string interpreter;
  /// Given to the interpreter before the script (PM2's interpreter_args).
  std::vector<std::string> interpreter_args;
  /// A number 1..1024, or "max" (also "0" and "-1"): one per CPU.
  std::string instances = "1";
  bool time = false;
  /// dayjs tokens (daemon::format_date); "": ISO-8601 UTC when `time`.
  std::string log_date_format;
  /// "raw" or "json" (daemon::app_spec::log_type).
  std::string log_type = "raw";
  bool merge_logs = true;
  /// Log paths (PM2's out_file, error_file, log_file): relative to the app's
  /// cwd, "~/" for $HOME; "": the default (<home>/logs/<name>-out.log ...).
  std::string out_file;
  std::string error_file;
  std::string log_file;
  /// PM2's pid_file: as a log path; with several instances one per instance.
  std::string pid_file;
  /// PM2's filter_env (daemon::app_spec::filter_env).
  std::vector<std::string> filter_env;
  /// PM2's instance_var and increment_var (daemon::app_spec).
  std::string instance_var = "NODE_APP_INSTANCE";
  std::string increment_var;
  /// PM2's uid and gid: a user or group name, or a number; "": the daemon's.
  /// A uid alone brings its user's primary group.
  std::string uid;
  std::string gid;
  /// Bytes, or 512K / 10M / 1G; "0": never rotate.
  std::string max_log_size = "10M";
  /// Bytes, or 512K / 300M / 1G; "0": no limit.
  std::string max_memory_restart = "0";
  /// A cron pattern (daemon/cron.hpp); "": none.
  std::string cron_restart;
  /// Paths to watch, relative to the cwd ("" or ".": the cwd); empty: none.
  std::vector<std::string> watch;
  /// Patterns (see daemon::ignore_rules); ms over which changes make one restart.
  std::vector<std::string> ignore_watch;
  int64_t watch_delay = 100;
  int log_retain = 5;
  bool autorestart = true;
  /// PM2's autostart: false adds the app stopped (`corral start <name>` starts it).
  bool autostart = true;
  /// PM2's disable_logs: stdout and stderr go to /dev/null (unless out_file
  /// or error_file say otherwise).
  bool disable_logs = false;
  bool wait_ready = false;
  bool shutdown_with_message = false;
  /// "SIGINT", "INT" or a number.
  std::string kill_signal = "SIGINT";
  int64_t kill_timeout = 1600;
  int64_t restart_delay = 0;
  int64_t exp_backoff_restart_delay = 0;
  int64_t min_uptime = 1000;
  int64_t listen_timeout = 3000;
  int max_restarts = 16;
  std::vector<int> stop_exit_codes;
  /// Cluster mode: addresses (see daemon::parse_listen), and/or a TCP port on
  /// every IPv4 address (-1: none).
  std::vector<std::string> listen;
  int port = -1;
  /// "shared" or "round_robin" (see daemon::app_spec::lb).
  std::string lb = "shared";
  /// TCP_DEFER_ACCEPT on the daemon's sockets (see daemon::app_spec::defer_accept).
  bool defer_accept = false;
};

/// Why an app_options could not become a spec: `field` is the ecosystem key
/// of the bad value ("kill_signal"; "script" when the command does not
/// resolve), so the command line can name its flag and a file its key.
struct spec_error {
  std::string field;
  std::string message;
};

struct spec_outcome {
  std::optional<daemon::app_spec> spec;
  spec_error error;  // when !spec
};

/// Resolves the command (relative paths against the cwd) and checks every
/// value. `base_dir` is absolute; `path_env` is $PATH.
spec_outcome make_app_spec(const app_options& o, const std::string& base_dir, const std::string& path_env);

/// A log path as the daemon takes it: absolute, normalized; `given` relative
/// to `cwd`, "~/x" in $HOME; "" stays "". A directory is refused.
result<std::string> log_path(const std::string& given, const std::string& cwd);
/// "SIGTERM", "TERM" or a number 1..64.
result<int> parse_signal(const std::string& s);
/// "1048576", "512K", "10M", "1G" (powers of 1024); "0" means `zero`; else
/// at least `minimum` bytes (written `min_text`).
result<uint64_t> parse_size(const std::string& s, uint64_t minimum = daemon::limits::min_log_size,
                            const std::string& min_text = "4K", const std::string& zero = "never rotate");
/// 1..1024, or "max" / "0" / "-1" for one instance per CPU.
result<int> parse_instances(const std::string& s);

}  // namespace corral::cli
