// $CORRAL_HOME: where the daemon keeps its socket, pid, state and logs.
#pragma once

#include <string>

#include "corral/error.hpp"

namespace corral::daemon {

struct home_paths {
  std::string dir;
  std::string socket;     // corral.sock
  std::string pid;        // daemon.pid
  std::string lock;       // daemon.lock (flock'd by the live daemon)
  std::string state;      // state.json
  std::string dump;       // dump.json (save/resurrect)
  std::string logs;       // logs/
  std::string daemon_log; // daemon.log (the daemon's own stderr)
};

/// $CORRAL_HOME, or $HOME/.corral.
home_paths resolve_home();
home_paths home_at(const std::string& dir);

/// Creates the home and logs/ as 0700 if missing. Refuses a home owned by
/// another user or open to others (group/other bits), so that no one else
/// can replace the socket or read the logs.
status ensure_home(const home_paths& home);

}  // namespace corral::daemon
