// One running copy of an app: its lifecycle table and the real effects
// behind it (uv_spawn in a new session, signals to the process group, the
// instance's timer, the channel at fd 3, stdout/stderr pipes into the logs).
#pragma once

#include <array>
#include <sys/types.h>
#include <uv.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/handle.hpp"
#include "corral/channel.hpp"
#include "corral/error.hpp"
#include "corral/fd.hpp"
#include "daemon/app_spec.hpp"
#include "daemon/lifecycle.hpp"
#include "daemon/output_reader.hpp"

namespace corral::net::detail {
class router;
}

namespace corral::daemon {

class log_file;

/// Where an instance's output goes and whom it tells about transitions.
struct instance_host {
  virtual ~instance_host() = default;
  virtual void on_output(int instance_id, int stream, std::string_view line) = 0;
  /// After a read: true if `stream`'s destination is behind, in which case
  /// the instance stops reading that pipe and the host calls `resume` once
  /// there is room again (at most once; `resume` checks that the pipe is
  /// still there). False: go on reading, and `resume` is dropped.
  virtual bool hold_output(int /*instance_id*/, int /*stream*/, std::function<void()> /*resume*/) { return false; }
  /// Calls `done` once every line given to on_output for `stream` so far is
  /// written or dropped (the instance then takes their bytes out of the
  /// socket: output_reader.hpp).
  virtual void when_output_written(int /*instance_id*/, int /*stream*/, std::function<void()> done) { done(); }
  virtual void on_instance_transition(int instance_id, state from, state to) = 0;
  /// A line from corral itself about the instance, for its error log.
  virtual void note(int /*instance_id*/, std::string_view /*line*/) {}
  /// The sd_notify datagram socket (NOTIFY_SOCKET: a path, or '@' and an
  /// abstract name) for an app that runs as the daemon's user or, with
  /// `other_user`, as another, who cannot reach the daemon's home; or "".
  virtual std::string notify_socket_path(bool /*other_user*/) { return {}; }
  /// The daemon's home, given to instances as CORRAL_HOME (which, with
  /// CORRAL_APP_NAME, lets a later daemon of that home find them), or "".
  virtual std::string home_dir() const { return {}; }
  /// Before each spawn: gets what the instance needs from its app and may
  /// lack (a cluster app's sockets, when a restore could not bind them). An
  /// error fails the spawn with its message (the instance is errored).
  virtual status before_spawn(int /*instance_id*/) { return {}; }
};

class instance final : public instance_effects {
 public:
  /// `spec` and `sockets` are borrowed: the app owns them and outlives its
  /// instances. A non-empty `sockets` is cluster mode: they are passed at fds
  /// 3.. by systemd's socket activation (LISTEN_FDS, LISTEN_PID).
  instance(uv_loop_t* loop, instance_host& host, const app_spec& spec, const std::vector<unique_fd>& sockets, int id,
           int index);
  ~instance() override;
  instance(const instance&) = delete;
  instance& operator=(const instance&) = delete;

  /// `--lb round_robin`: the instance is a cluster worker of the daemon
  /// (CORRAL_WORKER_ID, the channel at fd 3, no socket of its own): its
  /// listen() asks `r`, which passes it connections, and it is online once
  /// it listens on every address of the app. `r` outlives the instance.
  void balance_with(net::detail::router* r) noexcept { router_ = r; }
  /// The router's `on_listening` hook for a peer that is an instance's run.
  static void on_router_listening(const void* peer);

  lifecycle& fsm() noexcept { return fsm_; }
  const lifecycle& fsm() const noexcept { return fsm_; }
  int id() const noexcept { return id_; }
  /// A reload's replacement takes the id of the instance it replaces (and
  /// that one a fresh id), so ids stay stable across reloads.
  void set_id(int id) noexcept { id_ = id; }
  int index() const noexcept { return index_; }
  /// The running process (and its process group), or 0.
  pid_t pid() const noexcept { return pid_; }
  /// The inodes of the current run's stdout and stderr read ends, which the
  /// process holds copies of (so a later daemon can take them over), or 0.
  const std::array<uint64_t, 2>& output_inodes() const noexcept { return output_inodes_; }
  /// Why the last spawn failed ("spawn /bin/x: no such file or directory (ENOENT)").
  const std::string& spawn_error_text() const noexcept { return spawn_error_text_; }
  /// The environment of the last spawn (`corral env`); empty before the first.
  const std::map<std::string, std::string>& spawn_env() const noexcept { return spawn_env_; }
  /// Wall-clock time (Unix ms) the current run started.
  int64_t started_unix_ms() const noexcept { return started_unix_ms_; }
  /// Makes the pid file (app_spec::pid_file) say what runs: written once a
  /// process runs, under the name the app's instance count gives it (called
  /// again after a scale), removed when it exits if it still holds its pid.
  void update_pid_file();
  /// Forgets a process without stopping it: the daemon is exiting and the
  /// process was already signalled.
  void sigkill_now();
  /// Before the daemon destroys a stopped instance: what its pipes still
  /// hold (the process exited, but the loop had not read all of its output
  /// yet, or not its end of file) goes to the logs now, the partial last
  /// line included. Only what is already in the pipes: never waits.
  void take_remaining_output();
  /// The daemon is being replaced (`corral update`) and leaves this process
  /// running for the next one, which takes its sockets and output over: it
  /// is not killed, its pid file stays, and what it writes from now on stays
  /// in its output sockets (it holds their read ends too) for the next
  /// daemon to log. Returns duplicates of the read ends of its output.
  std::vector<unique_fd> leave_running();

  // instance_effects
  int spawn() override;
  void signal_stop() override;
  void kill_group() override;
  void arm_timer(ms after) override;
  void cancel_timer() override;
  ms now() override;
  void on_transition(state from, state to) override;

  struct run;  // one process: handle, pipes, channel; outlives its exit until the pipes drain

 private:
  void on_exit(run& r, int64_t code, int signal);
  void on_run_drained(run& r);
  void on_message(run& r, const json& msg);
  /// The run leaves the router: its process exited or its channel closed.
  void leave_router(run& r);

  uv_loop_t* loop_;
  instance_host& host_;
  const app_spec& spec_;
  const std::vector<unique_fd>& sockets_;
  net::detail::router* router_ = nullptr;
  int id_;
  int index_;
  lifecycle fsm_;
  pid_t pid_ = 0;
  std::array<uint64_t, 2> output_inodes_{};
  int64_t started_unix_ms_ = 0;
  std::string spawn_error_text_;
  std::map<std::string, std::string> spawn_env_;
  // The pid file written for the current process, and the pid it holds.
  std::string pid_file_;
  pid_t pid_file_pid_ = 0;
  pid_t pid_file_failed_ = 0;  // the process whose pid file could not be written (said once)
  // An app message of an unexpected shape was logged: one line per
  // instance, however many it sends.
  bool said_odd_message_ = false;
  detail::uv_handle_ptr<uv_timer_t> timer_;
  std::unique_ptr<run> current_;
  std::vector<std::unique_ptr<run>> draining_;
};

}  // namespace corral::daemon
