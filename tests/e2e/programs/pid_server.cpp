// Test program: a cluster whose workers answer every connection with
// "<pid>\n" and close. Configured by the environment:
//   WORKERS (default 2), PORT (default 0), LISTEN_PATH (a Unix socket instead),
//   CORRAL_SCHED_POLICY (the library's own variable).
// The primary prints "listening <worker pid> <address>" for every worker that
// listens, "exit <worker pid>" for every worker that exits, and forks one more
// worker on SIGUSR1.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/handle.hpp"
#include "corral/cluster.hpp"
#include "corral/net.hpp"

namespace cluster = corral::cluster;
namespace net = corral::net;

static int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  if (cluster::is_primary()) {
    cluster::on_listening([](corral::worker& w, const net::address& a) {
      std::printf("listening %d %s\n", w.pid(), a.to_string().c_str());
    });
    cluster::on_exit([](corral::worker& w, int code, int sig) { std::printf("exit %d code %d signal %d\n", w.pid(), code, sig); });
    static uv_signal_t usr1;
    uv_signal_init(uv_default_loop(), &usr1);
    uv_signal_start(&usr1, [](uv_signal_t*, int) { cluster::fork(); }, SIGUSR1);
    // The SIGUSR1 watcher keeps this primary alive even with no worker left.
    for (int i = 0, n = env_int("WORKERS", 2); i < n; ++i) cluster::fork();
    return corral::run();
  }
  static net::listener l;
  l.on_connection([](corral::unique_fd fd) {
    std::string line = std::to_string(::getpid()) + "\n";
    // A fresh socket's send buffer always takes a few bytes.
    [[maybe_unused]] auto n = ::write(fd.get(), line.data(), line.size());
  });
  net::listen_options o;
  o.port = env_int("PORT", 0);
  if (const char* p = std::getenv("LISTEN_PATH")) o.path = p;
  o.host = "127.0.0.1";
  l.listen(o, [](const corral::error* e, const net::address&) {
    if (e) {
      std::fprintf(stderr, "listen failed: %s\n", e->message().c_str());
      std::exit(3);
    }
  });
  return corral::run();
}
