// `corral run`: the manager in the foreground, for containers (PM2's
// pm2-runtime). The daemon runs in this process, with its own home, starts
// the apps, prints every app's output line on this process's stdout/stderr
// prefixed with the app's name, and:
//   - on SIGTERM/SIGINT (or `corral kill`) stops the apps gracefully and
//     returns 0;
//   - once no app runs or will run again (each stopped or errored), stops
//     and returns 1, so that the container's restart policy takes over;
//   - reaps the orphans its apps leave, as PID 1 must (orphan_reaper.hpp).
#pragma once

#include <vector>

#include "daemon/app_spec.hpp"

namespace corral::cli {

/// The home is $CORRAL_HOME if set (kept), else a fresh 0700 directory under
/// $TMPDIR or /tmp (removed on return). Returns the process exit code.
int run_foreground(const std::vector<daemon::app_spec>& apps);

}  // namespace corral::cli
