#include "serve.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "corral/http.hpp"
#include "corral/loop.hpp"
#include "corral/shutdown.hpp"

namespace corral::cli {

int serve_main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::string dir;
  int port = 8080;
  http::static_options options;
  for (int k = 2; k < argc; ++k) {
    std::string_view a(argv[k]);
    if (a == "--spa") {
      options.fallback = "index.html";
    } else if (a == "--precompressed") {
      options.precompressed = true;
    } else if (a == "--port" && k + 1 < argc) {
      char* end = nullptr;
      long v = std::strtol(argv[++k], &end, 10);
      if (*end || v < 0 || v > 65535) {
        std::fprintf(stderr, "corral serve: --port: expected 0..65535, got '%s'\n", argv[k]);
        return 2;
      }
      port = static_cast<int>(v);
    } else if (dir.empty() && !a.starts_with("--")) {
      dir = a;
    } else {
      std::fprintf(stderr, "corral serve: unexpected argument '%s'\n", argv[k]);
      return 2;
    }
  }
  if (dir.empty()) dir = ".";
  if (::access(dir.c_str(), R_OK | X_OK) != 0) {
    std::fprintf(stderr, "corral serve: %s: %s\n", dir.c_str(), std::strerror(errno));
    return 1;
  }
  options.fallthrough = false;  // (nothing after it: its own 404 and 405)
  static http::router app;
  app.use(http::serve_static(dir, options));
  static http::server server(app);
  server.listen({.port = port}, [dir](const corral::error* e, const net::address& a) {
    if (e) {
      std::fprintf(stderr, "corral serve: cannot listen: %s\n", e->message().c_str());
      std::exit(1);
    }
    std::printf("Serving %s on port %d\n", dir.c_str(), a.port);
  });
  // SIGINT/SIGTERM (the manager's stop): finish what is in flight, then exit.
  shutdown::enable();
  return corral::run();
}

}  // namespace corral::cli
