// The control socket: a Unix stream socket at $CORRAL_HOME/corral.sock.
// Each accepted peer's uid is checked with SO_PEERCRED; another user is told
// why in one line and disconnected. Accepted peers speak line-JSON through
// corral::channel.
#pragma once

#include <uv.h>

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "core/handle.hpp"
#include "corral/channel.hpp"
#include "corral/error.hpp"
#include "corral/fd.hpp"

namespace corral::daemon {

class control_server {
 public:
  using request_fn = std::function<void(uint64_t conn, json&& msg)>;

  /// Binds `path` (removing a stale socket: the caller holds the home's
  /// lock, so no live daemon owns it), mode 0600, and starts accepting.
  static result<std::unique_ptr<control_server>> listen(uv_loop_t* loop, const std::string& path, request_fn fn);
  ~control_server();

  /// Sends one document to connection `conn`, if it is still there. False
  /// when the connection is gone or its peer is not reading (more than the
  /// channel's high-water mark, 1 MiB, waits to be written). A peer with
  /// more than max_unread_bytes waiting is dropped (on_disconnect runs).
  bool send(uint64_t conn, const json& doc);
  static constexpr std::size_t max_unread_bytes = std::size_t{16} << 20;
  /// Closes `conn` at once, dropping what it has queued (a stream's client
  /// that stopped reading). on_disconnect runs.
  void drop(uint64_t conn);
  /// Called once per connection when it is gone (peer hung up, dropped, or
  /// shutdown), so that streams on it stop.
  void on_disconnect(std::function<void(uint64_t conn)> fn) { on_disconnect_ = std::move(fn); }
  /// Stops accepting and closes every connection gracefully (queued replies
  /// go out first); `done` runs when all are closed.
  void shutdown(std::function<void()> done);
  std::size_t rejected() const noexcept { return rejected_; }

 private:
  control_server(uv_loop_t* loop, std::string path, unique_fd fd, request_fn fn);
  void watch_listener();
  void on_acceptable();
  void pause_accepting(int err);
  void accept_one(int fd);
  void on_protocol_error(uint64_t conn, int fd, const error& e);
  void maybe_done();

  uv_loop_t* loop_;
  std::string path_;
  unique_fd fd_;
  request_fn on_request_;
  detail::uv_handle_ptr<uv_poll_t> poll_;
  // Out of fds (EMFILE...): the listener is not watched until this fires.
  static constexpr int accept_retry_ms = 100;
  detail::uv_handle_ptr<uv_timer_t> accept_timer_;
  bool accept_paused_said_ = false;
  std::map<uint64_t, std::unique_ptr<channel>> conns_;
  uint64_t next_conn_ = 1;
  std::size_t rejected_ = 0;
  bool shutting_down_ = false;
  std::function<void()> on_done_;
  std::function<void(uint64_t)> on_disconnect_;
};

}  // namespace corral::daemon
