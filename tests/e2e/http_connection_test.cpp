// corral::http connections at their edges, on real loopback TCP connections
// served in this process: slow and stalled readers (the keep-alive clock
// and the send timeout), clients that half-close after their requests, and
// a close callback that destroys its server.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <optional>
#include <string>

#include "corral/http.hpp"
#include "corral/loop.hpp"
#include "http_inprocess.hpp"

using namespace corral;
using namespace std::chrono_literals;
using namespace http_inprocess;

namespace {

constexpr std::size_t big_size = 16u << 20;  // more than loopback's socket buffers hold
// More than small socket buffers hold before the client reads, less than
// the output above which the server stops reading (1 MiB): the client's FIN
// is read while the answer is still being written.
constexpr std::size_t mid_size = 900u << 10;

const std::string keep_request(const std::string& path) { return "GET " + path + " HTTP/1.1\r\nHost: t\r\n\r\n"; }

class HttpConnection : public served_fixture {
 protected:
  HttpConnection() {
    routes.get("/hi", [](auto&, http::response& res) { res.send("hi"); });
    routes.get("/big", [](auto&, http::response& res) { res.send(std::string(big_size, 'b')); });
    routes.get("/mid", [](auto&, http::response& res) { res.send(std::string(mid_size, 'm')); });
    routes.get("/later", [this](auto&, http::response& res) { pending = &res; });
    routes.get("/ip", [](http::request& req, http::response& res) {
      res.send(req.ip() + " " + std::string(req.protocol()) + "://" + std::string(req.hostname()));
    });
    // A file body (sendfile), as serve_static sends a large file (make_file() first).
    routes.get("/file", [this](auto&, http::response& res) {
      unique_fd fd(::open(file_path.c_str(), O_RDONLY | O_CLOEXEC));
      if (!fd) return res.status(500).send("cannot open the test's file");
      res.send_file(std::move(fd), 0, big_size);
    });
  }
  ~HttpConnection() override {
    if (!file_path.empty()) ::unlink(file_path.c_str());
  }
  // The 16 MiB file /file sends.
  void make_file() {
    char name[] = "/tmp/corral-http-file-XXXXXX";
    unique_fd f(::mkstemp(name));
    ASSERT_TRUE(f);
    file_path = name;
    std::string chunk(1 << 20, 'f');
    for (std::size_t n = 0; n < big_size; n += chunk.size())
      ASSERT_EQ(::write(f.get(), chunk.data(), chunk.size()), ssize_t(chunk.size()));
  }
  // Whether this process has the test's file open.
  bool file_open() const {
    std::error_code ec;
    for (auto& e : std::filesystem::directory_iterator("/proc/self/fd", ec))
      if (std::filesystem::read_symlink(e.path(), ec).string() == file_path) return true;
    return false;
  }
  std::string file_path;

  // The send timeout is between two times the client takes something, not
  // over the whole answer: a client that keeps reading slowly gets it all.
  // Over a Unix socket with a small send buffer: the answer stays in
  // flight for the whole test, and each read frees room the server fills
  // at once.
  void read_slowly_but_steadily(const std::string& path, std::chrono::milliseconds send_timeout) {
    if (path == "/file") make_file();
    http::server_options o;
    o.send_timeout = send_timeout;
    server(o);
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ::close(p.client);
    ::close(p.served);
    p.client = sv[0];
    p.served = sv[1];
    int small = 65536;
    ASSERT_EQ(::setsockopt(p.served, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    ASSERT_TRUE(serve_after(keep_request(path)));
    std::string got;
    char buf[65536];
    auto until = std::chrono::steady_clock::now() + send_timeout * 7 / 2;  // three and a half send timeouts
    while (std::chrono::steady_clock::now() < until) {
      pump_for(50ms);
      ssize_t n = ::recv(p.client, buf, sizeof buf, MSG_DONTWAIT);
      ASSERT_NE(n, 0) << "the server closed after " << got.size() << " bytes";
      if (n > 0) got.append(buf, static_cast<std::size_t>(n));
    }
    ASSERT_EQ(server().connection_count(), 1u) << "cut after " << got.size() << " bytes";
    std::size_t head_end = got.find("\r\n\r\n");
    ASSERT_NE(head_end, std::string::npos);
    std::size_t want = head_end + 4 + big_size;
    std::string rest = receive(p.client, [&](const std::string& g, bool) { return got.size() + g.size() >= want; });
    EXPECT_EQ(got.size() + rest.size(), want);
  }
  // Runs the loop for `d` without reading (the client is slow).
  static void pump_for(std::chrono::milliseconds d) {
    auto until = std::chrono::steady_clock::now() + d;
    pump_until([&] { return std::chrono::steady_clock::now() >= until; });
  }
  // Reads one response to the end of its Content-Length body; its size, or
  // npos if the connection ended first.
  std::size_t read_response(std::string& got) {
    bool eof = false;
    std::size_t head_end = std::string::npos, length = 0;
    got = receive(p.client, [&](const std::string& g, bool) {
      head_end = g.find("\r\n\r\n");
      if (head_end == std::string::npos) return false;
      auto cl = g.find("Content-Length: ");
      if (cl == std::string::npos || cl > head_end) return true;
      length = std::stoul(g.substr(cl + 16, 20));  // (not the whole body: this runs on every read)
      return g.size() >= head_end + 4 + length;
    }, &eof);
    if (head_end == std::string::npos || got.size() < head_end + 4 + length) return std::string::npos;
    return length;
  }
};


}  // namespace

TEST_F(HttpConnection, SlowReaderGetsAKeepAliveAnswerThatOutlastsTheIdleTimeout) {
  // The keep-alive clock starts once the answer has gone to the kernel, not
  // when it was queued: it once cut a large answer to a slow client.
  http::server_options o;
  o.keep_alive_timeout = 200ms;
  server(o);
  ASSERT_TRUE(serve_after(keep_request("/big")));
  pump_for(800ms);  // four idle timeouts without reading
  // The next request, while the answer is still on its way: the connection
  // must still be there to answer it.
  ASSERT_TRUE(p.send(keep_request("/hi")));
  std::string got;
  ASSERT_EQ(read_response(got), big_size);
  std::size_t first = got.find("\r\n\r\n") + 4 + big_size;
  std::string second = got.substr(first);
  if (second.find("\r\n\r\nhi") == std::string::npos)
    second += receive(p.client, [&](const std::string& g, bool) { return (second + g).find("\r\n\r\nhi") != std::string::npos; });
  EXPECT_EQ(second.rfind("HTTP/1.1 200", 0), 0u) << second;
  EXPECT_NE(second.find("\r\n\r\nhi"), std::string::npos) << second;
  // Once idle, the keep-alive timeout applies.
  EXPECT_TRUE(pump_until([&] { return server().connection_count() == 0; }));
}

TEST_F(HttpConnection, ClientThatTakesNothingIsDroppedAfterTheSendTimeout) {
  // A Connection: close answer to a client whose window stays shut has no
  // idle clock at all: only the send timeout ends it.
  http::server_options o;
  o.send_timeout = 300ms;
  server(o);
  ASSERT_TRUE(serve_after("GET /big HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
  EXPECT_EQ(server().connection_count(), 1u);
  EXPECT_TRUE(pump_until([&] { return server().connection_count() == 0; }));
  // A graceful close is not held up by such a client either.
  tcp_pair q;
  ASSERT_TRUE(q.ok() && q.send(keep_request("/big")));
  ASSERT_TRUE(server().serve(unique_fd(q.served)));
  q.served = -1;
  bool closed = false;
  server().close([&] { closed = true; });
  EXPECT_TRUE(pump_until([&] { return closed; }));
}

TEST_F(HttpConnection, ClientThatTakesNothingOfAFileIsDroppedAfterTheSendTimeoutAndTheFileClosed) {
  make_file();
  // A file body waits for room with a poll of its own rather than a libuv
  // write: the send timeout must cover that wait too.
  http::server_options o;
  o.send_timeout = 300ms;
  server(o);
  ASSERT_TRUE(serve_after(keep_request("/file")));
  EXPECT_TRUE(pump_until([&] { return file_open(); }));
  EXPECT_TRUE(pump_until([&] { return server().connection_count() == 0; }));
  EXPECT_TRUE(pump_until([&] { return !file_open(); }));
}

TEST_F(HttpConnection, FileOverABlockingSocketGivenToServeArrivesWholeAndTheConnectionGoesOn) {
  make_file();
  // serve() may be given a blocking socket (a program's own accept()):
  // sendfile on it would block the loop with the client unread (this test
  // would hang). It goes on a non-blocking socket, and all of it arrives.
  int flags = ::fcntl(p.served, F_GETFL);
  ASSERT_EQ(::fcntl(p.served, F_SETFL, flags & ~O_NONBLOCK), 0);
  server();
  ASSERT_TRUE(serve_after(keep_request("/file")));
  std::string got;
  ASSERT_EQ(read_response(got), big_size);
  EXPECT_EQ(got.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << got.substr(0, 200);
  EXPECT_EQ(got.find_first_not_of('f', got.find("\r\n\r\n") + 4), std::string::npos);
  ASSERT_TRUE(p.send(keep_request("/hi")));
  ASSERT_EQ(read_response(got), 2u);
  EXPECT_EQ(got.substr(got.size() - 2), "hi");
  EXPECT_TRUE(pump_until([&] { return !file_open(); }));
}

TEST_F(HttpConnection, SlowButSteadyReaderIsNotCutByTheSendTimeout) { read_slowly_but_steadily("/big", 1000ms); }

TEST_F(HttpConnection, SlowButSteadyReaderOfAFileIsNotCutByTheSendTimeout) {
  // (A file's wait for room starts the clock afresh, as a write does.)
  read_slowly_but_steadily("/file", 1000ms);
}

TEST_F(HttpConnection, TrustProxyHopsMakesIpTheAddressTheProxySaw) {
  http::server_options o;
  o.trust_proxy_hops = 1;
  server(o);
  ASSERT_TRUE(serve_after("GET /ip HTTP/1.1\r\nHost: inner:3000\r\nX-Forwarded-For: 6.6.6.6, 203.0.113.9\r\n"
                          "X-Forwarded-Proto: https\r\nX-Forwarded-Host: example.com\r\n\r\n"));
  std::string got;
  ASSERT_NE(read_response(got), std::string::npos);
  EXPECT_EQ(got.substr(got.find("\r\n\r\n") + 4), "203.0.113.9 https://example.com") << got;
}

TEST_F(HttpConnection, HalfClosedClientGetsItsWholeAnswer) {
  // `printf 'GET /big ...' | nc -N`: the client's FIN comes right after its
  // request, while the answer is still being written.
  server();
  // Small socket buffers (loopback's defaults would take the whole answer).
  int small = 16384;
  p = tcp_pair(small);
  ASSERT_EQ(::setsockopt(p.served, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
  ASSERT_TRUE(p.ok() && p.send(keep_request("/mid")));
  ASSERT_EQ(::shutdown(p.client, SHUT_WR), 0);
  ASSERT_TRUE(server().serve(unique_fd(p.served)));
  p.served = -1;
  pump_for(100ms);  // the FIN is read while the answer waits on the client
  std::string got;
  EXPECT_EQ(read_response(got), mid_size);
  bool eof = false;
  receive(p.client, [](const std::string&, bool) { return false; }, &eof);
  EXPECT_TRUE(eof);  // and then the server closes
  EXPECT_TRUE(pump_until([&] { return server().connection_count() == 0; }));
}

TEST_F(HttpConnection, HalfClosedClientGetsEveryPipelinedAnswer) {
  // Two requests, the first answered late, then the client's FIN: the
  // second request was received and is answered too, then the connection
  // closes. (The FIN is read once the first answer is out: reading waits
  // while a request waits for its answer.)
  server();
  ASSERT_TRUE(p.ok() && p.send(keep_request("/later") + keep_request("/hi")));
  ASSERT_EQ(::shutdown(p.client, SHUT_WR), 0);
  ASSERT_TRUE(server().serve(unique_fd(p.served)));
  p.served = -1;
  ASSERT_TRUE(pump_until([&] { return pending != nullptr; }));
  pending->send("first");
  pending = nullptr;
  bool eof = false;
  std::string got = receive(p.client, [](const std::string& g, bool) { return count(g, "HTTP/1.1 200") == 2; }, &eof);
  EXPECT_EQ(count(got, "HTTP/1.1 200"), 2u) << got;
  EXPECT_LT(got.find("first"), got.find("\r\n\r\nhi")) << got;
  receive(p.client, [](const std::string&, bool) { return false; }, &eof);
  EXPECT_TRUE(eof);
}

TEST_F(HttpConnection, CloseCallbackMayDestroyTheServerWhileItDropsItsConnections) {
  // close() waits for a busy connection; close_all_connections() then ends
  // it, and the close callback that runs destroys the server: nothing may
  // touch the server after that (ASan checks).
  server();
  ASSERT_TRUE(serve_after(keep_request("/later")));
  ASSERT_TRUE(pump_until([&] { return pending != nullptr; }));
  bool closed = false;
  server().close([&] {
    closed = true;
    srv_.reset();
  });
  uv_run(default_loop(), UV_RUN_NOWAIT);
  EXPECT_FALSE(closed);  // the request in flight holds it
  server().close_all_connections();
  EXPECT_TRUE(closed);
  EXPECT_FALSE(srv_.has_value());
  pending->send("late");  // the handler's response outlives its connection
  pending = nullptr;
}
