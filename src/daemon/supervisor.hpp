// The daemon's model: apps, their instances, and the commands of the control
// protocol applied to them. Persists the desired state after every change
// and answers a command once its effect is visible (a stop replies when the
// processes are gone).
#pragma once

#include <array>
#include <uv.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/handle.hpp"
#include "daemon/app_logs.hpp"
#include "daemon/app_spec.hpp"
#include "daemon/cron.hpp"
#include "daemon/home.hpp"
#include "daemon/instance.hpp"
#include "daemon/protocol.hpp"
#include "daemon/state_file.hpp"
#include "daemon/usage_sampler.hpp"
#include "daemon/watcher.hpp"
#include "net/router.hpp"

namespace corral::daemon {

class supervisor final : public instance_host {
 public:
  /// How often max_memory_restart is checked, while an app has one (PM2's
  /// worker checks every 30 s): each check reads /proc/<pid>/stat of every
  /// process. CORRAL_MEMORY_CHECK_MS in the daemon's environment sets it
  /// (50 ms to an hour).
  static constexpr std::chrono::milliseconds default_memory_check_interval{5000};

  using reply_fn = std::function<void(response&&)>;

  supervisor(uv_loop_t* loop, home_paths home);
  ~supervisor() override;

  /// Kills what a previous daemon left behind (process groups recorded in
  /// the state file) and restarts the apps it was running. Returns how many
  /// apps were restored.
  /// `inherited`: the listening sockets and output read ends the daemon
  /// this one replaces passed it (`corral update`), taken before asking the
  /// kernel for the old instances' copies (which needs ptrace rights).
  int restore(std::vector<unique_fd> inherited = {});
  /// Handles one request; `reply` is called exactly once, maybe later.
  void handle(const request& req, reply_fn reply);
  /// Stops every instance (graceful, then SIGKILL) but those whose ids are
  /// in `keep`, then calls `done`.
  void stop_everything(std::function<void()> done, std::vector<int> keep = {});
  /// Set by the `kill` command: the daemon exits once the reply is out.
  bool exit_requested() const noexcept { return exit_requested_; }
  void on_exit_requested(std::function<void()> fn) { on_exit_requested_ = std::move(fn); }

  /// After an `update` command: the binary of the daemon that replaces this
  /// one, which exits once the reply is out; empty otherwise.
  const std::string& replacement_exe() const noexcept { return update_exe_; }
  /// Whether the replacement takes the lock's descriptor (update's take_lock).
  bool replacement_takes_lock() const noexcept { return update_takes_lock_; }
  /// The daemon exits for its replacement: the cluster-mode instances it kept
  /// running are left to the next daemon (not killed).
  /// Returns duplicates of what the next daemon takes over: the listening
  /// sockets of those instances' apps and the read ends of their output.
  std::vector<unique_fd> leave_running_for_update();

  int restored_apps() const noexcept { return restored_apps_; }
  /// How many of restore()'s `inherited` descriptors it used.
  int inherited_used() const noexcept { return inherited_used_; }
  int killed_orphans() const noexcept { return killed_orphans_; }
  /// Leftover instances stopped gracefully, their sockets taken over.
  int handed_over() const noexcept { return handed_over_; }
  /// Why the sockets of a dead daemon's instances could not be taken over
  /// (they were killed instead), or empty.
  const std::string& takeover_error() const noexcept { return takeover_error_; }
  /// Why the state file could not be used at start (its apps were not
  /// restored), or empty; and where it was moved to (empty if it could not be).
  const std::string& state_error() const noexcept { return state_error_; }
  /// No write of the state file is due or under way (ping's "state_saved").
  bool persist_idle() const;
  const std::string& state_moved_to() const noexcept { return state_moved_to_; }

  /// Also hands every app's output line, as logged, to `fn` (`corral run`
  /// prints them). `stream` is 1 (stdout) or 2 (stderr).
  using output_echo = std::function<void(const app_spec& spec, int index, int stream, std::string_view line)>;
  void echo_output_to(output_echo fn) { echo_ = std::move(fn); }
  /// Also calls `fn` after every instance transition (`corral run` learns
  /// when nothing runs any more). It runs inside the transition: it may ask
  /// nothing_runs(), and must arrange anything more for later.
  void on_transition(std::function<void()> fn) { on_transition_ = std::move(fn); }
  /// True if no process runs or will run without a command: every instance,
  /// those of apps being deleted included, is stopped or errored.
  bool nothing_runs() const;

  /// `reload all`, as the daemon's SIGHUP asks: errors go to stderr.
  void reload_all_from_signal();

  // instance_host
  void on_output(int instance_id, int stream, std::string_view line) override;
  bool hold_output(int instance_id, int stream, std::function<void()> resume) override;
  void when_output_written(int instance_id, int stream, std::function<void()> done) override;
  void note(int instance_id, std::string_view line) override;
  void on_instance_transition(int instance_id, state from, state to) override;
  std::string notify_socket_path(bool other_user) override;
  std::string home_dir() const override { return home_.dir; }
  status before_spawn(int instance_id) override;

 private:
  struct app {
    app_spec spec;
    std::unique_ptr<app_logs> logs;
    /// A restored app whose log files could not be opened: `logs` are
    /// app_logs::unopened, and every spawn tries to open them first.
    bool logs_unopened = false;
    /// Cluster mode: the listening sockets the daemon owns for the app, kept
    /// across restarts and reloads (the kernel queues connections while no
    /// instance accepts), closed on delete. Declared before the instances,
    /// which borrow them.
    std::vector<unique_fd> sockets;
    /// `--lb round_robin`: the daemon is the instances' cluster primary and
    /// passes them connections accepted from `sockets`.
    std::unique_ptr<net::detail::router> balancer;
    /// One per index 0..spec.instances-1: what list shows.
    std::vector<std::unique_ptr<instance>> instances;
    /// Reload replacements not yet online, and instances being retired
    /// (replaced or scaled down) until they have stopped.
    std::vector<std::unique_ptr<instance>> others;
    bool deleting = false;
    /// Rolling reloads of the app in progress (a memory check waits for them).
    int reloading = 0;
    /// cron_restart: the timer, armed for the next match (at most an hour
    /// ahead, then again: the wall clock may have moved), and that match.
    detail::uv_handle_ptr<uv_timer_t> cron_timer;
    std::optional<cron_schedule> cron;
    int64_t cron_next_ms = 0;  // unix ms
    /// watch: the app's files, watched while it is meant to run; their
    /// changes, batched into restarts by the timer (spec.watch_delay).
    std::unique_ptr<watcher> files;
    change_batch changes;
    detail::uv_handle_ptr<uv_timer_t> watch_timer;
  };
  struct reload_job;
  struct waiter {
    std::function<bool()> done;
    std::function<void()> fire;
  };

  // `adopted`: listening sockets taken over from a dead daemon's instances,
  // by the index of spec.listen (an empty fd: bind anew).
  /// A new instance of `a` (not yet started), balanced by its router if any.
  /// Why `spec`'s own paths (out_file, error_file, log_file, pid_file) cannot
  /// be used: another app writes one of them. "" if they can. `except`: an
  /// app whose own paths do not count (the one that scales).
  std::string path_taken(const app_spec& spec, const app* except = nullptr) const;
  /// Why this daemon cannot start `spec`'s processes as its uid and gid ("" if it can).
  static std::string identity_problem(const app_spec& spec);
  std::unique_ptr<instance> make_instance(app& a, int id, int index);
  // `restoring`: a restored app whose addresses cannot be bound now (a
  // port another service holds at boot) or whose log files cannot be opened
  // (a directory gone or replaced) is added all the same, without sockets
  // or open files; its instances bind and open them when they start
  // (before_spawn), so until then they fail to spawn and show why, and
  // `restart` retries. Else what fails is the error.
  result<app*> add_app(app_spec spec, const std::vector<int>& ids = {}, std::vector<unique_fd> adopted = {},
                       bool restoring = false);
  /// Opens `a`'s log files if they are app_logs::unopened.
  status open_logs(app& a);
  /// Binds (or takes from `adopted`) every socket of `a.spec.listen`; all
  /// or none.
  status bind_sockets(app& a, std::vector<unique_fd> adopted);
  struct leftover;
  void stop_leftovers_when_started(app& a, std::vector<leftover> left);
  void watch_leftovers();
  void kill_leftovers();
  std::vector<instance*> select(const std::string& target, std::string& err);
  app* app_of(int instance_id);
  app* app_named(const std::string& name);
  instance* find_instance(int id);
  json describe_instance(const app& a, const instance& i, bool full) const;
  void persist_soon();
  void persist_after(std::chrono::milliseconds delay);
  void persist_now();
  void write_state(std::string text);
  void check_waiters();
  void wait_then(std::function<bool()> done, std::function<void()> fire);
  void remove_deleted_apps();

  void cmd_start(const request& req, reply_fn reply);
  void drive_targets(const request& req, reply_fn reply, bool running, event e, const char* verb,
                     std::function<bool(state)> settled);
  void cmd_stop(const request& req, reply_fn reply);
  void cmd_restart(const request& req, reply_fn reply);
  /// A restart's or reload's `env`, applied to its app's spec; why not, or "".
  std::string update_env(const request& req);
  void cmd_delete(const request& req, reply_fn reply);
  void cmd_list(const request& req, reply_fn reply);
  void cmd_describe(const request& req, reply_fn reply);
  void cmd_flush(const request& req, reply_fn reply);
  /// `corral reloadLogs` (PM2's, for logrotate): every log file reopened.
  void cmd_reload_logs(const request& req, reply_fn reply);
  /// flush or reload_logs: `op` on the target's apps' logs, the reply once done.
  void on_logs(const request& req, reply_fn reply, void (app_logs::*op)(std::function<void()>));
  /// The daemon's own stderr, if it was daemon.log and the path names
  /// another file now (moved by logrotate): the path opened afresh.
  void reopen_daemon_log();
  void cmd_save(const request& req, reply_fn reply);
  void cmd_resurrect(const request& req, reply_fn reply);
  void cmd_kill(const request& req, reply_fn reply);
  void cmd_logs_info(const request& req, reply_fn reply);
  void cmd_reload(const request& req, reply_fn reply);
  void cmd_scale(const request& req, reply_fn reply);
  void cmd_reset(const request& req, reply_fn reply);
  void cmd_signal(const request& req, reply_fn reply);
  void cmd_env(const request& req, reply_fn reply);
  void cmd_update(const request& req, reply_fn reply);
  /// An instance `update` leaves running: the next daemon can take over its
  /// listening sockets (cluster mode, not round_robin, whose connections
  /// come through the daemon) and so replace it with no port closed.
  static bool survives_update(const app& a, const instance& i);

  /// `only`: those instance indices (a memory restart's one); empty: all.
  void reload_app(app& a, int parallel, std::function<void(std::string error)> done, std::vector<int> only = {});
  /// max_memory_restart: while an app has one, every memory_check_interval
  /// the instances' process groups are measured and one over its limit is
  /// restarted (reloaded in cluster mode).
  void watch_memory();
  void check_memory();
  void arm_cron(app& a);
  void on_cron(app& a);
  /// watch (supervisor_watch.cpp): watching starts with the app (start,
  /// restart, reload, restore) and stops with it (stop, delete, kill).
  /// arm_watch() of an app watched already tries again its paths that could
  /// not be watched (a deleted or missing one is awaited all along).
  void arm_watch(app& a);
  void disarm_watch(app& a);
  void on_watch_change(app& a, const std::string& path);
  void on_watch_due(app& a);
  void start_watch_timer(app& a, std::chrono::milliseconds after);
  /// A line from corral about the whole app: its error log (each
  /// instance's, when not merged) and the daemon's.
  void note_app(app& a, const std::string& line);
  void reload_next(const std::shared_ptr<reload_job>& job);
  void reload_slot(const std::shared_ptr<reload_job>& job, int index);
  struct notify_socket {
    std::string name;  // NOTIFY_SOCKET's value
    unique_fd fd;
    detail::uv_handle_ptr<uv_poll_t> poll;
    bool abstract = false;
  };
  /// Binds `s` to `name` (a path, or "@" and an abstract name); false (said
  /// in the daemon's log) if it cannot.
  bool open_notify_socket(notify_socket& s, std::string name);
  void on_notify_readable(const notify_socket& s);

  uv_loop_t* loop_;
  home_paths home_;
  std::vector<std::unique_ptr<app>> apps_;
  usage_sampler usage_;  // list/describe/monit figures; reads /proc only on demand
  int next_id_ = 0;
  std::vector<waiter> waiters_;
  bool checking_waiters_ = false;
  detail::uv_handle_ptr<uv_timer_t> persist_timer_;
  detail::uv_handle_ptr<uv_timer_t> memory_timer_;
  std::chrono::milliseconds memory_check_interval_ = default_memory_check_interval;
  /// inotify watches (directories) per watched app; CORRAL_WATCH_MAX_DIRS
  /// in the daemon's environment sets it (1..1000000).
  size_t watch_max_dirs_ = limits::max_watch_dirs;
  /// Instances being restarted for their memory, until their replacement runs.
  std::vector<int> memory_restarting_;
  bool persist_pending_ = false;
  // The state is written (and fsynced) on the threadpool, one write at a
  // time; a newer state waits in persist_next_ and replaces an older one.
  bool persist_writing_ = false;
  std::optional<std::string> persist_next_;
  // A write that failed (a full disk, no descriptors left) is tried again
  // after persist_backoff_, doubling to 30 s, until one succeeds; any change
  // meanwhile tries at once. persist_error_ is the last failure's reason
  // until then (ping reports it, and `corral list` warns).
  std::chrono::milliseconds persist_backoff_{0};
  std::string persist_error_;
  std::shared_ptr<char> alive_ = std::make_shared<char>();
  bool exit_requested_ = false;
  bool stderr_is_daemon_log_ = false;  // (when we started)
  std::string update_exe_;
  bool update_takes_lock_ = false;  // set by `update`: no command changes anything any more
  bool leaving_running_ = false;
  std::function<void()> on_exit_requested_;
  output_echo echo_;
  std::function<void()> on_transition_;
  int restored_apps_ = 0;
  int inherited_used_ = 0;
  int killed_orphans_ = 0;
  // A dead daemon's instances whose sockets we took: asked to stop, killed
  // (process group) after their kill_timeout if still there.
  int handed_over_ = 0;
  std::string takeover_error_;
  std::string state_error_;
  std::string state_moved_to_;
  struct leftover {
    pid_t pgid;
    uint64_t start_ticks;
    std::string app;        // persisted with it: a daemon killed again meanwhile leaves them to the next
    int64_t kill_at_ms = -1;  // uv_now() deadline once asked to stop; -1: not asked yet
    std::array<uint64_t, 2> output_inodes{};  // (persisted too)
  };
  std::vector<leftover> leftovers_;
  // A dead daemon's instance's output, taken over (restore()) and read to
  // its end into the app's logs.
  /// The output of a dead daemon's instances (tap_output).
  std::vector<std::unique_ptr<output_reader>> taps_;
  void tap_output(const std::string& app, int index, int stream, unique_fd fd);
  detail::uv_handle_ptr<uv_timer_t> leftover_timer_;
  int64_t started_unix_ms_ = 0;
  /// <home>/notify.sock, for the apps that run as the daemon's user.
  notify_socket notify_own_;
  /// For apps run as another user, who cannot reach the daemon's home (0700):
  /// an abstract socket with a random name, opened for the first of them.
  /// Anyone may send to it; a message counts only from an instance's
  /// process group and its user (kernel-checked credentials).
  notify_socket notify_others_;
};

}  // namespace corral::daemon
