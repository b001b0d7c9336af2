// Test program: a cluster whose HTTP workers use the shutdown helper
// (corral/shutdown.hpp) beside the primary's own signal handling.
// Configured by the environment:
//   WORKERS (default 2), PORT (default 0),
//   SLOW_MS (default 1000)  GET /slow answers "slow done" after this long and
//                           prints "slow <pid>" when it starts,
//   SHUTDOWN_TIMEOUT_MS     the helper's timeout (default 10000),
//   SHUTDOWN_AT_ONCE=1      a worker begins its shutdown right after asking
//                           the primary for its socket, before the answer.
// The primary prints "listening <worker pid> <address>" and "exit <worker
// pid> code <c> signal <s>"; a worker prints "listen failed: <why>" (and, but
// for SHUTDOWN_AT_ONCE, exits 3), then "closing <pid>", "closed <pid>" or
// "forced <pid>" as its shutdown goes.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "corral/cluster.hpp"
#include "corral/http.hpp"
#include "corral/loop.hpp"
#include "corral/shutdown.hpp"

namespace cluster = corral::cluster;
namespace http = corral::http;

namespace {

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

void primary() {
  cluster::on_listening([](corral::worker& w, const corral::net::address& a) {
    std::printf("listening %d %s\n", w.pid(), a.to_string().c_str());
  });
  cluster::on_exit([](corral::worker& w, int code, int sig) {
    std::printf("exit %d code %d signal %d\n", w.pid(), code, sig);
  });
  for (int i = 0, n = env_int("WORKERS", 2); i < n; ++i) cluster::fork();
}

struct slow_reply {
  uv_timer_t timer;
  http::response* res;
};

void worker() {
  static http::router app;
  app.get("/slow", [](http::request&, http::response& res) {
    std::printf("slow %d\n", ::getpid());
    auto* s = new slow_reply{{}, &res};
    uv_timer_init(corral::default_loop(), &s->timer);
    s->timer.data = s;
    uv_timer_start(&s->timer, [](uv_timer_t* t) {
      auto* s = static_cast<slow_reply*>(t->data);
      s->res->send("slow done");
      uv_close(reinterpret_cast<uv_handle_t*>(t), [](uv_handle_t* h) { delete static_cast<slow_reply*>(h->data); });
    }, static_cast<uint64_t>(env_int("SLOW_MS", 1000)), 0);
  });
  static http::server server(app);
  static bool at_once = env_int("SHUTDOWN_AT_ONCE", 0) == 1;
  server.listen({.host = "127.0.0.1", .port = env_int("PORT", 0)}, [](const corral::error* e, const corral::net::address&) {
    if (!e) return;
    std::printf("listen failed: %s\n", e->message().c_str());
    if (!at_once) std::exit(3);
  });
  static const std::string pid = std::to_string(::getpid());
  static const std::string closing = "closing " + pid, closed = "closed " + pid, forced = "forced " + pid;
  corral::shutdown::enable({.timeout = std::chrono::milliseconds(env_int("SHUTDOWN_TIMEOUT_MS", 10000)),
                            .closing_message = closing.c_str(),
                            .closed_message = closed.c_str(),
                            .forced_message = forced.c_str()});
  if (at_once) corral::shutdown::begin();
}

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  if (cluster::is_primary()) {
    primary();
  } else {
    worker();
  }
  return corral::run();
}
