// The CLI's side of the control socket: blocking, one request at a time, and
// starting the daemon when none answers.
#pragma once

#include <string>

#include "corral/error.hpp"
#include "corral/fd.hpp"
#include "daemon/home.hpp"
#include "daemon/protocol.hpp"

namespace corral::cli {

using json = daemon::json;

class client {
 public:
  /// Connects to a running daemon; ECONNREFUSED/ENOENT if none.
  static result<client> connect(const daemon::home_paths& home);
  /// Connects, starting a daemon (`<self> daemon`, detached) if none answers.
  /// `started`: the pid of the daemon this call started, 0 if none (the one
  /// that answers may be another: one started at the same time won).
  static result<client> connect_or_start(const daemon::home_paths& home, pid_t& started);

  /// Sends one request and waits for its response. A failed response is an
  /// error carrying the daemon's one-line message.
  result<json> call(const std::string& cmd, json args = json::object());
  /// For streams (monit): sends a request without waiting; returns its id.
  result<uint64_t> send(const std::string& cmd, json args = json::object());
  /// The next document from the daemon (a response or a stream event), or
  /// null if none arrived within `timeout_ms` (-1: wait). EINTR returns null
  /// too, so that a signal can stop the caller.
  result<json> next(int timeout_ms);
  int fd() const noexcept { return fd_.get(); }
  /// The last call failed because the daemon went away without reading the
  /// request (the socket was reset with it unread): it had no effect, and
  /// may be sent again to another daemon.
  bool unheard() const noexcept { return unheard_; }

 private:
  explicit client(unique_fd fd) : fd_(std::move(fd)) {}
  unique_fd fd_;
  uint64_t next_id_ = 1;
  std::string in_;
  bool unheard_ = false;
};

}  // namespace corral::cli
