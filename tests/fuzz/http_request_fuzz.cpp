// libFuzzer target for corral::http's request path: each input is sent as
// the whole byte stream of one connection (then EOF) to a real server over a
// socketpair, and the loop runs until the server has closed the connection.
// Everything the server does with hostile bytes is exercised: llhttp, our
// header/value checks, limits, pipelining, the router, response framing.
//
//   cmake -B build-fuzz -DCORRAL_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang
//   build-fuzz/tests/fuzz/http_request_fuzz -max_total_time=30 tests/fuzz/corpus/http_request
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "corral/http.hpp"
#include "corral/loop.hpp"

namespace http = corral::http;

namespace {

http::server& server() {
  static http::router* app = [] {
    auto* r = new http::router;
    r->use([](http::request& req, http::response& res, http::next_fn next) {
      if (req.get("x-stop")) {
        res.status(418).end();
        return;
      }
      // The header parsers a handler reaches for: cookies, forwarded addresses.
      res.set("X-Client", req.ip() + " " + std::string(req.protocol()) + "://" + std::string(req.hostname()));
      if (auto c = req.cookie("a")) res.cookie("a", *c).cookie(*c, "x");
      next();
    });
    r->get("/hello/:name?", [](http::request& req, http::response& res) {
      res.send("Hello " + std::string(req.param("name")) + std::string(req.query("q").value_or("")));
    });
    r->post("/echo", [](http::request& req, http::response& res) { res.send(req.body()); });
    r->post("/json", [](http::request& req, http::response& res) {
      auto body = req.json();
      res.send(body ? body->dump() : (req.form("a").value_or("") + std::to_string(req.is("text/*"))));
    });
    r->get("/files/*", [](http::request& req, http::response& res) {
      res.write(req.param("*"));
      res.end();
    });
    r->get("/go", [](http::request& req, http::response& res) { res.redirect(req.query("to").value_or("/")); });
    // compression(): Accept-Encoding weights, HEAD lengths, the body as the query says.
    r->use("/gz", http::compression({.threshold = 16, .level = 1}));
    r->all("/gz", [](http::request& req, http::response& res) {
      res.set("Content-Type", req.query("type").value_or("text/plain")).send(std::string(req.url()) + std::string(req.body()));
    });
    r->all("/throw", [](http::request&, http::response&) { throw std::runtime_error("fuzz"); });
    return r;
  }();
  static http::server* s = [] {
    http::server_options o;
    o.max_body_bytes = 4096;
    o.max_header_bytes = 2048;
    o.trust_proxy_hops = 2;
    return new http::server(*app, o);
  }();
  return *s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) return 0;
  int buf = 1 << 20;
  ::setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  ::setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  std::size_t off = 0;
  // Inputs of odd length are on the socket before serve() (the first read,
  // on the bare socket, sees them: they may be answered and closed inside
  // serve()); even ones come after, through the loop.
  if (size % 2 == 1) {
    ssize_t n = ::send(sv[1], data, size, MSG_NOSIGNAL);
    if (n > 0) off = static_cast<std::size_t>(n);
    if (off == size) ::shutdown(sv[1], SHUT_WR);
  }
  if (!server().serve(corral::unique_fd(sv[0]))) {
    ::close(sv[1]);
    return 0;
  }
  char sink[65536];
  // Feed, drain the answers, and turn the loop until the server lets go.
  for (int spins = 0; spins < 10000 && server().connection_count() > 0; ++spins) {
    if (off < size) {
      ssize_t n = ::send(sv[1], data + off, size - off, MSG_NOSIGNAL);
      if (n > 0) off += static_cast<std::size_t>(n);
      if (off == size) ::shutdown(sv[1], SHUT_WR);
    } else if (size == 0 && spins == 0) {
      ::shutdown(sv[1], SHUT_WR);
    }
    while (::recv(sv[1], sink, sizeof sink, MSG_DONTWAIT) > 0) {
    }
    uv_run(corral::default_loop(), UV_RUN_NOWAIT);
  }
  if (server().connection_count() > 0) server().close_all_connections();
  uv_run(corral::default_loop(), UV_RUN_NOWAIT);  // let the close callbacks free it
  ::close(sv[1]);
  return 0;
}
