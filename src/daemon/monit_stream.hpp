// The `monit` stream (docs/manager-protocol.md): after the response, the
// daemon pushes the instance rows on the same connection every interval
// until the client goes away.
//
// A stream costs nothing once its client is gone: its timer stops when the
// connection closes. A client that stops reading is dropped when its queue
// passes the channel's high-water mark, so the daemon's memory stays bounded
// and the loop never waits for it.
#pragma once

#include <uv.h>

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "core/handle.hpp"
#include "daemon/protocol.hpp"

namespace corral::daemon {

class monit_streams {
 public:
  using send_fn = std::function<bool(uint64_t conn, const json& doc)>;
  using drop_fn = std::function<void(uint64_t conn)>;
  /// Produces the rows of `target` (a `list` request); replies exactly once.
  using list_fn = std::function<void(const std::string& target, std::function<void(response&&)> reply)>;

  static constexpr uint64_t default_interval_ms = 1000;
  static constexpr uint64_t min_interval_ms = 100;
  static constexpr uint64_t max_interval_ms = 60000;

  monit_streams(uv_loop_t* loop, send_fn send, drop_fn drop, list_fn list);

  /// Starts (or replaces) the stream of connection `conn` for request `req`
  /// (`{target?, interval_ms?}`); answers the request first.
  void subscribe(uint64_t conn, const request& req);
  /// The connection is gone: forget its stream.
  void on_disconnect(uint64_t conn);
  std::size_t active() const noexcept { return streams_.size(); }

 private:
  struct stream {
    monit_streams* owner;
    uint64_t conn;
    uint64_t req_id;
    uint64_t serial;  // tells a replaced stream from its successor
    std::string target;
    bool in_flight = false;  // a tick waits for its rows: skip the next
    detail::uv_handle_ptr<uv_timer_t> timer;
  };
  void tick(uint64_t conn);

  uv_loop_t* loop_;
  send_fn send_;
  drop_fn drop_;
  list_fn list_;
  std::map<uint64_t, std::unique_ptr<stream>> streams_;  // by connection
  uint64_t next_serial_ = 1;
};

}  // namespace corral::daemon
