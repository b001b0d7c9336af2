// corral::http's request and response semantics on real loopback TCP
// connections served in this process: chunked trailers, and what RFC 9112
// and Express/Node users expect of request targets, keep-alive and framing.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "corral/http.hpp"
#include "corral/loop.hpp"
#include "http_inprocess.hpp"

using namespace corral;
using namespace std::chrono_literals;
using namespace http_inprocess;

namespace {

// One parsed response: status, raw head, body (Content-Length or chunked).
struct reply {
  int status = 0;
  std::string head;
  std::string body;
  bool has(const std::string& line) const { return head.find("\r\n" + line + "\r\n") != std::string::npos; }
  bool names(const std::string& name) const { return head.find("\r\n" + name + ":") != std::string::npos; }
};

// Parses the first whole response in `in` (`head_only`: a response to HEAD,
// whose framing headers describe a body that is not sent); npos if incomplete.
std::size_t parse_one(const std::string& in, reply& r, bool head_only) {
  std::size_t end = in.find("\r\n\r\n");
  if (end == std::string::npos) return std::string::npos;
  r.head = in.substr(0, end + 2);
  r.status = std::atoi(in.c_str() + 9);
  std::size_t pos = end + 4;
  if (head_only || r.status == 204 || r.status == 304) return pos;
  auto cl = r.head.find("\r\nContent-Length: ");
  if (cl != std::string::npos) {
    std::size_t n = std::stoul(r.head.substr(cl + 18, 20));
    if (in.size() < pos + n) return std::string::npos;
    r.body = in.substr(pos, n);
    return pos + n;
  }
  if (r.head.find("\r\nTransfer-Encoding: chunked\r\n") != std::string::npos) {
    r.body.clear();
    for (;;) {
      std::size_t line_end = in.find("\r\n", pos);
      if (line_end == std::string::npos) return std::string::npos;
      std::size_t n = std::stoul(in.substr(pos, line_end - pos), nullptr, 16);
      pos = line_end + 2;
      if (n == 0) return in.size() >= pos + 2 ? pos + 2 : std::string::npos;
      if (in.size() < pos + n + 2) return std::string::npos;
      r.body += in.substr(pos, n);
      pos += n + 2;
    }
  }
  return pos;  // no body framing: nothing more expected
}

class HttpProtocol : public served_fixture {
 protected:
  // Reads `n` responses (the i-th a response to HEAD if `head[i]`).
  std::vector<reply> read_replies(std::size_t n, std::vector<bool> head = {}, bool* eof = nullptr) {
    head.resize(n, false);
    std::vector<reply> out;
    receive(p.client, [&](const std::string& g, bool) {
      out.clear();
      std::size_t pos = 0;
      while (out.size() < n) {
        reply r;
        std::size_t used = parse_one(g.substr(pos), r, head[out.size()]);
        if (used == std::string::npos) return false;
        pos += used;
        out.push_back(std::move(r));
      }
      rest_ = g.substr(pos);
      return true;
    }, eof);
    return out;
  }
  // Whether the server closes the connection (within the receive bound).
  bool server_closes() {
    bool eof = false;
    receive(p.client, [](const std::string&, bool) { return false; }, &eof);
    return eof;
  }
  std::string rest_;  // received after the responses read_replies() returned
};

// "name: value" lines of a header list.
std::string lines(const std::vector<http::header>& hs) {
  std::string out;
  for (auto& h : hs) out += std::string(h.name) + ": " + std::string(h.value) + "\n";
  return out;
}

}  // namespace

// ---- trailers --------------------------------------------------------------

TEST_F(HttpProtocol, ChunkedTrailersAreTheRequestsTrailersNotItsHeaders) {
  routes.post("/upload", [](http::request& req, http::response& res) {
    res.send("trailer=" + std::string(req.trailer("x-checksum").value_or("none")) +
             " header=" + std::string(req.get("X-Checksum").value_or("none")) + "\n" + lines(req.headers()) + "--\n" +
             lines(req.trailers()) + "--\n" + std::string(req.body()));
  });
  routes.get("/next", [](http::request& req, http::response& res) {
    res.send(lines(req.headers()) + "--\n" + lines(req.trailers()));
  });
  // The second request is pipelined behind the first's trailers, in the same
  // packet: its headers must come out right, and it has no trailers.
  ASSERT_TRUE(serve_after("POST /upload HTTP/1.1\r\nHost: up\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"
                          "5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Big: " + std::string(3000, 'b') + "\r\n\r\n"
                          "GET /next HTTP/1.1\r\nHost: second\r\nX-A: 1\r\n\r\n"));
  auto r = read_replies(2);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].status, 200);
  EXPECT_EQ(r[0].body, "trailer=abc header=none\n"
                       "Host: up\nTransfer-Encoding: chunked\nTrailer: X-Checksum\n--\n"
                       "X-Checksum: abc\nX-Big: " + std::string(3000, 'b') + "\n--\nhello");
  EXPECT_EQ(r[1].status, 200);
  EXPECT_EQ(r[1].body, "Host: second\nX-A: 1\n--\n");
}

TEST_F(HttpProtocol, TrailersSplitAcrossReadsAreWhole) {
  routes.post("/upload", [](http::request& req, http::response& res) { res.send(lines(req.trailers())); });
  ASSERT_TRUE(serve_after("POST /upload HTTP/1.1\r\nHost: up\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Chec"));
  ASSERT_TRUE(pump_until([&] { return server().connection_count() == 1; }));
  uv_run(default_loop(), UV_RUN_NOWAIT);
  ASSERT_TRUE(p.send("ksum: a"));
  uv_run(default_loop(), UV_RUN_NOWAIT);
  ASSERT_TRUE(p.send("bc\r\nX-Two: 2\r\n\r\n"));
  auto r = read_replies(1);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].body, "X-Checksum: abc\nX-Two: 2\n");
}

TEST_F(HttpProtocol, TrailerSectionOverTheHeaderLimitGets431) {
  // Small headers, then trailers that take the request over the limit.
  routes.post("/upload", [](http::request&, http::response& res) { res.send("handled"); });
  http::server_options o;
  o.max_header_bytes = 1024;
  server(o);
  ASSERT_TRUE(serve_after("POST /upload HTTP/1.1\r\nHost: up\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "0\r\nX-A: " + std::string(600, 'a') + "\r\nX-B: " + std::string(600, 'b') + "\r\n\r\n"));
  auto r = read_replies(1);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, 431);
  EXPECT_TRUE(r[0].has("Connection: close"));
}

// ---- request targets, expectations, framing ------------------------------

TEST_F(HttpProtocol, AbsoluteFormRequestIsRoutedByItsPath) {
  routes.get("/hello", [](http::request& req, http::response& res) { res.send("hello " + req.query("x").value_or("-")); });
  ASSERT_TRUE(serve_after("GET http://t/hello?x=1 HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto r = read_replies(1);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, 200);
  EXPECT_EQ(r[0].body, "hello 1");
}

TEST_F(HttpProtocol, UnknownExpectationGets417AndTheHandlerDoesNotRun) {
  // RFC 9110 10.1.1: a server may answer 417 to an expectation it does not
  // meet; Node does, for any Expect other than 100-continue.
  bool ran = false;
  routes.post("/up", [&](http::request&, http::response& res) {
    ran = true;
    res.send("ok");
  });
  ASSERT_TRUE(serve_after("POST /up HTTP/1.1\r\nHost: t\r\nExpect: something-else\r\nContent-Length: 3\r\n\r\nabc"));
  auto r = read_replies(1);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, 417);
  EXPECT_FALSE(ran);
  // 100-continue (any case) still goes on to the handler.
  p = tcp_pair();
  ASSERT_TRUE(serve_after("POST /up HTTP/1.1\r\nHost: t\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\nabc"));
  r = read_replies(2);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].status, 100);
  EXPECT_EQ(r[1].status, 200);
  EXPECT_TRUE(ran);
}

TEST_F(HttpProtocol, StreamedBodyLongerThanItsContentLengthDoesNotCorruptTheNextResponse) {
  routes.get("/long", [](http::request&, http::response& res) {
    res.set("Content-Length", "4");
    res.write("abc");
    res.end("defgh");
  });
  routes.get("/hi", [](http::request&, http::response& res) { res.send("hi"); });
  ASSERT_TRUE(serve_after("GET /long HTTP/1.1\r\nHost: t\r\n\r\nGET /hi HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto r = read_replies(2);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].body, "abcd");
  EXPECT_EQ(r[1].status, 200) << r[1].head;
  EXPECT_EQ(r[1].body, "hi");
}

TEST_F(HttpProtocol, StreamedBodyShorterThanItsContentLengthClosesTheConnection) {
  // The client would otherwise wait for bytes that never come, or read the
  // next response as the rest of this body.
  routes.get("/short", [](http::request&, http::response& res) {
    res.set("Content-Length", "10");
    res.write("abc");
    res.end();
  });
  http::server_options o;
  o.keep_alive_timeout = 60s;  // (not what closes it)
  server(o);
  ASSERT_TRUE(serve_after("GET /short HTTP/1.1\r\nHost: t\r\n\r\n"));
  bool eof = false;
  std::string got = receive(p.client, [](const std::string&, bool) { return false; }, &eof);
  EXPECT_TRUE(eof);
  EXPECT_EQ(got.substr(got.find("\r\n\r\n") + 4), "abc");
}

TEST_F(HttpProtocol, Http10KeepAliveIsHonouredAndPlainHttp10Closes) {
  routes.get("/hi", [](http::request&, http::response& res) { res.send("hi"); });
  ASSERT_TRUE(serve_after("GET /hi HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /hi HTTP/1.0\r\n\r\n"));
  auto r = read_replies(2);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_TRUE(r[0].has("Connection: keep-alive")) << r[0].head;
  EXPECT_TRUE(r[1].has("Connection: close")) << r[1].head;
  EXPECT_TRUE(server_closes());
}

TEST_F(HttpProtocol, BodilessResponsesCarryNoFramingOrBodyAndKeepTheConnectionInSync) {
  routes.get("/stream", [](http::request&, http::response& res) {
    res.write("abc");
    res.end("d");
  });
  routes.get("/none", [](http::request&, http::response& res) {
    res.status(204);
    res.write("abc");
    res.end("d");
  });
  routes.get("/same", [](http::request&, http::response& res) { res.status(304).send("body"); });
  ASSERT_TRUE(serve_after("HEAD /stream HTTP/1.1\r\nHost: t\r\n\r\nGET /none HTTP/1.1\r\nHost: t\r\n\r\n"
                          "GET /same HTTP/1.1\r\nHost: t\r\n\r\nGET /stream HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto r = read_replies(4, {true, false, false, false});
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0].status, 200);
  EXPECT_EQ(r[1].status, 204);
  EXPECT_FALSE(r[1].names("Transfer-Encoding")) << r[1].head;
  EXPECT_FALSE(r[1].names("Content-Length")) << r[1].head;
  EXPECT_EQ(r[2].status, 304);
  EXPECT_FALSE(r[2].names("Transfer-Encoding")) << r[2].head;
  EXPECT_EQ(r[3].status, 200);
  EXPECT_EQ(r[3].body, "abcd");
  EXPECT_EQ(rest_, "");
}

TEST_F(HttpProtocol, Http11RequestWithoutOneHostGets400) {
  // RFC 9112 3.2: a server MUST answer 400 to an HTTP/1.1 request with no
  // Host field or more than one (Node: requireHostHeader, on by default).
  bool ran = false;
  routes.get("/", [&](http::request&, http::response& res) {
    ran = true;
    res.send("ok");
  });
  ASSERT_TRUE(serve_after("GET / HTTP/1.1\r\n\r\n"));
  auto r = read_replies(1);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, 400);
  p = tcp_pair();
  ASSERT_TRUE(serve_after("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"));
  r = read_replies(1);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, 400);
  EXPECT_FALSE(ran);
  // HTTP/1.0 needs none; an empty Host is allowed (RFC 9112 3.2: authority-less target).
  p = tcp_pair();
  ASSERT_TRUE(serve_after("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.1\r\nHost:\r\n\r\n"));
  r = read_replies(2);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].status, 200);
  EXPECT_EQ(r[1].status, 200);
}

TEST_F(HttpProtocol, Http10RequestWithTransferEncodingClosesAfterItsResponse) {
  // RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding must be treated
  // as having faulty framing, and the connection closed after it (an
  // HTTP/1.0 intermediary may have framed it differently: request smuggling).
  routes.post("/echo", [](http::request& req, http::response& res) { res.send(std::string(req.body())); });
  ASSERT_TRUE(serve_after("POST /echo HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "3\r\nabc\r\n0\r\n\r\nPOST /echo HTTP/1.0\r\nContent-Length: 1\r\n\r\nx"));
  bool eof = false;
  auto r = read_replies(1, {}, &eof);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].body, "abc");
  EXPECT_TRUE(r[0].has("Connection: close")) << r[0].head;
  EXPECT_EQ(rest_, "");  // the bytes after it are not taken for a request
  EXPECT_TRUE(eof || server_closes());
}

TEST_F(HttpProtocol, TransferCodingOtherThanChunkedGets501) {
  // RFC 9112 6.1: a server that receives a transfer coding it does not
  // understand SHOULD answer 501; handing the body on would give the handler
  // still-gzipped bytes as if they were the body.
  bool ran = false;
  routes.post("/echo", [&](http::request& req, http::response& res) {
    ran = true;
    res.send(std::string(req.body()));
  });
  ASSERT_TRUE(serve_after("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"));
  auto r = read_replies(1);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, 501);
  EXPECT_FALSE(ran);
  // Plain chunked, in any case and spread over fields, is fine.
  p = tcp_pair();
  ASSERT_TRUE(serve_after("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"));
  r = read_replies(1);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, 200);
  EXPECT_EQ(r[0].body, "abc");
}
