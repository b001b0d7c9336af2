// A test HTTP server with routes that exercise every path of corral::http:
// slow and throwing handlers, streaming, echo. It accepts on its own socket
// (127.0.0.1, port 0) and hands each connection to server::serve(), prints
// "listening <port>", and on SIGTERM/SIGINT closes gracefully, printing
// "closing" then "closed".
//
//   http_fixture_server [--headers-timeout ms] [--request-timeout ms]
//                       [--keep-alive ms] [--grace ms] [--max-body bytes]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <memory>
#include <string>

#include "corral/http.hpp"
#include "corral/loop.hpp"

using namespace corral;

namespace {

struct timer_ctx {
  uv_timer_t timer;
  http::response* res;
  std::string body;
};

void later(int ms, http::response& res, std::string body) {
  auto* t = new timer_ctx{{}, &res, std::move(body)};
  uv_timer_init(default_loop(), &t->timer);
  t->timer.data = t;
  uv_timer_start(
      &t->timer,
      [](uv_timer_t* h) {
        auto* t = static_cast<timer_ctx*>(h->data);
        t->res->send(t->body);
        uv_close(reinterpret_cast<uv_handle_t*>(h), [](uv_handle_t* h) { delete static_cast<timer_ctx*>(h->data); });
      },
      static_cast<uint64_t>(ms), 0);
}

// Writes one chunk every `ms` milliseconds, `n` times, then ends the
// response and prints "drip end" (whether or not the client is still there).
struct drip_ctx {
  uv_timer_t timer;
  http::response* res;
  int left;
};

void drip(int n, int ms, http::response& res) {
  res.set("Content-Type", "text/plain");
  auto* d = new drip_ctx{{}, &res, n};
  uv_timer_init(default_loop(), &d->timer);
  d->timer.data = d;
  uv_timer_start(
      &d->timer,
      [](uv_timer_t* h) {
        auto* d = static_cast<drip_ctx*>(h->data);
        if (--d->left > 0) {
          d->res->write(std::string(1024, 'x'));
          return;
        }
        d->res->end("done");
        std::printf("drip end\n");
        uv_close(reinterpret_cast<uv_handle_t*>(h), [](uv_handle_t* h) { delete static_cast<drip_ctx*>(h->data); });
      },
      static_cast<uint64_t>(ms), static_cast<uint64_t>(ms));
}

// `mib` MiB of 'z', streamed chunked with back-pressure: written while
// write() says there is room, then from on_drain. Prints "big end <bytes
// written> aborted <0|1>" when it ends.
struct big_stream : std::enable_shared_from_this<big_stream> {
  http::response* res;
  std::size_t left;
  std::size_t written = 0;
  void pump() {
    static const std::string chunk(16 * 1024, 'z');
    while (left > 0 && !res->aborted()) {
      std::size_t n = std::min(left, chunk.size());
      left -= n;
      written += n;
      if (!res->write(std::string_view(chunk).substr(0, n))) {
        res->on_drain([self = shared_from_this()] { self->pump(); });
        return;
      }
    }
    std::printf("big end %zu aborted %d\n", written, res->aborted() ? 1 : 0);
    res->end();
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  http::server_options opts;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    long v = std::atol(argv[i + 1]);
    if (k == "--headers-timeout") opts.headers_timeout = std::chrono::milliseconds(v);
    if (k == "--request-timeout") opts.request_timeout = std::chrono::milliseconds(v);
    if (k == "--keep-alive") opts.keep_alive_timeout = std::chrono::milliseconds(v);
    if (k == "--grace") opts.close_idle_grace = std::chrono::milliseconds(v);
    if (k == "--max-body") opts.max_body_bytes = static_cast<std::size_t>(v);
  }

  http::router app;
  app.use([](http::request& req, http::response& res, http::next_fn next) {
    if (req.get("X-Block")) {
      res.status(403).send("blocked");
      return;
    }
    res.set("X-Seen", "1");
    next();
  });
  app.get("/", [](auto&, auto& res) { res.send("Hello World"); });
  app.get("/hello/:name?", [](http::request& req, http::response& res) {
    if (req.has_param("name")) {
      res.send("Hello " + std::string(req.param("name")) + "!!!");
    } else {
      res.send("Hello World !!!");
    }
  });
  app.get("/slow", [](http::request& req, http::response& res) {
    later(std::atoi(req.query("ms").value_or("100").c_str()), res, "slow done");
  });
  app.get("/throw", [](auto&, auto&) -> void { throw std::runtime_error("boom"); });
  app.post("/echo", [](http::request& req, http::response& res) { res.send(req.body()); });
  // Body parsers: the JSON body back under "got" (415 if it is not JSON);
  // a form's fields "name" and every "tag"; a handler's own 4xx.
  app.post("/json", [](http::request& req, http::response& res) {
    auto body = req.json();
    if (!body) return res.status(415).send("send JSON");
    res.json({{"got", *body}});
  });
  app.post("/form", [](http::request& req, http::response& res) {
    std::string out = req.form("name").value_or("(none)");
    for (auto& t : req.form_all("tag")) out += "," + t;
    res.send(out);
  });
  app.get("/teapot", [](auto&, auto&) -> void { throw http::status_error(418, "short and stout"); });
  // compression() for what is under /gz: 100 numbered lines of text.
  app.use("/gz", http::compression());
  app.get("/gz/page", [](http::request&, http::response& res) {
    std::string text;
    for (int i = 0; i < 100; ++i) text += "line " + std::to_string(i) + " of a page worth compressing\n";
    res.set("Content-Type", "text/plain; charset=utf-8").send(text);
  });
  // Every header as "name: value" lines, then the body.
  app.post("/headers", [](http::request& req, http::response& res) {
    std::string out;
    for (auto& h : req.headers()) out += std::string(h.name) + ": " + std::string(h.value) + "\n";
    res.send(out + std::string(req.body()));
  });
  app.get("/stream", [](auto&, http::response& res) {
    res.set("Content-Type", "text/plain");
    res.write("a");
    res.write("bb");
    res.end("ccc");
  });
  app.get("/drip", [](http::request& req, http::response& res) {
    drip(std::atoi(req.query("n").value_or("10").c_str()), std::atoi(req.query("ms").value_or("10").c_str()), res);
  });
  app.get("/json", [](auto&, http::response& res) { res.json({{"ok", true}}); });
  // A visit counter in a cookie, and who the server thinks is asking.
  app.get("/visits", [](http::request& req, http::response& res) {
    int n = std::atoi(req.cookie("visits").value_or("0").c_str()) + 1;
    http::cookie_options o;
    o.http_only = true;
    o.max_age = std::chrono::seconds(60);
    res.cookie("visits", std::to_string(n), o).cookie("note", "a b;c");
    res.send(std::to_string(n) + " from " + req.ip());
  });
  app.get("/go", [](auto&, http::response& res) { res.redirect("/hello/there"); });
  app.get("/big", [](http::request& req, http::response& res) {
    auto s = std::make_shared<big_stream>();
    s->res = &res;
    s->left = static_cast<std::size_t>(std::atoi(req.query("mib").value_or("16").c_str())) << 20;
    s->pump();
  });
  app.get("/seq/:n", [](http::request& req, http::response& res) {
    // Odd requests answer late: pipelined responses must still come in order.
    int n = std::atoi(std::string(req.param("n")).c_str());
    if (n % 2) {
      later(20, res, "seq " + std::to_string(n));
    } else {
      res.send("seq " + std::to_string(n));
    }
  });

  http::server srv(app, opts);

  int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(lfd, 511) != 0) {
    std::perror("bind/listen");
    return 2;
  }
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&sa), &len);

  struct acceptor {
    uv_poll_t poll;
    int fd;
    http::server* srv;
  } acc{{}, lfd, &srv};
  uv_poll_init(default_loop(), &acc.poll, lfd);
  acc.poll.data = &acc;
  uv_poll_start(&acc.poll, UV_READABLE, [](uv_poll_t* p, int, int) {
    auto* a = static_cast<acceptor*>(p->data);
    for (;;) {
      int fd = ::accept4(a->fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      (void)a->srv->serve(unique_fd(fd));
    }
  });

  uv_signal_t sig[2];
  int signals[2] = {SIGTERM, SIGINT};
  struct closer {
    acceptor* acc;
    http::server* srv;
    uv_signal_t* sig;
  } cl{&acc, &srv, sig};
  for (int i = 0; i < 2; ++i) {
    uv_signal_init(default_loop(), &sig[i]);
    sig[i].data = &cl;
    uv_signal_start(&sig[i], [](uv_signal_t* s, int) {
      auto* c = static_cast<closer*>(s->data);
      std::printf("closing\n");
      uv_close(reinterpret_cast<uv_handle_t*>(&c->acc->poll), nullptr);
      ::close(c->acc->fd);  // new connections are refused from here on
      for (int j = 0; j < 2; ++j) uv_close(reinterpret_cast<uv_handle_t*>(&c->sig[j]), nullptr);
      c->srv->close([] { std::printf("closed\n"); });
    }, signals[i]);
  }

  // SIGUSR1: drop every connection now (the server keeps listening).
  uv_signal_t usr1;
  uv_signal_init(default_loop(), &usr1);
  usr1.data = &srv;
  uv_signal_start(&usr1, [](uv_signal_t* s, int) {
    static_cast<http::server*>(s->data)->close_all_connections();
    std::printf("dropped\n");
  }, SIGUSR1);
  uv_unref(reinterpret_cast<uv_handle_t*>(&usr1));

  std::printf("listening %d\n", ntohs(sa.sin_port));
  int rc = run();
  std::printf("exit\n");
  return rc;
}
