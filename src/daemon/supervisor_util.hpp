// Internal to the supervisor's two files: small shared helpers.
#pragma once

#include <chrono>
#include <string>

#include "daemon/lifecycle.hpp"
#include "daemon/protocol.hpp"

namespace corral::daemon::util {

inline int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

inline bool settled_stopped(state s) { return s == state::stopped || s == state::errored; }
inline bool settled_running(state s) {
  return s == state::online || s == state::errored || s == state::stopped || s == state::waiting_restart;
}

inline response fail(uint64_t id, std::string msg) { return response{id, false, json(), std::move(msg)}; }
inline response ok(uint64_t id, json result = json::object()) { return response{id, true, std::move(result), {}}; }

}  // namespace corral::daemon::util
