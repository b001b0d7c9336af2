// The daemon's side of systemd's readiness protocol (sd_notify(3)), for a
// `Type=notify` unit (corral startup): one datagram to $NOTIFY_SOCKET.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <string>
#include <string_view>

namespace corral::daemon {

/// A NOTIFY_SOCKET value (a path, or "@name" for the abstract namespace) as
/// a socket address, and its length; false if it cannot be one (empty, too
/// long, or neither form). Shared by the sender and the daemon's own sockets.
bool notify_address(std::string_view name, sockaddr_un& addr, socklen_t& len);

/// Sends `state` (e.g. "READY=1") to the socket named by $NOTIFY_SOCKET, if
/// set (a path, or "@name" for the abstract namespace). Best effort: returns
/// false if unset or the send failed; never blocks.
bool notify_service_manager(std::string_view state);
/// sd_notify_barrier(): returns once the service manager has processed
/// every message sent before (it closes the pipe end sent with BARRIER=1),
/// or after `timeout_ms`. False if it could not be sent or timed out.
bool notify_barrier(int timeout_ms = 5000);

}  // namespace corral::daemon
