// corral/shutdown.hpp — graceful shutdown, built in.
//
// The seed's `process.on('SIGINT', ...)` pattern as one call:
//
//   corral::shutdown::on_cleanup([] { db.close(); });
//   corral::shutdown::enable();   // SIGINT/SIGTERM and the 'shutdown' message
//
// On a trigger: every server of the process (net::listener, http::server)
// stops accepting and finishes what is in flight; then the cleanup hooks run
// in reverse order of registration and the process exits 0. If that takes
// longer than the timeout, the hooks run and the process exits 1. A second
// signal forces that at once; a second trigger of any other kind (the
// primary's disconnect, a 'shutdown' message, begin()) is ignored, so a
// worker that gets a Ctrl-C both by itself and through its primary shuts down
// gracefully. In a cluster worker the primary is told first, so it sees
// exited_after_disconnect() == true.
#pragma once

#include <chrono>
#include <csignal>
#include <functional>
#include <vector>

namespace corral::shutdown {

struct options {
  std::chrono::milliseconds timeout{5000};
  std::vector<int> signals{SIGINT, SIGTERM};
  /// Also shut down on the channel message "shutdown" (from a cluster primary
  /// or the corral manager: PM2's shutdown_with_message).
  bool on_shutdown_message = true;
  /// Printed to stdout when the shutdown starts / ends / is forced; empty: silent.
  const char* closing_message = nullptr;
  const char* closed_message = nullptr;
  const char* forced_message = nullptr;
};

/// Installs the triggers. Call once, on the loop's thread, before run().
void enable(options opts = {});
/// Adds a cleanup hook. Hooks run once, last added first.
void on_cleanup(std::function<void()> fn);
/// Starts the graceful shutdown now, as a first signal would; does nothing if
/// one is under way (only a second signal forces it).
void begin();
/// True once a shutdown has begun.
bool in_progress() noexcept;

}  // namespace corral::shutdown
