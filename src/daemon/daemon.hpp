// `corral daemon`: the supervisor, its control socket and its signals on one
// libuv loop.
#pragma once

#include <uv.h>

#include <functional>

#include "daemon/home.hpp"

namespace corral::daemon {

class supervisor;

/// How a caller that embeds the daemon (`corral run`) joins in.
struct daemon_hooks {
  /// Once the control socket listens, before the loop runs. `stop_and_exit`
  /// stops every app, then makes run_daemon return `code`.
  std::function<void(uv_loop_t* loop, supervisor& sup, std::function<void(int code)> stop_and_exit)> on_started;
  /// Once the loop has stopped, before the supervisor is destroyed: close
  /// the handles on_started opened.
  std::function<void()> on_stopped;
};

/// Runs the daemon in the foreground until `corral kill` or SIGTERM/SIGINT.
/// Returns the process exit code. Exits 3 at once if another daemon holds
/// the home's lock.
int run_daemon(const home_paths& home, const daemon_hooks& hooks = {});

inline constexpr int exit_already_running = 3;

}  // namespace corral::daemon
