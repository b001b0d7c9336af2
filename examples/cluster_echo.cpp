// A TCP echo server, one worker per CPU, all sharing one port.
//
//   $ ./cluster_echo 7000        (port 0: any free port; a 2nd argument sets the worker count)
//   Master 5120 is running
//   Worker 5121 listening on 0.0.0.0:7000
//
// Under systemd or the corral manager (LISTEN_FDS), it serves on the socket it
// inherits instead of binding its own.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>

#include "corral/cluster.hpp"
#include "corral/net.hpp"

namespace cluster = corral::cluster;
namespace net = corral::net;

static void serve(int port) {
  static net::listener listener;  // lives as long as the worker
  static std::map<net::connection*, std::unique_ptr<net::connection>> open;
  listener.on_connection([](corral::unique_fd fd) {
    auto c = net::connection::open(std::move(fd));
    if (!c) return;
    net::connection* conn = c->get();
    open.emplace(conn, std::move(c.value()));
    conn->read_start([conn](std::string_view data) { conn->write(data); },
                     [conn](const corral::error*) { conn->close([conn] { open.erase(conn); }); });
  });
  listener.listen({.port = port}, [](const corral::error* e, const net::address& a) {
    if (e) {
      std::fprintf(stderr, "Worker %d cannot listen: %s\n", ::getpid(), e->message().c_str());
      std::exit(1);
    }
    if (!cluster::is_worker()) std::printf("Listening on %s\n", a.to_string().c_str());
  });
}

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  int port = argc > 1 ? std::atoi(argv[1]) : 7000;
  if (cluster::is_primary()) {
    int workers = argc > 2 ? std::atoi(argv[2]) : static_cast<int>(uv_available_parallelism());
    std::printf("Master %d is running\n", ::getpid());
    cluster::on_listening([](corral::worker& w, const net::address& a) {
      std::printf("Worker %d listening on %s\n", w.pid(), a.to_string().c_str());
    });
    for (int i = 0; i < workers; ++i) cluster::fork();
  } else {
    serve(port);
  }
  return corral::run();
}
