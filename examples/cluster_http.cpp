// The seed's clustered HTTP server: one worker per CPU, all serving port 3000.
//
//   $ ./cluster_http            (PORT=8080 ./cluster_http 2: port and worker count)
//   Master 8463 is running
//   Forking process number 0...
//   Worker 8464 started...
//   $ curl localhost:3000       -> Hello World from 8464   (another pid next time)
//
// With PORT=0 every worker shares one ephemeral port, printed as
// "Listening on port <n>".
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "corral/cluster.hpp"
#include "corral/http.hpp"

namespace cluster = corral::cluster;
namespace http = corral::http;

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const char* port_env = std::getenv("PORT");
  int port = port_env ? std::atoi(port_env) : 3000;
  if (cluster::is_primary()) {
    int workers = argc > 1 ? std::atoi(argv[1]) : static_cast<int>(uv_available_parallelism());
    std::printf("Master %d is running\n", ::getpid());
    // SIGHUP (or corral's reload) replaces every worker with zero downtime.
    cluster::on_rolling_restart([](const corral::error* e, std::chrono::milliseconds took) {
      if (e) {
        std::fprintf(stderr, "Rolling restart failed: %s\n", e->message().c_str());
      } else {
        std::printf("Restarted all workers in %lld ms\n", static_cast<long long>(took.count()));
      }
    });
    for (int i = 0; i < workers; ++i) {
      std::printf("Forking process number %d...\n", i);
      cluster::fork();
    }
    return corral::run();
  }

  // The body never changes: render it once.
  static const std::string hello = "Hello World from " + std::to_string(::getpid());
  static http::server server([](http::request&, http::response& res) { res.send(hello); });
  server.listen({.port = port}, [](const corral::error* e, const corral::net::address& a) {
    if (e) {
      std::fprintf(stderr, "Worker %d cannot listen: %s\n", ::getpid(), e->message().c_str());
      std::exit(1);
    }
    std::printf("Worker %d started...\n", ::getpid());
    std::printf("Listening on port %d\n", a.port);
  });
  return corral::run();
}
