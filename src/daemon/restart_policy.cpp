#include "daemon/restart_policy.hpp"

#include <algorithm>

namespace corral::daemon {

namespace {

// A loop of instant crashes must still leave the CPU idle between runs.
constexpr ms implicit_floor_first{100};
constexpr ms implicit_floor_max{2000};

ms doubled(ms current, ms first, ms cap) {
  if (current.count() == 0) return std::min(first, cap);
  return std::min(current * 2, cap);
}

}  // namespace

restart_decision decide_restart(const restart_policy& p, const exit_info& e, restart_history& h) {
  using kind = restart_decision::kind;
  if (!p.autorestart) return {kind::stop, ms{0}};
  if (e.signal == 0 &&
      std::find(p.stop_exit_codes.begin(), p.stop_exit_codes.end(), e.code) != p.stop_exit_codes.end())
    return {kind::stop, ms{0}};

  bool stable = e.uptime >= p.min_uptime;
  if (stable) {
    h.unstable_restarts = 0;
    h.backoff = ms{0};
  } else {
    if (h.unstable_restarts >= p.max_restarts) return {kind::errored, ms{0}};
    ++h.unstable_restarts;
  }

  ms delay = p.restart_delay;
  if (p.exp_backoff_restart_delay.count() > 0) {
    if (!stable) h.backoff = doubled(h.backoff, p.exp_backoff_restart_delay, p.max_backoff);
    delay = std::max(delay, h.backoff.count() ? h.backoff : p.exp_backoff_restart_delay);
  } else if (!stable && delay.count() == 0) {
    h.backoff = doubled(h.backoff, implicit_floor_first, implicit_floor_max);
    delay = h.backoff;
  }
  return {kind::restart, delay};
}

}  // namespace corral::daemon
