// Restart policy: what to do when an instance's process exits on its own.
//
// Pure: given the policy, how the run ended and the history of recent runs, it
// decides to restart (after a delay), to stop, or to give up (`errored`). The
// semantics follow PM2's options of the same names (docs/manager-protocol.md).
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

namespace corral::daemon {

using ms = std::chrono::milliseconds;

struct restart_policy {
  bool autorestart = true;
  /// Fixed delay before every restart.
  ms restart_delay{0};
  /// If non-zero, the first delay of exponential backoff; doubles after each
  /// unstable run, capped at `max_backoff`; a stable run resets it.
  ms exp_backoff_restart_delay{0};
  ms max_backoff{15000};
  /// A run shorter than this is unstable.
  ms min_uptime{1000};
  /// Consecutive unstable restarts allowed before the instance is `errored`.
  int max_restarts = 16;
  /// Exit codes that mean "done, do not restart".
  std::vector<int> stop_exit_codes;
};

/// How a run ended: exit code (when not signalled) or the signal, and for how long it ran.
struct exit_info {
  int64_t code = 0;
  int signal = 0;
  ms uptime{0};
};

/// What the instance remembers between runs.
struct restart_history {
  int unstable_restarts = 0;  // consecutive
  ms backoff{0};              // current exponential delay, 0 = not started
};

struct restart_decision {
  enum class kind { restart, stop, errored };
  kind what = kind::stop;
  ms delay{0};
};

/// Decides and updates `history`. A crash loop never restarts faster than
/// the implicit floor (100 ms doubling to 2 s) even when no delay is set, so
/// it cannot burn a core.
restart_decision decide_restart(const restart_policy& policy, const exit_info& exit, restart_history& history);

}  // namespace corral::daemon
