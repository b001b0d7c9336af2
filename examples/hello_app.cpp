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
// On SIGINT (or SIGTERM, or the manager's 'shutdown' message) the built-in
// shutdown helper stops accepting, lets requests in flight finish, runs the
// cleanup hook and exits 0; if that takes more than 5 s it exits 1.
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "corral/http.hpp"
#include "corral/loop.hpp"
#include "corral/shutdown.hpp"

namespace http = corral::http;

namespace {

void cleanup() { std::printf("Cleaning up...\n"); }

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

  // The seed's process.on('SIGINT', ...) handler, built in.
  corral::shutdown::on_cleanup(cleanup);
  corral::shutdown::enable({.timeout = std::chrono::seconds(5),
                            .closing_message = "Closing server...",
                            .closed_message = "Server closed !!!",
                            .forced_message = "Could not close connections in time, forcefully shutting down"});
  return corral::run();
}
