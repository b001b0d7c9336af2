// `corral daemon`: the supervisor, its control socket and its signals on one
// libuv loop.
#pragma once

#include "daemon/home.hpp"

namespace corral::daemon {

/// Runs the daemon in the foreground until `corral kill` or SIGTERM/SIGINT.
/// Returns the process exit code. Exits 3 at once if another daemon holds
/// the home's lock.
int run_daemon(const home_paths& home);

inline constexpr int exit_already_running = 3;

}  // namespace corral::daemon
