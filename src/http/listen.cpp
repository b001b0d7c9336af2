// server::listen through corral::net::listener. Kept apart from the server so
// that programs serving sockets they accept themselves (serve()) do not link
// the net layer.
#include "core/closers.hpp"
#include "corral/cluster.hpp"
#include "corral/net.hpp"
#include "http/connection.hpp"

namespace corral::http {

namespace {

class listener_acceptor final : public detail::acceptor {
 public:
  net::listener listener;
  void close(std::function<void()> done) override { listener.close(std::move(done)); }
};

}  // namespace

void server::listen(const net::listen_options& options, net::listener::listening_fn done) {
  auto acc = std::make_unique<listener_acceptor>();
  auto* raw = acc.get();
  detail::server_state* st = s_.get();
  // We drain our own connections on disconnect, at request boundaries.
  raw->listener.close_on_disconnect(false);
  // The listener's sockets carry TCP_NODELAY from their listening socket.
  raw->listener.on_connection([st](unique_fd fd) { (void)st->serve(std::move(fd), true); });
  st->acceptor_ = std::move(acc);
  st->accepting_closed = false;
  // Drained with the process's other servers when a cluster worker
  // disconnects or the shutdown helper (corral/shutdown.hpp) runs.
  if (st->closer_token == 0) {
    st->closer_token = corral::detail::add_closer([this](std::function<void()> closed) { close(std::move(closed)); });
  }
  // HTTP clients speak first: the kernel need not wake us for a handshake
  // (the request is read with the accept, by serve()'s first read).
  net::listen_options opts = options;
  if (!opts.defer_accept) opts.defer_accept = true;
  raw->listener.listen(opts, [st, done = std::move(done)](const error* err, const net::address& bound) {
    if (err) {
      st->accepting_closed = true;
    } else {
      st->bound = bound;
    }
    if (done) done(err, bound);
  });
}

}  // namespace corral::http
