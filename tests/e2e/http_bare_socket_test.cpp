// corral::http's first read on the bare socket (before libuv owns it), on
// real loopback TCP connections served in this process through serve():
// a request already waiting is answered inside serve() itself, and every way
// out of that path (keep-alive, nothing to read yet, a response too big for
// one send, an answer that comes later) hands the connection on intact.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>

#include "corral/http.hpp"
#include "corral/loop.hpp"
#include "http_inprocess.hpp"

using namespace corral;
using namespace std::chrono_literals;

using namespace http_inprocess;

namespace {

const std::string close_request = "GET /hi HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
const std::string keep_request = "GET /hi HTTP/1.1\r\nHost: t\r\n\r\n";

struct app {
  app() {
    routes.get("/hi", [](auto&, http::response& res) { res.send("hi"); });
    routes.get("/big", [](auto&, http::response& res) { res.send(std::string(8 << 20, 'b')); });
    routes.get("/later", [this](auto&, http::response& res) { pending = &res; });
    routes.post("/size", [](http::request& req, http::response& res) { res.send(std::to_string(req.body().size())); });
    routes.get("/peer", [](http::request& req, http::response& res) {
      res.send(req.ip() + " " + std::to_string(req.remote_address().port));
    });
  }
  http::router routes;
  http::response* pending = nullptr;
};

// Each test's server; torn down with a loop turn, so that the close
// callbacks of connections it still had run (and free them) in the test.
class HttpBareSocket : public ::testing::Test {
 protected:
  http::server& server() {
    if (!srv_) srv_.emplace(a.routes);
    return *srv_;
  }
  // Connects `p`; the client sends `waiting` (if any), then the server is
  // given its side.
  bool serve_after(const std::string& waiting) {
    if (!p.ok() || (!waiting.empty() && !p.send(waiting))) return false;
    bool ok = static_cast<bool>(server().serve(unique_fd(p.served)));
    p.served = -1;
    return ok;
  }
  void TearDown() override {
    srv_.reset();
    uv_run(default_loop(), UV_RUN_NOWAIT);
  }
  app a;
  std::optional<http::server> srv_;
  tcp_pair p;
};

}  // namespace

TEST_F(HttpBareSocket, WaitingCloseRequestIsAnsweredAndClosedInsideServe) {
  ASSERT_TRUE(serve_after(close_request));
  http::server& srv = server();
  // No loop turn: the answer and the close are already on the client's side.
  EXPECT_EQ(srv.connection_count(), 0u);
  bool eof = false;
  std::string got = drain_now(p.client, eof);
  EXPECT_EQ(got.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << got;
  EXPECT_NE(got.find("Connection: close\r\n"), std::string::npos) << got;
  EXPECT_EQ(got.substr(got.size() - 2), "hi");
  EXPECT_TRUE(eof);
}

TEST_F(HttpBareSocket, WaitingPipelinedRequestsAreAllAnsweredInOrderBeforeTheClose) {
  ASSERT_TRUE(serve_after(keep_request + "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n" + close_request));
  http::server& srv = server();
  EXPECT_EQ(srv.connection_count(), 0u);
  bool eof = false;
  std::string got = drain_now(p.client, eof);
  auto first = got.find("HTTP/1.1 200");
  auto second = got.find("HTTP/1.1 404");
  auto third = got.find("HTTP/1.1 200", first + 1);
  EXPECT_TRUE(first < second && second < third && third != std::string::npos) << got;
  EXPECT_TRUE(eof);
}

TEST_F(HttpBareSocket, WaitingKeepAliveRequestIsAnsweredAndTheConnectionLivesOn) {
  ASSERT_TRUE(serve_after(keep_request));
  http::server& srv = server();
  EXPECT_EQ(srv.connection_count(), 1u);
  bool eof = false;
  std::string got = drain_now(p.client, eof);
  EXPECT_EQ(count(got, "HTTP/1.1 200 OK"), 1u) << got;
  EXPECT_FALSE(eof);
  // The loop has the connection now: a second request on it is answered.
  ASSERT_TRUE(p.send(close_request));
  got = receive(p.client, [](const std::string&, bool) { return false; }, &eof);
  EXPECT_EQ(count(got, "HTTP/1.1 200 OK"), 1u) << got;
  EXPECT_TRUE(eof);
  EXPECT_TRUE(pump_until([&] { return srv.connection_count() == 0; }));
}

TEST_F(HttpBareSocket, ConnectionWithNothingToReadYetIsServedWhenTheRequestComes) {
  ASSERT_TRUE(serve_after(""));
  http::server& srv = server();
  EXPECT_EQ(srv.connection_count(), 1u);
  ASSERT_TRUE(p.send(close_request));
  bool eof = false;
  std::string got = receive(p.client, [](const std::string&, bool) { return false; }, &eof);
  EXPECT_EQ(count(got, "HTTP/1.1 200 OK"), 1u) << got;
  EXPECT_TRUE(eof);
}

TEST_F(HttpBareSocket, ResponseLargerThanOneSendArrivesWholeThenTheClose) {
  ASSERT_TRUE(serve_after("GET /big HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
  http::server& srv = server();
  // 8 MiB does not fit the socket's buffers: the rest goes through the loop.
  EXPECT_EQ(srv.connection_count(), 1u);
  bool eof = false;
  std::string got = receive(p.client, [](const std::string&, bool) { return false; }, &eof);
  auto body = got.find("\r\n\r\n");
  ASSERT_NE(body, std::string::npos);
  EXPECT_EQ(got.size() - body - 4, std::size_t{8} << 20);
  EXPECT_EQ(count(got.substr(body + 4), "b"), std::size_t{8} << 20);
  EXPECT_TRUE(eof);
  EXPECT_TRUE(pump_until([&] { return srv.connection_count() == 0; }));
}

TEST_F(HttpBareSocket, BodyLargerThanTheFirstReadIsReadOnThroughTheLoop) {
  // 48 KiB of a 200 KiB body waits (what the socket takes before anyone
  // reads): the bare read parses it, the rest comes through libuv, and the
  // handler sees the whole body.
  std::string body(200 * 1024, 'p');
  std::string head = "POST /size HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\n\r\n";
  ASSERT_TRUE(serve_after(head + body.substr(0, 48 * 1024)));
  http::server& srv = server();
  EXPECT_EQ(srv.connection_count(), 1u);
  ASSERT_TRUE(p.send(body.substr(48 * 1024)));
  bool eof = false;
  std::string got = receive(p.client, [](const std::string&, bool) { return false; }, &eof);
  EXPECT_EQ(got.substr(got.size() - 6), "204800") << got;
  EXPECT_TRUE(eof);
}

TEST_F(HttpBareSocket, ExpectContinueIsAnsweredInsideServeAndTheBodyFollows) {
  ASSERT_TRUE(serve_after(
      "POST /size HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"));
  bool eof = false;
  EXPECT_EQ(drain_now(p.client, eof), "HTTP/1.1 100 Continue\r\n\r\n");
  EXPECT_FALSE(eof);
  ASSERT_TRUE(p.send("hello"));
  std::string got = receive(p.client, [](const std::string&, bool) { return false; }, &eof);
  EXPECT_EQ(got.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << got;
  EXPECT_EQ(got.substr(got.size() - 1), "5") << got;
  EXPECT_TRUE(eof);
}

TEST_F(HttpBareSocket, AnswerThatComesLaterReachesTheClient) {
  ASSERT_TRUE(serve_after("GET /later HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
  http::server& srv = server();
  ASSERT_NE(a.pending, nullptr);
  EXPECT_EQ(srv.connection_count(), 1u);
  uv_run(default_loop(), UV_RUN_NOWAIT);
  a.pending->send("late");
  bool eof = false;
  std::string got = receive(p.client, [](const std::string&, bool) { return false; }, &eof);
  EXPECT_EQ(got.substr(got.size() - 4), "late") << got;
  EXPECT_TRUE(eof);
}

TEST_F(HttpBareSocket, ClientGoneBeforeItsLateAnswerFreesTheConnection) {
  ASSERT_TRUE(serve_after("GET /later HTTP/1.1\r\nHost: t\r\n\r\n"));
  http::server& srv = server();
  ASSERT_NE(a.pending, nullptr);
  srv.close_all_connections();  // the socket goes; the handler still holds its response
  EXPECT_EQ(srv.connection_count(), 0u);
  uv_run(default_loop(), UV_RUN_NOWAIT);
  a.pending->send("nobody hears this");  // must neither crash nor leak (ASan checks)
  bool eof = false;
  drain_now(p.client, eof);
  EXPECT_TRUE(eof);
}

TEST_F(HttpBareSocket, HandlerThatClosesEverythingAndAnswersLaterIsSafe) {
  // The handler keeps its response, drops every connection (its own too),
  // and answers afterwards: the response must still be alive (ASan checks).
  a.routes.get("/drop-later", [this](auto&, http::response& res) {
    a.pending = &res;
    server().close_all_connections();
  });
  ASSERT_TRUE(serve_after("GET /drop-later HTTP/1.1\r\nHost: t\r\n\r\n"));
  EXPECT_EQ(server().connection_count(), 0u);
  ASSERT_NE(a.pending, nullptr);
  a.pending->send("too late");
  bool eof = false;
  EXPECT_EQ(drain_now(p.client, eof), "");
  EXPECT_TRUE(eof);
}

TEST_F(HttpBareSocket, ServeFromAHandlerDoesNotReadUnderTheRequestBeingParsed) {
  // A handler hands a second waiting connection to serve(): its bytes must
  // not land in the buffer the first request is still parsed from.
  tcp_pair second;
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE(second.send("GET /hi HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
  a.routes.get("/adopt", [&](auto&, http::response& res) {
    EXPECT_TRUE(server().serve(unique_fd(second.served)));
    second.served = -1;
    res.send("adopted");
  });
  // Two pipelined requests: the second is still in the read buffer while
  // the first one's handler runs.
  ASSERT_TRUE(serve_after("GET /adopt HTTP/1.1\r\nHost: t\r\n\r\n" + close_request));
  bool eof = false;
  std::string got = receive(p.client, [](const std::string&, bool) { return false; }, &eof);
  EXPECT_EQ(count(got, "HTTP/1.1 200 OK"), 2u) << got;
  EXPECT_NE(got.find("adopted"), std::string::npos) << got;
  EXPECT_EQ(got.substr(got.size() - 2), "hi") << got;
  got = receive(second.client, [](const std::string&, bool) { return false; }, &eof);
  EXPECT_EQ(count(got, "HTTP/1.1 200 OK"), 1u) << got;
  EXPECT_TRUE(eof);
}

TEST_F(HttpBareSocket, ServeOfAClosedFdIsAnError) {
  server();  // first: creating it opens fds (the loop's), which could reuse the number
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  ::close(fd);
  EXPECT_FALSE(server().serve(unique_fd(fd)));
  EXPECT_EQ(server().connection_count(), 0u);
}

TEST_F(HttpBareSocket, HandlerClosingEverythingWhileOnTheBareSocketIsSafe) {
  // (A handler ends every response it is given; until it does, the
  // connection's memory stays for it, socket or not.)
  a.routes.get("/drop", [this](auto&, http::response& res) {
    server().close_all_connections();
    res.send("into a closed connection");
  });
  ASSERT_TRUE(serve_after("GET /drop HTTP/1.1\r\nHost: t\r\n\r\n"));
  http::server& srv = server();
  EXPECT_EQ(srv.connection_count(), 0u);
  bool eof = false;
  drain_now(p.client, eof);
  EXPECT_TRUE(eof);
}

// The peer's address, asked inside serve() (the bare socket) and again on
// the same connection once libuv has it: the client's own address and port.
TEST_F(HttpBareSocket, RemoteAddressIsTheClientsOnTheBareSocketAndAfterPromotion) {
  sockaddr_in me{};
  socklen_t len = sizeof me;
  ASSERT_EQ(::getsockname(p.client, reinterpret_cast<sockaddr*>(&me), &len), 0);
  std::string want = "127.0.0.1 " + std::to_string(ntohs(me.sin_port));
  ASSERT_TRUE(serve_after("GET /peer HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n"));
  std::string got = receive(p.client, [&](const std::string& g, bool) { return g.find(want) != std::string::npos; });
  EXPECT_NE(got.find("\r\n\r\n" + want), std::string::npos) << got;  // (X-Forwarded-For not believed)
  // A connection first asked once libuv holds it.
  tcp_pair q;
  ASSERT_TRUE(q.ok());
  len = sizeof me;
  ASSERT_EQ(::getsockname(q.client, reinterpret_cast<sockaddr*>(&me), &len), 0);
  std::string want_q = "127.0.0.1 " + std::to_string(ntohs(me.sin_port));
  ASSERT_TRUE(server().serve(unique_fd(q.served)));
  q.served = -1;
  ASSERT_TRUE(q.send(keep_request));
  got = receive(q.client, [&](const std::string& g, bool) { return g.find("\r\n\r\nhi") != std::string::npos; });
  ASSERT_TRUE(q.send("GET /peer HTTP/1.1\r\nHost: t\r\n\r\n"));
  got = receive(q.client, [&](const std::string& g, bool) { return g.find(want_q) != std::string::npos; });
  EXPECT_NE(got.find("\r\n\r\n" + want_q), std::string::npos) << got;
}
