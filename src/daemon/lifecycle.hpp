// The lifecycle of one instance, as an explicit State x Event table
// (s6-supervise's actions[state][event]).
//
// The table only decides; the side effects (spawn, signal, kill, arm a timer)
// go through `instance_effects`, so the whole table is unit-tested with a fake
// and no process. The daemon turns child exits, channel messages and timer
// expiries into events. There is one timer per instance; what its expiry means
// depends on the state (listen timeout, kill timeout, restart delay).
#pragma once

#include <cstdint>
#include <string_view>

#include "daemon/restart_policy.hpp"

namespace corral::daemon {

enum class state : uint8_t { stopped, launching, online, stopping, waiting_restart, errored };
enum class event : uint8_t { start, stop, restart, ready, exit, timer };
inline constexpr int state_count = 6;
inline constexpr int event_count = 6;

std::string_view to_string(state s) noexcept;
std::string_view to_string(event e) noexcept;

/// What the table asks of the outside world.
class instance_effects {
 public:
  virtual ~instance_effects() = default;
  /// Starts the process. Returns 0, or a negative errno (libuv status) if it
  /// could not be started; then the instance is `errored` at once.
  virtual int spawn() = 0;
  /// The graceful stop: kill_signal to the process group, or 'shutdown'.
  virtual void signal_stop() = 0;
  /// SIGKILL to the process group.
  virtual void kill_group() = 0;
  /// (Re)arms the instance's single timer; cancel_timer disarms it.
  virtual void arm_timer(ms after) = 0;
  virtual void cancel_timer() = 0;
  /// Monotonic now, for uptimes.
  virtual ms now() = 0;
  /// Called after every transition (the daemon persists and logs).
  virtual void on_transition(state from, state to) = 0;
};

struct lifecycle_options {
  restart_policy policy;
  /// Time between the graceful stop and SIGKILL (PM2's kill_timeout).
  ms kill_timeout{1600};
  /// If set, the instance is `launching` until it sends 'ready' or
  /// listen_timeout passes; otherwise it is online as soon as it runs.
  bool wait_ready = false;
  ms listen_timeout{3000};
};

class lifecycle {
 public:
  lifecycle(instance_effects& fx, lifecycle_options options) : fx_(fx), options_(std::move(options)) {}

  void handle(event e);
  /// The process exited (the `exit` event, with how it ended).
  void handle_exit(int64_t code, int signal);

  state current() const noexcept { return state_; }
  /// Restarts caused by crashes or by the user, since the app was started.
  int restarts() const noexcept { return restarts_; }
  /// `corral reset` (PM2's reset): the restart count back to 0, and the crash
  /// history with it, so the next crash's backoff and max_restarts start over.
  void reset_counters() noexcept {
    restarts_ = 0;
    history_ = {};
  }
  const exit_info& last_exit() const noexcept { return last_exit_; }
  /// Negative errno of the last failed spawn, or 0.
  int spawn_error() const noexcept { return spawn_error_; }
  const lifecycle_options& options() const noexcept { return options_; }
  void set_options(lifecycle_options o) { options_ = std::move(o); }
  /// The current run went online because listen_timeout passed while it was
  /// expected to say 'ready' (wait_ready), not because it said so.
  bool online_by_timeout() const noexcept { return online_by_timeout_; }
  /// When the current run began (monotonic), valid while it runs.
  ms started_at() const noexcept { return started_at_; }

 private:
  // Plain function pointers, not pointers to members: GCC's UBSan misreads
  // the bounds of an array of member-function pointers.
  using action = void (*)(lifecycle&);
  template <void (lifecycle::*F)()>
  static void act(lifecycle& l) {
    (l.*F)();
  }
  static const action table_[state_count][event_count];

  void go(state next);
  // Actions: one per table cell kind.
  void ignore() {}
  void launch();
  void relaunch();
  void launch_now();
  void become_online();
  void timed_out_online();
  void begin_stop();
  void ready_while_stopping();
  void send_deferred_stop();
  void begin_restart();
  void stop_waiting();
  void want_start();
  void want_stopped();
  void force_kill();
  void exited_while_running();
  void exited_while_stopping();
  void reset_and_launch();
  void errored_to_stopped();

  instance_effects& fx_;
  lifecycle_options options_;
  state state_ = state::stopped;
  bool start_after_exit_ = false;
  // Asked to stop while launching: the stop signal waits for the app to say
  // it is ready (or for its listen_timeout), see begin_stop().
  bool stop_deferred_ = false;
  int restarts_ = 0;
  int spawn_error_ = 0;
  bool online_by_timeout_ = false;
  ms started_at_{0};
  exit_info last_exit_;
  exit_info pending_exit_;
  restart_history history_;
};

}  // namespace corral::daemon
