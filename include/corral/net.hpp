// corral/net.hpp — listeners that work the same alone, in a cluster, under
// systemd or under the manager.
//
//   corral::net::listener l;
//   l.on_connection([](corral::unique_fd fd) { /* a connected socket */ });
//   l.listen({.port = 3000}, [&](const corral::error* e, const corral::net::address& a) { ... });
//
// How listen() gets its socket:
//   - started with LISTEN_FDS (systemd's socket activation; LISTEN_PID must be
//     our pid): it takes the inherited socket that matches the address (or the
//     only one, for port 0 / an unnamed request);
//   - as a cluster worker: it asks the primary over the channel; the primary
//     owns one socket per key (family, address, port or path) and serves it by
//     the scheduling policy;
//   - otherwise: it binds its own.
// Callbacks run on corral::default_loop().
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "corral/error.hpp"
#include "corral/fd.hpp"

namespace corral::net {

/// How a cluster shares a listening socket (docs/net.md).
enum class sched_policy {
  round_robin,  ///< the primary accepts and hands connections to workers (default)
  shared,       ///< the primary sends the listening socket; workers accept from it
  reuseport,    ///< each worker binds its own socket with SO_REUSEPORT
};

/// Parses "round_robin" / "rr", "shared" / "none", "reuseport".
std::optional<sched_policy> parse_policy(std::string_view s);
const char* to_string(sched_policy p);
/// The policy from CORRAL_SCHED_POLICY, or round_robin.
sched_policy default_policy();

/// Where to listen: TCP host:port, or a Unix socket path.
struct address {
  std::string host = "0.0.0.0";
  int port = 0;
  std::string path;  ///< non-empty: a Unix stream socket at this path
  bool is_unix() const noexcept { return !path.empty(); }
  /// "127.0.0.1:3000", "[::1]:3000" or "unix:/run/app.sock".
  std::string to_string() const;
};

struct listen_options {
  std::string host = "0.0.0.0";
  int port = 0;       ///< 0: an ephemeral port (the same for every worker of a cluster)
  std::string path;   ///< a Unix socket path instead of host:port
  int backlog = 511;
  /// In a cluster: how the socket is shared. Unset: CORRAL_SCHED_POLICY or round_robin.
  std::optional<sched_policy> policy;
  /// TCP: the kernel hands over a connection only once the client has sent
  /// something (Linux's TCP_DEFER_ACCEPT, nginx's `listen ... deferred`), so
  /// the first read finds the request: no wakeup for the bare handshake. For
  /// protocols where the client speaks first; a client that connects and
  /// stays silent is handed over after about a second anyway. Set on the
  /// socket whoever opened it (this process, the primary, systemd or the
  /// manager). Unset: off for a bare listener; corral::http::server turns it on.
  std::optional<bool> defer_accept;
};

/// A listening endpoint. Not copyable or movable; hold by unique_ptr if needed.
class listener {
 public:
  using connection_fn = std::function<void(unique_fd fd)>;
  using listening_fn = std::function<void(const error* err, const address& bound)>;

  listener();
  ~listener();  ///< closes at once (as close() without waiting)
  listener(const listener&) = delete;
  listener& operator=(const listener&) = delete;

  /// Each accepted connection, as a connected, non-blocking, close-on-exec
  /// socket; a TCP one has TCP_NODELAY set (inherited from the listening socket).
  void on_connection(connection_fn fn);
  /// Starts listening. `done` runs once, on the loop: with err == nullptr and
  /// the bound address (the real port, for port 0), or with an error naming
  /// the address (port in use, permission denied, bad address...).
  void listen(const listen_options& opts, listening_fn done);
  /// Stops accepting; `done` runs once the socket is closed (and, in a
  /// cluster, the primary knows). Connections already handed over are the
  /// caller's and stay open. Connections already accepted are still
  /// delivered through on_connection after close() returns (when it is
  /// called from on_connection, the rest of that wakeup's batch); in a
  /// round-robin worker, so are connections the primary passed before it
  /// learnt of the close, until `done` runs. Serve them, so that none is
  /// lost; only destroying the listener drops them. Called while a cluster
  /// worker's listen waits for the primary's answer, it applies to that
  /// listen only: once listen's callback has run, the listener closes (on
  /// success) or `done` runs at once (on an error).
  void close(std::function<void()> done = {});
  bool is_listening() const noexcept;
  const address& local_address() const noexcept;

  /// A listener closes itself when its cluster worker disconnects or the
  /// shutdown helper (corral/shutdown.hpp) runs. A server that drains its own
  /// connections (corral::http) turns this off and registers its own
  /// graceful close.
  void close_on_disconnect(bool yes) noexcept;

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

/// A convenience stream on an accepted (or connected) socket: buffered writes,
/// read callbacks. corral::http manages its own sockets instead.
class connection {
 public:
  using data_fn = std::function<void(std::string_view data)>;
  using end_fn = std::function<void(const error* err)>;  ///< nullptr: clean EOF

  /// Takes ownership of a connected stream socket (TCP or Unix).
  static result<std::unique_ptr<connection>> open(unique_fd fd);
  ~connection();  ///< closes at once
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  /// Starts delivering data; `data` views are valid during the call only.
  void read_start(data_fn data, end_fn end);
  void read_stop();
  /// Queues bytes (copied). `done` runs when written (or failed).
  void write(std::string_view bytes, std::function<void(const error*)> done = {});
  /// Half-closes after the queued writes (FIN).
  void shutdown();
  /// Closes; `done` runs when the socket is closed.
  void close(std::function<void()> done = {});
  /// The peer, "127.0.0.1:53012" or "unix".
  std::string peer() const;

  struct impl;

 private:
  explicit connection(std::unique_ptr<impl> im);
  std::unique_ptr<impl> impl_;
};

}  // namespace corral::net
