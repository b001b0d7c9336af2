// Starting a daemon process: by the CLI when none answers, and by a daemon
// replacing itself (`corral update`).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "corral/error.hpp"
#include "daemon/home.hpp"

namespace corral::daemon {

/// The running binary's path; a binary replaced on disk since it started
/// (an upgrade) still names the path, not "<path> (deleted)".
std::string self_exe_path();
/// True if the running binary was replaced on disk since it started.
bool exe_replaced(pid_t pid);

/// At most this many descriptors pass to a daemon (`corral update`).
inline constexpr std::size_t max_passed_fds = 1000;

/// Starts `<exe> daemon` for `home`: detached (double fork, its own session),
/// stdin /dev/null, stdout and stderr appended to daemon.log, no descriptor
/// beyond 0..2 but `pass_fds`, which it gets at 3, 4, ... in that order, the
/// caller's environment plus `extra_env` ("K=V"). Returns
/// the daemon's pid. Only async-signal-safe calls run between fork and exec,
/// so a multi-threaded caller (the daemon: libuv's threadpool) may use it.
result<pid_t> launch_daemon(const home_paths& home, const std::string& exe, const std::vector<std::string>& extra_env,
                            const std::vector<int>& pass_fds = {});

/// The environment variable a replacing daemon gets: the pid of the daemon
/// it replaces, whose lock it waits for instead of giving up at once.
inline constexpr const char* replaces_env = "CORRAL_DAEMON_REPLACES";
/// And how many descriptors it passed, at 3, 4, ...: the listening sockets
/// and output read ends of the instances it leaves running.
inline constexpr const char* passed_fds_env = "CORRAL_DAEMON_FDS";

}  // namespace corral::daemon
