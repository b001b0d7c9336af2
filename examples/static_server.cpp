// Static files, clustered (Express's `app.use(express.static("public"))`,
// or `pm2 serve`): every worker serves directory ROOT on one shared port.
//
//   $ ./static_server ./public        (PORT=8080 ./static_server ./public 2: port and worker count)
//   Worker 8464 serving ./public on port 3000
//   $ curl localhost:3000/            -> ./public/index.html
//   $ curl -r 0-99 localhost:3000/big.bin   -> 206, its first 100 bytes
//   $ gzip -k public/app.js; curl --compressed localhost:3000/app.js
//                                     -> app.js.gz, Content-Encoding: gzip
//   $ curl --compressed localhost:3000/page.html
//                                     -> gzipped now (a text file under 64 KiB
//                                        with no .gz copy; nginx's gzip on)
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
  std::string root = argc > 1 ? argv[1] : ".";
  if (cluster::is_primary()) {
    int workers = argc > 2 ? std::atoi(argv[2]) : static_cast<int>(uv_available_parallelism());
    for (int i = 0; i < workers; ++i) cluster::fork();
    return corral::run();
  }

  static http::router app;
  http::static_options options;
  options.precompressed = true;  // (a file's .br or .gz copy, if there is one)
  app.use(http::compression());  // text up to 64 KiB with no copy: gzipped as it goes out
  app.use(http::serve_static(root, options));
  static http::server server(app);
  server.listen({.port = port}, [root](const corral::error* e, const corral::net::address& a) {
    if (e) {
      std::fprintf(stderr, "Worker %d cannot listen: %s\n", ::getpid(), e->message().c_str());
      std::exit(1);
    }
    std::printf("Worker %d serving %s on port %d\n", ::getpid(), root.c_str(), a.port);
  });
  return corral::run();
}
