// What a daemon killed with SIGKILL (or by the OOM killer) leaves behind:
// its instances, still running, still holding the app's listening sockets,
// which they inherited. The next daemon takes those sockets over instead of
// binding new ones: the port never closes, connections keep queuing, and the
// old instances are stopped gracefully while the new ones start, so a daemon
// crash costs no request (PM2's cluster mode loses every worker with it).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <vector>

#include "corral/error.hpp"
#include "corral/fd.hpp"
#include "corral/net.hpp"

namespace corral::daemon {

/// A duplicate of the listening socket bound to `want` that process `pid`
/// holds, or an empty fd if it holds none (or is gone). An error when the
/// kernel does not let us take it: pidfd_getfd needs the right to ptrace
/// `pid` (root, or the same user where ptrace is not restricted to
/// descendants; container seccomp profiles often deny it without
/// CAP_SYS_PTRACE), and a kernel older than 5.6 has no pidfd_getfd.
///
/// `inherited`: descriptors the daemon this one replaces passed it (`corral
/// update`), looked at first: one that matches is moved out of it, and no
/// right is needed. `pid` 0: only `inherited` is looked at.
result<unique_fd> take_listening_socket(pid_t pid, const net::address& want, std::vector<unique_fd>* inherited = nullptr);
/// A duplicate of the socket with inode `inode` that process `pid` holds
/// (an instance's copy of its output's read end), empty if none; errors as
/// take_listening_socket.
result<unique_fd> take_socket_by_inode(pid_t pid, uint64_t inode, std::vector<unique_fd>* inherited = nullptr);

}  // namespace corral::daemon
