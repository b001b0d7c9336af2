// The seed's Express app in C++: /hello/:name? and a graceful SIGINT.
//
//   $ ./hello_app                (PORT=0: any free port, printed)
//   Listening on port 3000
//   $ curl localhost:3000/hello/John   -> Hello John!!!
//   $ curl localhost:3000/hello        -> Hello World !!!
//   ^C
//   Closing server...
//   Server closed !!!
//   Cleaning up...
//
// On SIGINT it stops accepting, lets requests in flight finish, runs its
// cleanup hook and exits 0; if that takes more than 5 s it exits 1.
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "corral/http.hpp"
#include "corral/loop.hpp"

namespace http = corral::http;

namespace {

void cleanup() { std::printf("Cleaning up...\n"); }

uv_signal_t sigint;
uv_timer_t force_exit;

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const char* port_env = std::getenv("PORT");
  int port = port_env ? std::atoi(port_env) : 3000;

  static http::router app;
  app.get("/hello/:name?", [](http::request& req, http::response& res) {
    if (req.has_param("name")) {
      res.send("Hello " + std::string(req.param("name")) + "!!!");
    } else {
      res.send("Hello World !!!");
    }
  });
  // A slow route, so that a graceful close with a request in flight can be seen.
  app.get("/slow", [](http::request&, http::response& res) {
    static uv_timer_t t;
    static http::response* pending;
    pending = &res;
    uv_timer_init(corral::default_loop(), &t);
    uv_timer_start(&t, [](uv_timer_t* h) {
      pending->send("slow done");
      uv_close(reinterpret_cast<uv_handle_t*>(h), nullptr);
    }, 1000, 0);
  });

  static http::server server(app);
  server.listen({.port = port}, [](const corral::error* e, const corral::net::address& a) {
    if (e) {
      std::fprintf(stderr, "cannot listen: %s\n", e->message().c_str());
      std::exit(1);
    }
    std::printf("Listening on port %d\n", a.port);
  });

  uv_signal_init(corral::default_loop(), &sigint);
  uv_unref(reinterpret_cast<uv_handle_t*>(&sigint));  // the server, not the handler, keeps us running
  uv_signal_start_oneshot(&sigint, [](uv_signal_t*, int) {
    std::printf("Closing server...\n");
    uv_timer_init(corral::default_loop(), &force_exit);
    uv_timer_start(&force_exit, [](uv_timer_t*) {
      std::fprintf(stderr, "Could not close connections in time, forcefully shutting down\n");
      cleanup();
      std::fflush(nullptr);
      std::_Exit(1);
    }, 5000, 0);
    uv_unref(reinterpret_cast<uv_handle_t*>(&force_exit));
    server.close([] {
      std::printf("Server closed !!!\n");
      cleanup();
      std::fflush(nullptr);
      std::_Exit(0);
    });
  }, SIGINT);
  return corral::run();
}
