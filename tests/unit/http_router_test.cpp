// The router without sockets: matching, parameters, decoding, middleware,
// 404/405, and the response's framing.
#include <gtest/gtest.h>
#include <zlib.h>

#include <limits>
#include <stdexcept>

#include "corral/http.hpp"

using namespace corral::http;

namespace {

struct call {
  request req;
  response res;
  const std::string& run(const router& r, std::string_view method, std::string_view url,
                         std::vector<std::pair<std::string, std::string>> hdrs = {}) {
    req.set_for_test(method, url, std::move(hdrs));
    res.reset_for_test(method == "HEAD");
    r.handle(req, res);
    return res.raw_for_test();
  }
};

std::string body_of(const std::string& raw) { return raw.substr(raw.find("\r\n\r\n") + 4); }

}  // namespace

TEST(Router, LiteralPathMatchesExactlyAndIgnoresATrailingSlash) {
  request req;
  EXPECT_TRUE(router::match_for_test("/a/b", "/a/b", req));
  EXPECT_TRUE(router::match_for_test("/a/b", "/a/b/", req));
  EXPECT_FALSE(router::match_for_test("/a/b", "/a", req));
  EXPECT_FALSE(router::match_for_test("/a/b", "/a/b/c", req));
  EXPECT_FALSE(router::match_for_test("/a/b", "/a/bc", req));
  EXPECT_TRUE(router::match_for_test("/", "/", req));
}

TEST(Router, ParamCapturesOneSegmentPercentDecoded) {
  request req;
  ASSERT_TRUE(router::match_for_test("/users/:id/books/:book", "/users/42/books/a%20b%2Fc", req));
  EXPECT_EQ(req.param("id"), "42");
  EXPECT_EQ(req.param("book"), "a b/c");
  EXPECT_FALSE(router::match_for_test("/users/:id", "/users", req));
  EXPECT_FALSE(router::match_for_test("/users/:id", "/users/1/2", req));
}

TEST(Router, OptionalParamMatchesBothForms) {
  request req;
  ASSERT_TRUE(router::match_for_test("/hello/:name?", "/hello/John", req));
  EXPECT_TRUE(req.has_param("name"));
  EXPECT_EQ(req.param("name"), "John");
  ASSERT_TRUE(router::match_for_test("/hello/:name?", "/hello", req));
  EXPECT_FALSE(req.has_param("name"));
  EXPECT_FALSE(router::match_for_test("/hello/:name?", "/hello/a/b", req));
  ASSERT_TRUE(router::match_for_test("/:a?/x", "/x", req));
  EXPECT_FALSE(req.has_param("a"));
  ASSERT_TRUE(router::match_for_test("/:a?/x", "/y/x", req));
  EXPECT_EQ(req.param("a"), "y");
}

TEST(Router, WildcardTakesTheRestOfThePath) {
  request req;
  ASSERT_TRUE(router::match_for_test("/files/*", "/files/a/b/c.txt", req));
  EXPECT_EQ(req.param("*"), "a/b/c.txt");
  ASSERT_TRUE(router::match_for_test("/files/*", "/files", req));
  EXPECT_EQ(req.param("*"), "");
  EXPECT_TRUE(router::match_for_test("*", "/anything/at/all", req));
}

TEST(Router, QueryStringIsParsedAndDecoded) {
  request req;
  req.set_for_test("GET", "/s?q=a+b%21&empty&x=1&x=2#frag");
  EXPECT_EQ(req.path(), "/s");
  EXPECT_EQ(req.query_string(), "q=a+b%21&empty&x=1&x=2");
  EXPECT_EQ(req.query("q"), "a b!");
  EXPECT_EQ(req.query("empty"), "");
  EXPECT_EQ(req.query("x"), "1");
  EXPECT_FALSE(req.query("missing"));
}

TEST(Router, HeadersAreCaseInsensitive) {
  request req;
  req.set_for_test("GET", "/", {{"Content-Type", "text/plain"}});
  EXPECT_EQ(req.get("content-type"), "text/plain");
  EXPECT_FALSE(req.get("accept"));
}

TEST(Router, PercentDecodeKeepsMalformedEscapes) {
  EXPECT_EQ(percent_decode("%41%4a%zz%4"), "AJ%zz%4");
  EXPECT_EQ(percent_decode("a+b", true), "a b");
  EXPECT_EQ(percent_decode("a+b", false), "a+b");
}

TEST(Router, RoutesByMethodAndFirstMatchWins) {
  router r;
  r.get("/x", [](auto&, auto& res) { res.send("get"); });
  r.post("/x", [](auto&, auto& res) { res.send("post"); });
  r.all("/x", [](auto&, auto& res) { res.send("all"); });
  r.get("/x", [](auto&, auto& res) { res.send("shadowed"); });
  call c;
  EXPECT_EQ(body_of(c.run(r, "GET", "/x")), "get");
  EXPECT_EQ(body_of(c.run(r, "POST", "/x")), "post");
  EXPECT_EQ(body_of(c.run(r, "PUT", "/x")), "all");
}

TEST(Router, UnknownPathIs404AndWrongMethodIs405WithAllow) {
  router r;
  r.get("/hello/:name?", [](auto&, auto& res) { res.send("hi"); });
  r.put("/hello/:name?", [](auto&, auto& res) { res.send("put"); });
  call c;
  EXPECT_EQ(c.run(r, "GET", "/nope").substr(0, 22), "HTTP/1.1 404 Not Found");
  const std::string& raw = c.run(r, "DELETE", "/hello/x");
  EXPECT_EQ(raw.substr(0, 31), "HTTP/1.1 405 Method Not Allowed");
  EXPECT_NE(raw.find("Allow: GET, PUT, HEAD\r\n"), std::string::npos) << raw;
}

TEST(Router, GetRouteAnswersHeadWithoutBody) {
  router r;
  r.get("/", [](auto&, auto& res) { res.send("hello"); });
  call c;
  const std::string& raw = c.run(r, "HEAD", "/");
  EXPECT_NE(raw.find("Content-Length: 5\r\n"), std::string::npos);
  EXPECT_EQ(body_of(raw), "");
}

TEST(Router, MiddlewareRunsInOrderAndNextContinues) {
  router r;
  std::string trace;
  r.use([&](auto&, auto&, next_fn next) {
    trace += "1";
    next();
    trace += "3";
  });
  r.use("/api", [&](auto&, auto& res, next_fn next) {
    res.set("X-Api", "yes");
    next();
  });
  r.get("/api/v", [&](auto&, auto& res) {
    trace += "2";
    res.send("v");
  });
  call c;
  const std::string& raw = c.run(r, "GET", "/api/v");
  EXPECT_EQ(trace, "123");
  EXPECT_NE(raw.find("X-Api: yes\r\n"), std::string::npos);
  trace.clear();
  const std::string& other = c.run(r, "GET", "/apix");
  EXPECT_EQ(other.find("X-Api"), std::string::npos);  // "/api" is a path prefix, not a string prefix
  EXPECT_EQ(other.substr(0, 12), "HTTP/1.1 404");
}

TEST(Router, MiddlewareMayAnswerWithoutCallingNext) {
  router r;
  r.use([](auto&, auto& res, next_fn) { res.status(401).send("no"); });
  r.get("/", [](auto&, auto& res) { res.send("yes"); });
  call c;
  EXPECT_EQ(c.run(r, "GET", "/").substr(0, 12), "HTTP/1.1 401");
}

TEST(Router, HandlerExceptionsReachTheCaller) {
  router r;
  r.get("/", [](auto&, auto&) -> void { throw std::runtime_error("x"); });
  call c;
  c.req.set_for_test("GET", "/");
  c.res.reset_for_test();
  EXPECT_THROW(r.handle(c.req, c.res), std::runtime_error);
}

TEST(Response, SendFramesWithContentLengthAndDefaultType) {
  response res;
  res.reset_for_test();
  res.status(201).set("X-A", "1").set("x-a", "2").send("abc");
  const std::string& raw = res.raw_for_test();
  EXPECT_EQ(raw.substr(0, 22), "HTTP/1.1 201 Created\r\n");
  EXPECT_NE(raw.find("\r\nDate: "), std::string::npos);
  EXPECT_NE(raw.find("X-A: 2\r\n"), std::string::npos);  // set() replaces
  EXPECT_EQ(raw.find("X-A: 1"), std::string::npos);
  EXPECT_NE(raw.find("Content-Type: text/html; charset=utf-8\r\n"), std::string::npos);
  EXPECT_NE(raw.find("Content-Length: 3\r\n"), std::string::npos);
  EXPECT_EQ(body_of(raw), "abc");
  EXPECT_TRUE(res.finished());
}

TEST(Response, WriteStreamsChunksAndEndTerminates) {
  response res;
  res.reset_for_test();
  res.write("ab");
  res.write("");
  res.end("cde");
  const std::string& raw = res.raw_for_test();
  EXPECT_NE(raw.find("Transfer-Encoding: chunked\r\n"), std::string::npos);
  EXPECT_EQ(body_of(raw), "2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n");
}

TEST(Response, DeclaredLengthStreamsWithoutChunking) {
  response res;
  res.reset_for_test();
  res.set("Content-Length", "4");
  res.write("ab");
  res.end("cd");
  const std::string& raw = res.raw_for_test();
  EXPECT_EQ(raw.find("chunked"), std::string::npos);
  EXPECT_EQ(body_of(raw), "abcd");
}

TEST(Response, JsonSetsTypeAndHeaderInjectionIsRefused) {
  response res;
  res.reset_for_test(false, false);
  res.set("X-Evil", "a\r\nSet-Cookie: x").json({{"a", 1}});
  const std::string& raw = res.raw_for_test();
  EXPECT_EQ(raw.find("Set-Cookie"), std::string::npos);
  EXPECT_NE(raw.find("Content-Type: application/json; charset=utf-8\r\n"), std::string::npos);
  EXPECT_NE(raw.find("Connection: close\r\n"), std::string::npos);
  EXPECT_EQ(body_of(raw), R"({"a":1})");
}

TEST(Response, NoContentHasNoBodyOrLength) {
  response res;
  res.reset_for_test();
  res.status(204).send("ignored");
  const std::string& raw = res.raw_for_test();
  EXPECT_EQ(raw.find("Content-Length"), std::string::npos);
  EXPECT_EQ(body_of(raw), "");
}

TEST(Router, AbsoluteFormTargetRoutesByItsPath) {
  // RFC 9112 3.2.2: a server must accept the absolute-form (what a client
  // sends to a proxy); Express routes it by its path (parseurl).
  router r;
  r.get("/hello/:name", [](request& req, response& res) {
    res.send(std::string(req.path()) + " " + std::string(req.param("name")) + " " + req.query("x").value_or("-"));
  });
  call c;
  EXPECT_EQ(body_of(c.run(r, "GET", "http://example.com/hello/ann?x=1")), "/hello/ann ann 1");
  EXPECT_EQ(c.req.url(), "http://example.com/hello/ann?x=1");  // url() stays as sent (as Node's req.url)
  EXPECT_EQ(body_of(c.run(r, "GET", "HTTP://example.com:8080/hello/bob")), "/hello/bob bob -");
  c.req.set_for_test("GET", "http://example.com");
  EXPECT_EQ(c.req.path(), "/");
  c.req.set_for_test("GET", "http://example.com?x=2");
  EXPECT_EQ(c.req.path(), "/");
  EXPECT_EQ(c.req.query("x"), "2");
}

TEST(Response, SendFramesTheBodyItSendsWhateverContentLengthWasSet) {
  // As Express's res.send(), which sets Content-Length itself: a stale
  // length set earlier must not frame the body wrongly (the rest of it
  // would be read as the next response on a keep-alive connection).
  response res;
  res.reset_for_test();
  res.set("Content-Length", "3").send("hello");
  const std::string& raw = res.raw_for_test();
  EXPECT_NE(raw.find("Content-Length: 5\r\n"), std::string::npos) << raw;
  EXPECT_EQ(raw.find("Content-Length: 3"), std::string::npos) << raw;
  EXPECT_EQ(body_of(raw), "hello");
  res.reset_for_test();
  res.set("Content-Length", "100").json({{"a", 1}});
  EXPECT_NE(res.raw_for_test().find("Content-Length: 7\r\n"), std::string::npos) << res.raw_for_test();
  res.reset_for_test();
  res.set("Content-Length", "1").end("abc");
  EXPECT_NE(res.raw_for_test().find("Content-Length: 3\r\n"), std::string::npos) << res.raw_for_test();
  // HEAD: the length of what a GET would get is what the handler says.
  res.reset_for_test(true);
  res.set("Content-Length", "1234").end();
  EXPECT_NE(res.raw_for_test().find("Content-Length: 1234\r\n"), std::string::npos) << res.raw_for_test();
  EXPECT_EQ(body_of(res.raw_for_test()), "");
}

TEST(Response, StreamedBodyNeverExceedsTheDeclaredLength) {
  // More bytes than the declared Content-Length would be read as the next
  // response; fewer leave the client waiting: the extra is dropped, and a
  // short body closes the connection (the client sees it cut short).
  response res;
  res.reset_for_test();
  res.set("Content-Length", "4");
  res.write("abc");
  res.end("def");
  EXPECT_EQ(body_of(res.raw_for_test()), "abcd");
  res.reset_for_test();
  res.set("Content-Length", "4");
  res.write("ab");
  res.end();
  EXPECT_EQ(body_of(res.raw_for_test()), "ab");
}

TEST(Router, RepeatedQueryKeysAreAllAvailable) {
  // Express's req.query gives ['1', '2'] for ?x=1&x=2; query() keeps the first.
  request req;
  req.set_for_test("GET", "/s?x=1&y=0&x=2+3&x&%78=%34");
  EXPECT_EQ(req.query("x"), "1");
  EXPECT_EQ(req.query_all("x"), (std::vector<std::string>{"1", "2 3", "", "4"}));
  EXPECT_EQ(req.query_all("y"), (std::vector<std::string>{"0"}));
  EXPECT_TRUE(req.query_all("missing").empty());
}

TEST(Router, LiteralSegmentsAndPrefixesMatchCaseInsensitively) {
  // Express's default (caseSensitive: false): /Hello reaches app.get('/hello').
  router r;
  std::string trace;
  r.use("/api", [&](auto&, auto&, next_fn next) {
    trace += "mw ";
    next();
  });
  r.get("/api/users/:id", [](request& req, response& res) { res.send(std::string(req.param("id"))); });
  call c;
  EXPECT_EQ(body_of(c.run(r, "GET", "/API/Users/Ann")), "Ann");  // parameters keep their case
  EXPECT_EQ(trace, "mw ");
}

TEST(Router, OptionsIsAnsweredWithAllowWhenNoRouteHandlesIt) {
  // Express answers OPTIONS itself for a path that has routes: 200, Allow.
  router r;
  r.get("/x", [](auto&, auto& res) { res.send("get"); });
  r.post("/x", [](auto&, auto& res) { res.send("post"); });
  call c;
  const std::string& raw = c.run(r, "OPTIONS", "/x");
  EXPECT_EQ(raw.substr(0, 15), "HTTP/1.1 200 OK") << raw;
  EXPECT_NE(raw.find("Allow: GET, POST, HEAD\r\n"), std::string::npos) << raw;
  EXPECT_EQ(c.run(r, "OPTIONS", "/nope").substr(0, 22), "HTTP/1.1 404 Not Found");
  // A route for OPTIONS still wins.
  r.add("OPTIONS", "/x", [](auto&, auto& res) { res.status(204).end(); });
  EXPECT_EQ(c.run(r, "OPTIONS", "/x").substr(0, 12), "HTTP/1.1 204");
}

TEST(Router, BaseUrlIsThePartTheMiddlewaresPrefixMatched) {
  router r;
  std::string seen;
  r.use([&](auto& req, auto&, next_fn next) {
    seen += "[" + std::string(req.base_url()) + "]";
    next();
  });
  r.use("/Static/", [&](auto& req, auto&, next_fn next) {
    seen += "[" + std::string(req.base_url()) + "]";
    next();
  });
  r.get("/static/:f", [&](auto& req, auto& res) {
    seen += "[" + std::string(req.base_url()) + "]";
    res.send("ok");
  });
  call c;
  c.run(r, "GET", "/STATIC/app.js?v=1");
  EXPECT_EQ(seen, "[][/STATIC][]");  // the request's own spelling; none in a route
}

TEST(Static, MimeTypesComeFromTheExtension) {
  EXPECT_EQ(corral::http::mime_type("index.html"), "text/html; charset=utf-8");
  EXPECT_EQ(corral::http::mime_type("/a/b/APP.JS"), "text/javascript; charset=utf-8");
  EXPECT_EQ(corral::http::mime_type("x.woff2"), "font/woff2");
  EXPECT_EQ(corral::http::mime_type("x.tar.gz"), "application/gzip");
  EXPECT_EQ(corral::http::mime_type("Makefile"), "application/octet-stream");
  EXPECT_EQ(corral::http::mime_type(".bashrc"), "application/octet-stream");
  EXPECT_EQ(corral::http::mime_type("dir.d/noext"), "application/octet-stream");
}

TEST(Request, IpIsThePeerUnlessProxiesAreTrustedThenTheEntryThatManyHopsAway) {
  request req;
  auto peer = [](std::string host) {
    corral::net::address a;
    a.host = std::move(host);
    a.port = 40000;
    return a;
  };
  // Two X-Forwarded-For lines make one list, in order.
  req.set_for_test("GET", "/", {{"X-Forwarded-For", "6.6.6.6, 1.1.1.1"}, {"x-forwarded-for", " 2.2.2.2 "}});
  req.set_remote_for_test(peer("10.0.0.1"));
  EXPECT_EQ(req.ip(), "10.0.0.1");  // (trusting no proxy: the header could say anything)
  EXPECT_EQ(req.remote_address().port, 40000);
  req.set_remote_for_test(peer("10.0.0.1"), 1);
  EXPECT_EQ(req.ip(), "2.2.2.2");  // what the one trusted proxy saw
  req.set_remote_for_test(peer("10.0.0.1"), 2);
  EXPECT_EQ(req.ip(), "1.1.1.1");
  req.set_remote_for_test(peer("10.0.0.1"), 9);
  EXPECT_EQ(req.ip(), "6.6.6.6");  // (fewer entries than hops: the left-most)
  req.set_for_test("GET", "/");
  EXPECT_EQ(req.ip(), "10.0.0.1");  // (no header: the peer)
  request fresh;
  fresh.set_for_test("GET", "/");
  EXPECT_EQ(fresh.ip(), "");  // (no socket)
  EXPECT_EQ(fresh.remote_address().host, "");
}

TEST(Request, HostnameAndProtocolComeFromTheProxyOnlyWhenTrusted) {
  request req;
  req.set_for_test("GET", "/", {{"Host", "example.com:8080"}, {"X-Forwarded-Host", "public.example, other"},
                                {"X-Forwarded-Proto", "https"}});
  EXPECT_EQ(req.hostname(), "example.com");
  EXPECT_EQ(req.protocol(), "http");
  req.set_remote_for_test({}, 1);
  EXPECT_EQ(req.hostname(), "public.example");
  EXPECT_EQ(req.protocol(), "https");
  req.set_for_test("GET", "/", {{"Host", "[::1]:3000"}});
  EXPECT_EQ(req.hostname(), "[::1]");
  EXPECT_EQ(req.protocol(), "http");
  req.set_for_test("GET", "/");
  EXPECT_EQ(req.hostname(), "");
}

TEST(Response, RedirectSetsLocationAndStatusAndSaysWhere) {
  response res;
  res.reset_for_test();
  res.redirect("/login?next=%2F");
  const std::string& raw = res.raw_for_test();
  EXPECT_EQ(raw.substr(0, 20), "HTTP/1.1 302 Found\r\n") << raw;
  EXPECT_NE(raw.find("Location: /login?next=%2F\r\n"), std::string::npos) << raw;
  EXPECT_NE(raw.find("Content-Type: text/plain; charset=utf-8\r\n"), std::string::npos) << raw;
  EXPECT_EQ(body_of(raw), "Found. Redirecting to /login?next=%2F");
  EXPECT_TRUE(res.finished());
  response moved;
  moved.reset_for_test();
  moved.redirect("https://example.com/", 301);
  EXPECT_EQ(moved.raw_for_test().substr(0, 32), "HTTP/1.1 301 Moved Permanently\r\n");
  // Bytes a URL cannot hold are percent-encoded (Express's encodeurl):
  // a CR LF cannot make a header of its own, and UTF-8 goes as %XX.
  response split;
  split.reset_for_test();
  split.redirect("/a\r\nSet-Cookie: x=1/\xc3\xa9?q=%20&r=100%&s=%zz%4");
  EXPECT_NE(split.raw_for_test().find("Location: /a%0D%0ASet-Cookie:%20x=1/%C3%A9?q=%20&r=100%25&s=%25zz%254\r\n"),
            std::string::npos)
      << split.raw_for_test();
  EXPECT_EQ(split.raw_for_test().find("\r\nSet-Cookie"), std::string::npos) << split.raw_for_test();
}

TEST(Request, CookiesAreFoundByNameUnquotedAndDecoded) {
  request req;
  req.set_for_test("GET", "/", {{"Cookie", "a=1; session=abc%20def; q=\"quoted, value\""}, {"cookie", "late=2; a=9"}});
  EXPECT_EQ(req.cookie("a"), "1");  // (the first one wins)
  EXPECT_EQ(req.cookie("session"), "abc def");
  EXPECT_EQ(req.cookie("q"), "quoted, value");
  EXPECT_EQ(req.cookie("late"), "2");
  EXPECT_EQ(req.cookie("missing"), std::nullopt);
  EXPECT_EQ(req.cookie("sess"), std::nullopt);
}

TEST(Request, IsMatchesTheMediaTypeByFullNameWildcardSuffixOrShortName) {
  request req;
  req.set_for_test("POST", "/", {{"Content-Type", "Application/JSON; charset=utf-8"}});
  EXPECT_TRUE(req.is("application/json"));
  EXPECT_TRUE(req.is("json"));
  EXPECT_TRUE(req.is("application/*"));
  EXPECT_TRUE(req.is("*/*"));
  EXPECT_FALSE(req.is("text/*"));
  EXPECT_FALSE(req.is("urlencoded"));
  req.set_for_test("POST", "/", {{"Content-Type", "application/vnd.api+json"}});
  EXPECT_TRUE(req.is("json"));
  EXPECT_TRUE(req.is("+json"));
  EXPECT_FALSE(req.is("application/json"));
  req.set_for_test("POST", "/", {{"Content-Type", "text/html"}});
  EXPECT_TRUE(req.is("html"));
  EXPECT_TRUE(req.is("text/*"));
  EXPECT_FALSE(req.is("txt"));
  EXPECT_FALSE(req.is("nosuchextension"));
  req.set_for_test("POST", "/", {{"Content-Type", "multipart/form-data; boundary=x"}});
  EXPECT_TRUE(req.is("multipart"));
  req.set_for_test("POST", "/", {{"Content-Type", "json"}});  // no subtype: no media type
  EXPECT_FALSE(req.is("json"));
  req.set_for_test("POST", "/");
  EXPECT_FALSE(req.is("*/*"));
}

TEST(Request, JsonAndFormBodies) {
  request req;
  req.set_for_test("POST", "/", {{"Content-Type", "application/json"}}, R"([1, "two", {"x": null}])");
  ASSERT_TRUE(req.json());
  EXPECT_EQ(req.json()->dump(), R"([1,"two",{"x":null}])");
  req.set_for_test("POST", "/", {{"Content-Type", "application/json"}}, "{\"a\":");
  try {
    (void)req.json();
    ADD_FAILURE() << "no throw";
  } catch (const status_error& e) {
    EXPECT_EQ(e.status(), 400);
    EXPECT_NE(std::string(e.what()).find("invalid JSON in the request body: parse error at line 1, column 6"),
              std::string::npos)
        << e.what();
  }
  // A number no double holds is a 400 too, not a 500.
  req.set_for_test("POST", "/", {{"Content-Type", "application/json"}}, R"({"a": 1e999})");
  try {
    (void)req.json();
    ADD_FAILURE() << "no throw";
  } catch (const status_error& e) {
    EXPECT_EQ(e.status(), 400);
    EXPECT_NE(std::string(e.what()).find("invalid JSON in the request body: "), std::string::npos) << e.what();
  }
  req.set_for_test("POST", "/", {{"Content-Type", "text/plain"}}, "{}");
  EXPECT_EQ(req.json(), std::nullopt);
  req.set_for_test("POST", "/", {{"Content-Type", "application/x-www-form-urlencoded"}}, "a=1&b=x+y&a=%32&c");
  EXPECT_EQ(req.form("a"), "1");
  EXPECT_EQ(req.form_all("a"), (std::vector<std::string>{"1", "2"}));
  EXPECT_EQ(req.form("b"), "x y");
  EXPECT_EQ(req.form("c"), "");
  EXPECT_EQ(req.form("d"), std::nullopt);
  EXPECT_EQ(status_error(302, "not an error status").status(), 500);
}

namespace {

std::string header_of(const std::string& raw, const std::string& name) {
  std::string head = raw.substr(0, raw.find("\r\n\r\n") + 2);
  auto at = head.find("\r\n" + name + ": ");
  if (at == std::string::npos) return "(none)";
  at += name.size() + 4;
  return head.substr(at, head.find("\r\n", at) - at);
}

std::string gunzip(const std::string& in) {
  z_stream z{};
  EXPECT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
  std::string out(1 << 20, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  int r = inflate(&z, Z_FINISH);
  out.resize(out.size() - z.avail_out);
  inflateEnd(&z);
  return r == Z_STREAM_END && z.avail_in == 0 ? out : "(not one whole gzip member)";
}

}  // namespace

TEST(Compression, ATextBodyForAGzipClientIsGzippedWithItsOwnLengthAndAWeakTag) {
  std::string text;
  for (int i = 0; i < 200; ++i) text += "line " + std::to_string(i) + " of some text\n";
  router r;
  r.use(compression());
  r.get("/text", [&](request&, response& res) { res.set("ETag", "\"v1\"").send(text); });
  r.get("/json", [&](request&, response& res) { res.json({{"text", text}}); });
  r.get("/small", [](request&, response& res) { res.send("tiny"); });
  r.get("/png", [&](request&, response& res) { res.set("Content-Type", "image/png").send(text); });
  r.get("/encoded", [&](request&, response& res) { res.set("Content-Encoding", "br").send(text); });
  r.get("/no-transform", [&](request&, response& res) { res.set("Cache-Control", "public, no-transform").send(text); });
  r.get("/empty", [&](request&, response& res) { res.status(204).send(text); });

  call c;
  const std::string& raw = c.run(r, "GET", "/text", {{"Accept-Encoding", "gzip, deflate, br"}});
  EXPECT_EQ(header_of(raw, "Content-Encoding"), "gzip");
  EXPECT_EQ(header_of(raw, "Vary"), "Accept-Encoding");
  EXPECT_EQ(header_of(raw, "ETag"), "W/\"v1\"");
  std::string body = body_of(raw);
  EXPECT_EQ(header_of(raw, "Content-Length"), std::to_string(body.size()));
  EXPECT_LT(body.size(), text.size() / 3);
  EXPECT_EQ(gunzip(body), text);

  // The same answer, as it is, to a client that does not take gzip; it still varies.
  for (auto ae : {std::string("identity"), std::string("gzip;q=0"), std::string("br")}) {
    call plain;
    const std::string& p = plain.run(r, "GET", "/text", {{"Accept-Encoding", ae}});
    EXPECT_EQ(header_of(p, "Content-Encoding"), "(none)") << ae;
    EXPECT_EQ(header_of(p, "Vary"), "Accept-Encoding") << ae;
    EXPECT_EQ(header_of(p, "ETag"), "\"v1\"") << ae;
    EXPECT_EQ(body_of(p), text) << ae;
  }
  call x;
  EXPECT_EQ(gunzip(body_of(x.run(r, "GET", "/json", {{"Accept-Encoding", "x-gzip"}}))), nlohmann::json({{"text", text}}).dump());

  // HEAD: the length a GET gets, no body.
  call head;
  const std::string& h = head.run(r, "HEAD", "/text", {{"Accept-Encoding", "gzip"}});
  EXPECT_EQ(header_of(h, "Content-Length"), std::to_string(body.size()));
  EXPECT_EQ(body_of(h), "");

  // Left alone, and no Vary: too small, not text, encoded already,
  // no-transform, bodiless.
  for (auto path : {"/small", "/png", "/encoded", "/no-transform", "/empty"}) {
    call left;
    const std::string& l = left.run(r, "GET", path, {{"Accept-Encoding", "gzip"}});
    EXPECT_EQ(header_of(l, "Content-Encoding"), std::string(path) == "/encoded" ? "br" : "(none)") << path;
    EXPECT_EQ(header_of(l, "Vary"), "(none)") << path;
  }
  EXPECT_THROW(compression({.level = 0}), std::invalid_argument);
  EXPECT_THROW(compression({.level = 10}), std::invalid_argument);
}

TEST(Compression, OnlyTheHandlersAfterTheMiddlewareCompress) {
  std::string text(4096, 'a');
  router r;
  r.get("/before", [&](request&, response& res) { res.send(text); });
  r.use("/gz", compression({.threshold = 10, .level = 1}));
  r.get("/gz/after", [&](request&, response& res) { res.send(text); });
  response res;
  request req;
  req.set_for_test("GET", "/gz/after", {{"Accept-Encoding", "gzip"}});
  res.reset_for_test();
  r.handle(req, res);
  EXPECT_EQ(header_of(res.raw_for_test(), "Content-Encoding"), "gzip");
  EXPECT_EQ(gunzip(body_of(res.raw_for_test())), text);
  // The same response object, reused for the connection's next request.
  req.set_for_test("GET", "/before", {{"Accept-Encoding", "gzip"}});
  res.reset_for_test();
  r.handle(req, res);
  EXPECT_EQ(header_of(res.raw_for_test(), "Content-Encoding"), "(none)");
  EXPECT_EQ(body_of(res.raw_for_test()), text);
}

TEST(Response, CookiesAreSetLinesOfTheirOwnAndCleared) {
  response res;
  res.reset_for_test();
  cookie_options o;
  o.max_age = std::chrono::hours(1);
  o.http_only = true;
  o.secure = true;
  o.same_site = "Lax";
  res.cookie("session", "a b;c", o).cookie("theme", "dark").clear_cookie("old");
  // What could not be sent as given throws (as Express's): a handler's
  // exception is a 500, not a cookie without the Path or SameSite meant.
  EXPECT_THROW(res.cookie("bad name", "x"), std::invalid_argument);
  cookie_options bad_path;
  bad_path.path = "/; Domain=evil.example";
  EXPECT_THROW(res.cookie("x", "1", bad_path), std::invalid_argument);
  cookie_options bad_site;
  bad_site.same_site = "Sometimes";
  EXPECT_THROW(res.cookie("x", "1", bad_site), std::invalid_argument);
  cookie_options forever;
  forever.max_age = std::chrono::seconds(std::numeric_limits<long long>::max());
  res.cookie("long", "1", forever);  // (clamped to what a date can say)
  res.append("Link", "</a.css>; rel=preload").append("Link", "</b.js>; rel=preload");
  res.set("Content-Type", "text/plain").append("Content-Type", "text/html");  // (one type: append replaces it)
  res.send("ok");
  const std::string& raw = res.raw_for_test();
  auto at = raw.find("Set-Cookie: session=a%20b%3Bc; Max-Age=3600; Expires=");
  ASSERT_NE(at, std::string::npos) << raw;
  std::string line = raw.substr(at, raw.find("\r\n", at) - at);
  EXPECT_NE(line.find(" GMT; Path=/; Secure; HttpOnly; SameSite=Lax"), std::string::npos) << line;
  EXPECT_NE(raw.find("Set-Cookie: theme=dark; Path=/\r\n"), std::string::npos) << raw;
  EXPECT_NE(raw.find("Set-Cookie: old=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/\r\n"), std::string::npos) << raw;
  EXPECT_EQ(raw.find("bad name"), std::string::npos) << raw;
  EXPECT_EQ(raw.find("evil"), std::string::npos) << raw;
  EXPECT_NE(raw.find("Set-Cookie: long=1; Max-Age=12648960000; Expires="), std::string::npos) << raw;
  EXPECT_NE(raw.find("Link: </a.css>; rel=preload\r\nLink: </b.js>; rel=preload\r\n"), std::string::npos) << raw;
  EXPECT_EQ(raw.find("text/plain"), std::string::npos) << raw;
  EXPECT_NE(raw.find("Content-Type: text/html\r\n"), std::string::npos) << raw;
  // What was set comes back through request::cookie().
  request req;
  req.set_for_test("GET", "/", {{"Cookie", "session=a%20b%3Bc"}});
  EXPECT_EQ(req.cookie("session"), "a b;c");
}

TEST(Response, VaryAddsAFieldOnceAndKeepsTheOthers) {
  response res;
  res.reset_for_test();
  res.vary("Origin").vary("Accept-Encoding").vary("accept-encoding").vary("Origin");
  EXPECT_EQ(res.get("vary"), "Origin, Accept-Encoding");
  res.set("Vary", "*");
  res.vary("Cookie");
  EXPECT_EQ(res.get("Vary"), "*");
  EXPECT_EQ(res.get("X-None"), std::nullopt);
}
