#include "daemon/lifecycle.hpp"

namespace corral::daemon {

std::string_view to_string(state s) noexcept {
  switch (s) {
    case state::stopped: return "stopped";
    case state::launching: return "launching";
    case state::online: return "online";
    case state::stopping: return "stopping";
    case state::waiting_restart: return "waiting restart";
    case state::errored: return "errored";
  }
  return "?";
}

std::string_view to_string(event e) noexcept {
  switch (e) {
    case event::start: return "start";
    case event::stop: return "stop";
    case event::restart: return "restart";
    case event::ready: return "ready";
    case event::exit: return "exit";
    case event::timer: return "timer";
  }
  return "?";
}

using L = lifecycle;

// Rows: states; columns: start, stop, restart, ready, exit, timer.
#define A(f) &L::act<&L::f>
const L::action L::table_[state_count][event_count] = {
    /* stopped */ {A(launch), A(ignore), A(launch), A(ignore), A(ignore), A(ignore)},
    /* launching */
    {A(ignore), A(begin_stop), A(begin_restart), A(become_online), A(exited_while_running), A(timed_out_online)},
    /* online */ {A(ignore), A(begin_stop), A(begin_restart), A(ignore), A(exited_while_running), A(ignore)},
    /* stopping */
    {A(want_start), A(want_stopped), A(want_start), A(ready_while_stopping), A(exited_while_stopping), A(force_kill)},
    /* waiting_restart */ {A(launch_now), A(stop_waiting), A(launch_now), A(ignore), A(ignore), A(relaunch)},
    /* errored */ {A(reset_and_launch), A(errored_to_stopped), A(reset_and_launch), A(ignore), A(ignore), A(ignore)},
};
#undef A

void lifecycle::handle(event e) {
  table_[static_cast<int>(state_)][static_cast<int>(e)](*this);
}

void lifecycle::handle_exit(int64_t code, int signal) {
  pending_exit_ = exit_info{code, signal, fx_.now() - started_at_};
  handle(event::exit);
}

void lifecycle::go(state next) {
  state from = state_;
  state_ = next;
  fx_.on_transition(from, next);
}

void lifecycle::launch() {
  fx_.cancel_timer();
  online_by_timeout_ = false;
  started_at_ = fx_.now();
  stop_deferred_ = false;
  spawn_error_ = fx_.spawn();
  if (spawn_error_ != 0) {
    go(state::errored);
    return;
  }
  if (options_.wait_ready) {
    fx_.arm_timer(options_.listen_timeout);
    go(state::launching);
  } else {
    go(state::online);
  }
}

// The restart delay has passed.
void lifecycle::relaunch() {
  ++restarts_;
  launch();
}

// A user start/restart while a restart delay runs: go at once.
void lifecycle::launch_now() { relaunch(); }

void lifecycle::reset_and_launch() {
  history_ = {};
  launch();
}

void lifecycle::become_online() {
  fx_.cancel_timer();
  go(state::online);
}

// DESIGN.md "Readiness": an app that never says it is ready is online after
// listen_timeout; a rolling reload still wants to know it never said so.
void lifecycle::timed_out_online() {
  online_by_timeout_ = true;
  become_online();
}

// An instance still launching is asked to stop once it says it is ready, or
// when its listen_timeout would have made it online (at most kill_timeout
// from now): a signal that comes before the app's handlers are in can be
// lost (Python swallows a SIGINT during its imports and serves on until
// SIGKILL), and sending it twice is no better (a second SIGINT means "force"
// to many apps, libcorral's primary among them).
void lifecycle::begin_stop() {
  start_after_exit_ = false;
  if (state_ == state::launching) {
    ms waited = fx_.now() - started_at_;
    ms left = options_.listen_timeout > waited ? options_.listen_timeout - waited : ms{0};
    stop_deferred_ = true;
    fx_.arm_timer(std::min(left, options_.kill_timeout));
    go(state::stopping);
    return;
  }
  fx_.signal_stop();
  fx_.arm_timer(options_.kill_timeout);
  go(state::stopping);
}

void lifecycle::send_deferred_stop() {
  stop_deferred_ = false;
  fx_.signal_stop();
  fx_.arm_timer(options_.kill_timeout);
}

void lifecycle::begin_restart() {
  begin_stop();
  start_after_exit_ = true;
}

void lifecycle::ready_while_stopping() {
  if (stop_deferred_) send_deferred_stop();
}

void lifecycle::want_start() { start_after_exit_ = true; }
void lifecycle::want_stopped() { start_after_exit_ = false; }

void lifecycle::force_kill() {
  if (stop_deferred_) return send_deferred_stop();
  fx_.kill_group();
}

void lifecycle::stop_waiting() {
  fx_.cancel_timer();
  go(state::stopped);
}

void lifecycle::errored_to_stopped() { go(state::stopped); }

void lifecycle::exited_while_stopping() {
  fx_.cancel_timer();
  last_exit_ = pending_exit_;
  if (start_after_exit_) {
    start_after_exit_ = false;
    history_ = {};
    ++restarts_;
    launch();
    return;
  }
  go(state::stopped);
}

void lifecycle::exited_while_running() {
  fx_.cancel_timer();
  last_exit_ = pending_exit_;
  auto d = decide_restart(options_.policy, last_exit_, history_);
  switch (d.what) {
    case restart_decision::kind::stop: go(state::stopped); return;
    case restart_decision::kind::errored: go(state::errored); return;
    case restart_decision::kind::restart:
      if (d.delay.count() == 0) {
        relaunch();
        return;
      }
      fx_.arm_timer(d.delay);
      go(state::waiting_restart);
      return;
  }
}

}  // namespace corral::daemon
