// corral::http on real sockets: keep-alive, pipelining, framing, limits,
// timeouts, exceptions, graceful close, and a corpus of malformed requests.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <regex>

#include "http_client.hpp"
#include "support/process.hpp"

using namespace support;
using http_test::client;

namespace {

// The fixture server with `args`; waits until it prints its port.
struct fixture {
  explicit fixture(std::vector<std::string> args = {}) : proc(make_argv(std::move(args))) {
    if (!proc.wait_out("listening ", 10s)) return;
    std::smatch m;
    std::string out = proc.out();
    if (std::regex_search(out, m, std::regex(R"(listening (\d+))"))) port = std::stoi(m[1]);
  }
  static std::vector<std::string> make_argv(std::vector<std::string> args) {
    args.insert(args.begin(), bin("tests/e2e/http_fixture_server"));
    return args;
  }
  child proc;
  int port = 0;
};

std::string get(const std::string& path, const std::string& extra = "") {
  return "GET " + path + " HTTP/1.1\r\nHost: t\r\n" + extra + "\r\n";
}

}  // namespace

// Cookies, redirects and the client's address with curl, a client that
// knows nothing of us: its cookie jar carries the counter from one run to
// the next, and -L follows the redirect.
TEST(HttpServer, CurlKeepsTheCookiesFollowsTheRedirectAndIsSeenAtItsAddress) {
  fixture f;
  ASSERT_GT(f.port, 0) << f.proc.err();
  temp_dir dir;
  std::string url = "http://127.0.0.1:" + std::to_string(f.port);
  auto curl = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"curl", "-s", "-b", dir.file("jar"), "-c", dir.file("jar")});
    child c(args);
    return c.wait_exit(5s) ? c.out() : std::string("(curl timed out)");
  };
  EXPECT_EQ(curl({url + "/visits"}), "1 from 127.0.0.1");
  EXPECT_EQ(curl({url + "/visits"}), "2 from 127.0.0.1");
  EXPECT_EQ(curl({url + "/visits"}), "3 from 127.0.0.1");
  std::ifstream in(dir.file("jar"));
  std::string jar((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(jar.find("#HttpOnly_127.0.0.1"), std::string::npos) << jar;
  EXPECT_NE(jar.find("note\ta%20b%3Bc"), std::string::npos) << jar;
  EXPECT_EQ(curl({"-L", url + "/go"}), "Hello there!!!");
  EXPECT_EQ(curl({"-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", url + "/go"}), "302 " + url + "/hello/there");
}

// compression() with curl: --compressed asks for gzip and inflates the
// answer to the very text; without it curl gets the text as it is.
TEST(HttpServer, CurlGetsAGzippedPageAndInflatesItToTheText) {
  fixture f;
  ASSERT_GT(f.port, 0) << f.proc.err();
  std::string url = "http://127.0.0.1:" + std::to_string(f.port) + "/gz/page";
  auto curl = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"curl", "-s"});
    child c(args);
    return c.wait_exit(5s) ? c.out() : std::string("(curl timed out)");
  };
  std::string text;
  for (int i = 0; i < 100; ++i) text += "line " + std::to_string(i) + " of a page worth compressing\n";
  EXPECT_EQ(curl({"--compressed", url}), text);
  EXPECT_EQ(curl({url}), text);
  std::string sizes = curl({"--compressed", "-o", "/dev/null", "-w", "%{size_download} %{content_type}", url});
  EXPECT_LT(std::atoi(sizes.c_str()), static_cast<int>(text.size()) / 4) << sizes;
  std::string headers = curl({"--compressed", "-D", "-", "-o", "/dev/null", url});
  EXPECT_NE(headers.find("Content-Encoding: gzip\r\n"), std::string::npos) << headers;
  EXPECT_NE(headers.find("Vary: Accept-Encoding\r\n"), std::string::npos) << headers;
}

TEST(HttpServer, KeepAliveServesManyRequestsOnOneConnection) {
  fixture f;
  ASSERT_GT(f.port, 0) << f.proc.out() << f.proc.err();
  client c(f.port);
  ASSERT_TRUE(c.ok());
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(c.send(get("/")));
    auto r = c.read();
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "Hello World");
    EXPECT_EQ(r->header("x-seen"), "1");  // the middleware ran
    EXPECT_FALSE(r->header("date").empty());
    EXPECT_EQ(r->header("connection"), "");
  }
}

TEST(HttpServer, PipelinedResponsesComeInRequestOrderEvenWhenSomeAnswerLate) {
  fixture f;
  ASSERT_GT(f.port, 0);
  client c(f.port);
  std::string batch;
  for (int i = 1; i <= 8; ++i) batch += get("/seq/" + std::to_string(i));
  ASSERT_TRUE(c.send(batch));
  for (int i = 1; i <= 8; ++i) {
    auto r = c.read();
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->body, "seq " + std::to_string(i));
  }
}

TEST(HttpServer, ChunkedRequestBodyIsReassembled) {
  fixture f;
  ASSERT_GT(f.port, 0);
  client c(f.port);
  ASSERT_TRUE(c.send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n"));
  ASSERT_TRUE(c.send("5\r\npedia\r\n0\r\n\r\n"));
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "Wikipedia");
  ASSERT_TRUE(c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"));
  r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "abc");
}

TEST(HttpServer, ChunkedTrailersAreReadAndLeaveTheRequestsHeadersIntact) {
  // Trailer fields arrive after the headers were handed over; a large one
  // once grew the buffer the request's header views point into.
  fixture f;
  ASSERT_GT(f.port, 0);
  client c(f.port);
  std::string trailer(4000, 't');
  ASSERT_TRUE(c.send("POST /headers HTTP/1.1\r\nHost: here\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5\r\nhello\r\n0\r\nX-Trailer: " + trailer + "\r\nX-Other: 1\r\n\r\n"));
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "Host: here\nTransfer-Encoding: chunked\nhello");
  // Trailers count against the header limit (16 KiB) like headers do.
  ASSERT_TRUE(c.send("POST /headers HTTP/1.1\r\nHost: here\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "0\r\nX-Trailer: " + std::string(20000, 't') + "\r\n\r\n"));
  r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 431);
}

TEST(HttpServer, StreamedResponseIsChunkedAndJsonIsTyped) {
  fixture f;
  ASSERT_GT(f.port, 0);
  client c(f.port);
  ASSERT_TRUE(c.send(get("/stream") + get("/json")));
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->header("transfer-encoding"), "chunked");
  EXPECT_EQ(r->body, "abbccc");
  r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->header("content-type"), "application/json; charset=utf-8");
  EXPECT_EQ(r->body, R"({"ok":true})");
}

TEST(HttpServer, HeadGetsHeadersWithoutBodyAndTheConnectionStaysUsable) {
  fixture f;
  ASSERT_GT(f.port, 0);
  client c(f.port);
  ASSERT_TRUE(c.send("HEAD / HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto r = c.read(/*head=*/true);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("content-length"), "11");
  ASSERT_TRUE(c.send(get("/")));
  r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "Hello World");  // no stray body bytes came before it
}

TEST(HttpServer, ExpectContinueGetsAnInterimResponseBeforeTheBody) {
  fixture f;
  ASSERT_GT(f.port, 0);
  client c(f.port);
  ASSERT_TRUE(c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"));
  ASSERT_TRUE(c.expect_raw("HTTP/1.1 100 Continue\r\n\r\n"));
  ASSERT_TRUE(c.send("hello"));
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "hello");
}

TEST(HttpServer, ConnectionCloseIsHonoured) {
  fixture f;
  ASSERT_GT(f.port, 0);
  client c(f.port);
  ASSERT_TRUE(c.send(get("/", "Connection: close\r\n") + get("/")));
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->header("connection"), "close");
  EXPECT_TRUE(c.closed_by_peer());  // the second request is not answered
}

TEST(HttpServer, Http10KeepAliveIsHonouredAndDefaultsToClose) {
  fixture f;
  ASSERT_GT(f.port, 0);
  client c(f.port);
  ASSERT_TRUE(c.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->header("connection"), "keep-alive");
  ASSERT_TRUE(c.send("GET / HTTP/1.0\r\n\r\n"));
  r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->header("connection"), "close");
  EXPECT_TRUE(c.closed_by_peer());
}

TEST(HttpServer, RouterAnswers404And405WithAllowAndDecodesParams) {
  fixture f;
  ASSERT_GT(f.port, 0);
  client c(f.port);
  ASSERT_TRUE(c.send(get("/nope") + "DELETE /hello/x HTTP/1.1\r\nHost: t\r\n\r\n" + get("/hello/J%C3%B6rg") +
                     get("/hello") + get("/", "X-Block: 1\r\n")));
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(r->header("allow"), "GET, HEAD");
  r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "Hello J\xC3\xB6rg!!!");
  r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "Hello World !!!");
  r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403);  // middleware answered without next()
}

TEST(HttpServer, HandlerExceptionGives500ForThatRequestOnly) {
  fixture f;
  ASSERT_GT(f.port, 0);
  client c(f.port);
  ASSERT_TRUE(c.send(get("/throw") + get("/")));
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500);
  r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "Hello World");
}

// A POST with `type` and `body`.
std::string post(const std::string& path, const std::string& type, const std::string& body) {
  return "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: " + type + "\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

TEST(HttpServer, JsonAndFormBodiesAreParsedAndABadOneGets400NamingWhere) {
  fixture f;
  ASSERT_GT(f.port, 0);
  client c(f.port);
  ASSERT_TRUE(c.send(post("/json", "application/json; charset=utf-8", R"({"a":[1,2],"b":"x"})")));
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, R"({"got":{"a":[1,2],"b":"x"}})");
  // A +json type is JSON; an empty body is {}, as body-parser.
  ASSERT_TRUE(c.send(post("/json", "application/merge-patch+json", "")));
  r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, R"({"got":{}})");
  // Not JSON: the handler decides (415 here).
  ASSERT_TRUE(c.send(post("/json", "text/plain", "{}")));
  r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 415);
  // Broken JSON: 400 naming where, the connection kept, nothing logged as a
  // server error.
  ASSERT_TRUE(c.send(post("/json", "application/json", R"({"a": 1,})")));
  r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("invalid JSON in the request body: parse error at line 1, column 9"), std::string::npos)
      << r->body;
  // Valid but nested deeper than a handler's stack could copy: 400 too.
  ASSERT_TRUE(c.send(post("/json", "application/json", std::string(100000, '[') + std::string(100000, ']'))));
  r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(r->body, "invalid JSON in the request body: nested deeper than 10000 levels\n");
  ASSERT_TRUE(c.send(post("/form", "application/x-www-form-urlencoded", "tag=a&name=J%C3%B6rg+M&tag=b%26c&x")));
  r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "J\xC3\xB6rg M,a,b&c");
  ASSERT_TRUE(c.send(post("/form", "text/plain", "name=no")));
  r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "(none)");
  // A handler's own status_error: its status and message.
  ASSERT_TRUE(c.send(get("/teapot")));
  r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 418);
  EXPECT_EQ(r->body, "short and stout\n");
  ASSERT_TRUE(c.send(get("/")));
  r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST(HttpServer, ClientLeavingBeforeALateAnswerIsHarmless) {
  fixture f;
  ASSERT_GT(f.port, 0);
  {
    client gone(f.port);
    ASSERT_TRUE(gone.send(get("/slow?ms=100")));
    client probe(f.port);
    ASSERT_TRUE(probe.send(get("/")));
    ASSERT_TRUE(probe.read());  // the slow request is in its handler now
  }  // `gone` hangs up before its answer
  // Answered after the first one's timer fired into a connection that is gone.
  client c(f.port);
  ASSERT_TRUE(c.send(get("/slow?ms=300")));
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "slow done");
  EXPECT_FALSE(f.proc.exited());
}

// A streamed answer keeps writing after its client hung up: the first write
// after the hang-up draws a reset, the next one EPIPE, which must be an error
// for that connection only, not a SIGPIPE that kills the server.
TEST(HttpServer, ClientLeavingAStreamedAnswerIsHarmless) {
  fixture f;
  ASSERT_GT(f.port, 0);
  {
    client gone(f.port);
    ASSERT_TRUE(gone.send(get("/drip?n=30&ms=5")));
    ASSERT_TRUE(gone.expect_raw("xxxx"));  // the stream has started
  }  // hangs up mid-stream
  ASSERT_TRUE(f.proc.wait_out("drip end", 10s)) << "the server died writing to a closed connection; output:\n"
                                                << f.proc.out();
  EXPECT_FALSE(f.proc.exited());
  client c(f.port);
  ASSERT_TRUE(c.send(get("/")));
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "Hello World");
}

// A handler streaming 64 MiB with back-pressure (write() until it says
// false, then on_drain): to a client that reads nothing yet the server
// holds little, not the body; read, every byte arrives; a client that
// leaves mid-body makes on_drain run with aborted() true, and the handler
// ends there, having written far less than the whole.
TEST(HttpServer, BackPressureBoundsAStreamedBodyAndTellsTheHandlerTheClientLeft) {
  fixture f;
  ASSERT_GT(f.port, 0);
  using http_test::rss_kib;
  using http_test::wait_settled;
  const pid_t server = f.proc.pid();
  {
    client c(f.port);
    long before = rss_kib(server);
    ASSERT_TRUE(c.send(get("/big?mib=64")));
    ASSERT_TRUE(wait_settled(server));  // the server waits on the client
    EXPECT_LT(rss_kib(server) - before, 8 * 1024) << "the server buffered the body instead of waiting for the client";
    EXPECT_EQ(f.proc.out().find("big end"), std::string::npos);
    auto r = c.read(false, 30000);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body.size(), std::size_t(64) << 20);
    EXPECT_EQ(r->body.find_first_not_of('z'), std::string::npos);
    ASSERT_TRUE(f.proc.wait_out("big end 67108864 aborted 0", 10s)) << f.proc.out();
  }
  {
    // A small receive buffer, and the hang-up once the server waits for
    // room: it learns of the client's leaving while on_drain is pending.
    client gone(f.port, 4096);
    ASSERT_TRUE(gone.send(get("/big?mib=64")));
    ASSERT_TRUE(wait_settled(server));
  }  // hangs up mid-body, most of it unread: a reset
  ASSERT_TRUE(f.proc.wait_out("aborted 1", 10s)) << f.proc.out();
  std::smatch m;
  std::string out = f.proc.out();
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(big end (\d+) aborted 1)")));
  EXPECT_LT(std::stoull(m[1]), 64ull << 20);
  client c(f.port);
  ASSERT_TRUE(c.send(get("/")));
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "Hello World");
}

TEST(HttpServer, OversizedHeadersGet431AndTheConnectionCloses) {
  fixture f;
  ASSERT_GT(f.port, 0);
  client c(f.port);
  ASSERT_TRUE(c.send("GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(17 * 1024, 'a') + "\r\n\r\n"));
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 431);
  EXPECT_EQ(r->header("connection"), "close");
  EXPECT_TRUE(c.closed_by_peer());
}

TEST(HttpServer, OversizedBodyGets413ByLengthAndByChunks) {
  fixture f({"--max-body", "100"});
  ASSERT_GT(f.port, 0);
  {
    client c(f.port);
    ASSERT_TRUE(c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 101\r\n\r\n"));
    auto r = c.read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 413);
    EXPECT_TRUE(c.closed_by_peer());
  }
  {
    client c(f.port);
    ASSERT_TRUE(c.send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n" +
                       std::string(100, 'x') + "\r\n1\r\ny\r\n0\r\n\r\n"));
    auto r = c.read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 413);
    EXPECT_TRUE(c.closed_by_peer());
  }
  client ok(f.port);
  ASSERT_TRUE(ok.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n" + std::string(100, 'z')));
  auto r = ok.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST(HttpServer, SlowHeadersGet408WithinTheHeadersTimeout) {
  fixture f({"--headers-timeout", "300"});
  ASSERT_GT(f.port, 0);
  client c(f.port);
  auto start = clock::now();
  ASSERT_TRUE(c.send("GET / HTTP/1.1\r\nHost: t\r\nX-Slow"));
  auto r = c.read(false, 3000);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 408);
  EXPECT_TRUE(c.closed_by_peer());
  EXPECT_LT(clock::now() - start, 2s);
}

TEST(HttpServer, SlowBodyGets408WithinTheRequestTimeout) {
  fixture f({"--request-timeout", "400"});
  ASSERT_GT(f.port, 0);
  client c(f.port);
  ASSERT_TRUE(c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc"));
  auto r = c.read(false, 3000);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 408);
  EXPECT_TRUE(c.closed_by_peer());
}

TEST(HttpServer, IdleKeepAliveConnectionIsClosedAfterTheTimeout) {
  fixture f({"--keep-alive", "300"});
  ASSERT_GT(f.port, 0);
  client c(f.port);
  ASSERT_TRUE(c.send(get("/")));
  ASSERT_TRUE(c.read());
  auto start = clock::now();
  EXPECT_TRUE(c.closed_by_peer(3000));
  EXPECT_GE(clock::now() - start, 250ms);
}

TEST(HttpServer, SilentConnectionIsClosedAfterTheHeadersTimeout) {
  fixture f({"--headers-timeout", "300"});
  ASSERT_GT(f.port, 0);
  client c(f.port);
  EXPECT_TRUE(c.closed_by_peer(3000));
}

TEST(HttpServer, GracefulCloseFinishesTheRequestInFlightAndRefusesNewConnections) {
  fixture f;
  ASSERT_GT(f.port, 0);
  client c(f.port);
  ASSERT_TRUE(c.send(get("/slow?ms=600")));
  // The request is in the handler before we ask the server to close.
  ASSERT_TRUE(wait_until([&] { return true; }, 10ms));
  client probe(f.port);
  ASSERT_TRUE(probe.send(get("/")));
  ASSERT_TRUE(probe.read());
  f.proc.signal(SIGTERM);
  ASSERT_TRUE(f.proc.wait_out("closing", 5s));
  client late(f.port);
  EXPECT_FALSE(late.ok());  // refused: nobody listens any more
  auto r = c.read(false, 5000);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "slow done");
  EXPECT_EQ(r->header("connection"), "close");
  EXPECT_TRUE(c.closed_by_peer());
  ASSERT_TRUE(f.proc.wait_out("closed", 5s)) << f.proc.out();
  auto st = f.proc.wait_exit(5s);
  ASSERT_TRUE(st);
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0);
}

TEST(HttpServer, GracefulCloseAnswersAKeepAliveClientThatReusesItsConnection) {
  fixture f({"--grace", "2000"});
  ASSERT_GT(f.port, 0);
  client c(f.port);
  ASSERT_TRUE(c.send(get("/")));
  ASSERT_TRUE(c.read());
  f.proc.signal(SIGTERM);
  ASSERT_TRUE(f.proc.wait_out("closing", 5s));
  // The idle connection was not reset: a request on it is answered, with close.
  ASSERT_TRUE(c.send(get("/")));
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("connection"), "close");
  EXPECT_TRUE(c.closed_by_peer());
  EXPECT_TRUE(f.proc.wait_out("closed", 5s));
}

TEST(HttpServer, GracefulCloseClosesIdleConnectionsAfterTheGrace) {
  fixture f({"--grace", "200"});
  ASSERT_GT(f.port, 0);
  client c(f.port);
  ASSERT_TRUE(c.send(get("/")));
  ASSERT_TRUE(c.read());
  f.proc.signal(SIGTERM);
  EXPECT_TRUE(c.closed_by_peer(3000));
  EXPECT_TRUE(f.proc.wait_out("closed", 5s));
  EXPECT_TRUE(f.proc.wait_exit(5s));
}

TEST(HttpServer, CloseAllConnectionsDropsBusyAndIdleOnesAndKeepsListening) {
  fixture f;
  ASSERT_GT(f.port, 0);
  client idle(f.port);
  ASSERT_TRUE(idle.send(get("/")));
  ASSERT_TRUE(idle.read());
  client busy(f.port);
  ASSERT_TRUE(busy.send(get("/slow?ms=300")));
  client probe(f.port);
  ASSERT_TRUE(probe.send(get("/", "Connection: close\r\n")));
  ASSERT_TRUE(probe.read());  // `busy` is in its handler now
  f.proc.signal(SIGUSR1);
  ASSERT_TRUE(f.proc.wait_out("dropped", 5s));
  EXPECT_TRUE(idle.closed_by_peer(2000));
  EXPECT_TRUE(busy.closed_by_peer(2000));
  // The late answer goes nowhere, harmlessly; new connections are served.
  client next(f.port);
  ASSERT_TRUE(next.send(get("/slow?ms=400")));
  auto r = next.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "slow done");
}

// Every malformed request gets 400 (or 431) and a closed connection; the
// server keeps serving others.
TEST(HttpServer, MalformedRequestsGet400AndACloseNeverACrash) {
  fixture f;
  ASSERT_GT(f.port, 0);
  const std::vector<std::pair<std::string, std::string>> corpus = {
      {"bad method", "G@T / HTTP/1.1\r\nHost: t\r\n\r\n"},
      {"bad version", "GET / HTTP/9.9\r\nHost: t\r\n\r\n"},
      {"garbage version", "GET / HTXP/1.1\r\nHost: t\r\n\r\n"},
      {"header without colon", "GET / HTTP/1.1\r\nHost t\r\n\r\n"},
      {"CL and TE", "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
      {"TE and CL", "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n"},
      {"duplicate CL", "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"},
      {"obs-fold", "GET / HTTP/1.1\r\nHost: t\r\nX-A: a\r\n  folded\r\n\r\n"},
      {"NUL in header", std::string("GET / HTTP/1.1\r\nHost: t\r\nX-A: a\0b\r\n\r\n", 36)},
      {"NUL in URL", std::string("GET /a\0b HTTP/1.1\r\nHost: t\r\n\r\n", 30)},
      {"huge chunk size", "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFF\r\n"},
      {"bad chunk size", "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"},
      {"negative length", "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n"},
      {"TE not chunked last", "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"},
      {"space before colon", "GET / HTTP/1.1\r\nHost : t\r\n\r\n"},
      {"bare LF in header", "GET / HTTP/1.1\r\nHost: t\nX: y\r\n\r\n"},
      {"binary junk", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"},
  };
  for (const auto& [name, raw] : corpus) {
    client c(f.port);
    ASSERT_TRUE(c.ok()) << name;
    ASSERT_TRUE(c.send(raw)) << name;
    auto r = c.read(false, 3000);
    ASSERT_TRUE(r) << name;
    EXPECT_TRUE(r->status == 400 || r->status == 431) << name << ": " << r->status;
    EXPECT_EQ(r->header("connection"), "close") << name;
    EXPECT_TRUE(c.closed_by_peer(3000)) << name;
  }
  client c(f.port);
  ASSERT_TRUE(c.send(get("/")));
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}
