// bench/accept server: a 2-worker (or $WORKERS) cluster; each connection
// sends one line, gets "<line> <pid>\n" back, and closes. The policy comes
// from CORRAL_SCHED_POLICY, the port from the first argument.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>

#include "corral/cluster.hpp"
#include "corral/net.hpp"

namespace net = corral::net;

int main(int argc, char** argv) {
  int port = argc > 1 ? std::atoi(argv[1]) : 8000;
  if (corral::cluster::is_primary()) {
    const char* w = std::getenv("WORKERS");
    for (int i = 0, n = w ? std::atoi(w) : 2; i < n; ++i) corral::cluster::fork();
    return corral::run();
  }
  static const std::string suffix = " " + std::to_string(::getpid()) + "\n";
  static net::listener l;
  static std::map<net::connection*, std::unique_ptr<net::connection>> open;
  l.on_connection([](corral::unique_fd fd) {
    auto c = net::connection::open(std::move(fd));
    if (!c) return;
    net::connection* conn = c->get();
    open.emplace(conn, std::move(c.value()));
    auto line = std::make_shared<std::string>();  // shared by this connection's two callbacks
    conn->read_start(
        [conn, line](std::string_view data) {
          line->append(data);
          if (line->empty() || line->back() != '\n') return;
          line->pop_back();
          conn->write(*line + suffix);
          conn->shutdown();
        },
        [conn](const corral::error*) { conn->close([conn] { open.erase(conn); }); });
  });
  l.listen({.host = "127.0.0.1", .port = port}, [](const corral::error* e, const net::address&) {
    if (e) {
      std::fprintf(stderr, "%s\n", e->message().c_str());
      std::exit(1);
    }
  });
  return corral::run();
}
