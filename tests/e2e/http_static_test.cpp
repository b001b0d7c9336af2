// serve_static on real sockets, through examples/static_server (a cluster
// worker serving a temp directory): bytes, types, 304s, ranges, index
// files and redirects, paths that must not escape the root, and a large
// file to a client that reads slowly (back-pressure: the server's memory
// stays bounded and every byte arrives).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <stdexcept>

#include "corral/http.hpp"
#include "http_client.hpp"
#include "support/process.hpp"

using namespace support;
using http_test::client;
using http_test::rss_kib;
using http_test::wait_settled;

namespace {

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string random_bytes(std::size_t n) {
  std::mt19937 rng(42);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

struct site {
  site() {
    ::mkdir(dir.file("www").c_str(), 0755);
    ::mkdir(dir.file("www/docs").c_str(), 0755);
    ::mkdir(dir.file("www/.git").c_str(), 0755);
    write_file(dir.file("www/index.html"), "<h1>home</h1>\n");
    write_file(dir.file("www/app.js"), "console.log(1)\n");
    write_file(dir.file("www/docs/index.html"), "<h1>docs</h1>\n");
    write_file(dir.file("www/.env"), "SECRET=1\n");
    write_file(dir.file("www/.git/config"), "[core]\n");
    write_file(dir.file("www/empty.txt"), "");
    write_file(dir.file("www/a b.txt"), "spaced\n");
    write_file(dir.file("secret.txt"), "outside the root\n");
    big = random_bytes(16 * 1024 * 1024 + 123);
    write_file(dir.file("www/big.bin"), big);
    proc = std::make_unique<child>(std::vector<std::string>{bin("examples/static_server"), dir.file("www"), "1"},
                                   spawn_options{.env = {{"PORT", "0"}}});
    if (!proc->wait_out(" on port ", 10s)) return;
    std::smatch m;
    std::string out = proc->out();
    if (std::regex_search(out, m, std::regex(R"(Worker (\d+) serving .* on port (\d+))"))) {
      worker = std::stoi(m[1]);
      port = std::stoi(m[2]);
    }
  }
  std::optional<http_test::response> get(const std::string& target, const std::string& extra = "",
                                         const std::string& method = "GET") {
    client c(port);
    if (!c.ok() || !c.send(method + " " + target + " HTTP/1.1\r\nHost: t\r\n" + extra + "\r\n")) return std::nullopt;
    return c.read(method == "HEAD");
  }
  temp_dir dir;
  std::string big;
  std::unique_ptr<child> proc;
  int port = 0;
  pid_t worker = 0;
};

// What `pid`'s descriptors point at, for a failure's message.
std::string fd_list(pid_t pid) {
  std::string out;
  std::error_code ec;
  for (auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec))
    out += e.path().filename().string() + "->" + std::filesystem::read_symlink(e.path(), ec).string() + " ";
  return out;
}

}  // namespace

TEST(HttpStatic, ServesFilesWithTheirTypeLengthAndValidators) {
  site s;
  ASSERT_GT(s.port, 0) << s.proc->out() << s.proc->err();
  auto r = s.get("/app.js");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "console.log(1)\n");
  EXPECT_EQ(r->header("content-type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(r->header("content-length"), "15");
  EXPECT_EQ(r->header("accept-ranges"), "bytes");
  EXPECT_EQ(r->header("cache-control"), "public, max-age=0");
  EXPECT_TRUE(std::regex_match(r->header("etag"), std::regex(R"("[0-9a-f]+-[0-9a-f]+")"))) << r->header("etag");
  EXPECT_TRUE(std::regex_match(r->header("last-modified"),
                               std::regex(R"([A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT)")))
      << r->header("last-modified");

  auto head = s.get("/app.js", "", "HEAD");
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->header("content-length"), "15");
  EXPECT_EQ(head->header("etag"), r->header("etag"));

  auto empty = s.get("/empty.txt");
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->status, 200);
  EXPECT_EQ(empty->header("content-length"), "0");
  EXPECT_EQ(empty->header("content-type"), "text/plain; charset=utf-8");

  auto spaced = s.get("/a%20b.txt");
  ASSERT_TRUE(spaced);
  EXPECT_EQ(spaced->status, 200);
  EXPECT_EQ(spaced->body, "spaced\n");
}

TEST(HttpStatic, IndexFilesAndTheDirectoryRedirect) {
  site s;
  ASSERT_GT(s.port, 0) << s.proc->out() << s.proc->err();
  auto root = s.get("/");
  ASSERT_TRUE(root);
  EXPECT_EQ(root->status, 200);
  EXPECT_EQ(root->body, "<h1>home</h1>\n");
  EXPECT_EQ(root->header("content-type"), "text/html; charset=utf-8");

  auto redirect = s.get("/docs?x=1");
  ASSERT_TRUE(redirect);
  EXPECT_EQ(redirect->status, 301);
  EXPECT_EQ(redirect->header("location"), "/docs/?x=1");

  auto offsite = s.get("//docs");  // not "//docs/": another host's URL
  ASSERT_TRUE(offsite);
  EXPECT_EQ(offsite->status, 301);
  EXPECT_EQ(offsite->header("location"), "/docs/");

  auto docs = s.get("/docs/");
  ASSERT_TRUE(docs);
  EXPECT_EQ(docs->status, 200);
  EXPECT_EQ(docs->body, "<h1>docs</h1>\n");
}

TEST(HttpStatic, ConditionalRequestsGet304) {
  site s;
  ASSERT_GT(s.port, 0) << s.proc->out() << s.proc->err();
  auto first = s.get("/app.js");
  ASSERT_TRUE(first);
  std::string etag = first->header("etag"), modified = first->header("last-modified");
  ASSERT_FALSE(etag.empty());

  auto by_etag = s.get("/app.js", "If-None-Match: \"other\", " + etag + "\r\n");
  ASSERT_TRUE(by_etag);
  EXPECT_EQ(by_etag->status, 304);
  EXPECT_EQ(by_etag->header("etag"), etag);

  auto by_date = s.get("/app.js", "If-Modified-Since: " + modified + "\r\n");
  ASSERT_TRUE(by_date);
  EXPECT_EQ(by_date->status, 304);

  // If-None-Match decides when present, even with a matching date.
  auto stale = s.get("/app.js", "If-None-Match: \"other\"\r\nIf-Modified-Since: " + modified + "\r\n");
  ASSERT_TRUE(stale);
  EXPECT_EQ(stale->status, 200);
  EXPECT_EQ(stale->body, "console.log(1)\n");

  auto older = s.get("/app.js", "If-Modified-Since: Thu, 01 Jan 1998 00:00:00 GMT\r\n");
  ASSERT_TRUE(older);
  EXPECT_EQ(older->status, 200);
}

TEST(HttpStatic, OneByteRangeGets206AndOnePastTheEnd416) {
  site s;
  ASSERT_GT(s.port, 0) << s.proc->out() << s.proc->err();
  const std::string size = std::to_string(s.big.size());
  auto mid = s.get("/big.bin", "Range: bytes=1000-1999\r\n");
  ASSERT_TRUE(mid);
  EXPECT_EQ(mid->status, 206);
  EXPECT_EQ(mid->header("content-range"), "bytes 1000-1999/" + size);
  EXPECT_EQ(mid->body, s.big.substr(1000, 1000));

  auto tail = s.get("/big.bin", "Range: bytes=-10\r\n");
  ASSERT_TRUE(tail);
  EXPECT_EQ(tail->status, 206);
  EXPECT_EQ(tail->body, s.big.substr(s.big.size() - 10));

  auto open_ended = s.get("/big.bin", "Range: bytes=16777216-\r\n");
  ASSERT_TRUE(open_ended);
  EXPECT_EQ(open_ended->status, 206);
  EXPECT_EQ(open_ended->body, s.big.substr(16777216));

  auto past = s.get("/big.bin", "Range: bytes=" + size + "-\r\n");
  ASSERT_TRUE(past);
  EXPECT_EQ(past->status, 416);
  EXPECT_EQ(past->header("content-range"), "bytes */" + size);

  // Several ranges, or an If-Range for another version: the whole file.
  auto several = s.get("/app.js", "Range: bytes=0-1,4-5\r\n");
  ASSERT_TRUE(several);
  EXPECT_EQ(several->status, 200);
  EXPECT_EQ(several->body, "console.log(1)\n");
  auto changed = s.get("/app.js", "Range: bytes=0-1\r\nIf-Range: \"not-it\"\r\n");
  ASSERT_TRUE(changed);
  EXPECT_EQ(changed->status, 200);
  auto same = s.get("/app.js");
  ASSERT_TRUE(same);
  auto resumed = s.get("/app.js", "Range: bytes=0-6\r\nIf-Range: " + same->header("etag") + "\r\n");
  ASSERT_TRUE(resumed);
  EXPECT_EQ(resumed->status, 206);
  EXPECT_EQ(resumed->body, "console");
}

TEST(HttpStatic, NothingOutsideTheRootNorDotFilesIsServed) {
  site s;
  ASSERT_GT(s.port, 0) << s.proc->out() << s.proc->err();
  for (std::string target : {"/../secret.txt", "/%2e%2e/secret.txt", "/docs/..%2f..%2fsecret.txt", "/docs/%2E%2E/%2E%2E/secret.txt", "/docs/../.env"}) {
    auto r = s.get(target);
    ASSERT_TRUE(r) << target;
    EXPECT_EQ(r->status, 403) << target;
    EXPECT_EQ(r->body.find("outside"), std::string::npos) << target;
  }
  auto nul = s.get("/app.js%00.html");
  ASSERT_TRUE(nul);
  EXPECT_EQ(nul->status, 400);
  for (std::string target : {"/.env", "/.git/config", "/docs/.git/config", "/missing.html", "/app.js/x"}) {
    auto r = s.get(target);
    ASSERT_TRUE(r) << target;
    EXPECT_EQ(r->status, 404) << target;
    EXPECT_EQ(r->body.find("SECRET"), std::string::npos) << target;
  }
  // Not GET or HEAD: the next layer (here the router's 404).
  auto post = s.get("/app.js", "Content-Length: 0\r\n", "POST");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 404);
}

// A 16 MiB file to a client that has not read yet: the worker holds about
// the high-water mark, not the file; then every byte arrives, in order, and
// the connection serves the next request.
TEST(HttpStatic, ALargeFileToASlowClientIsStreamedWithBoundedMemory) {
  site s;
  ASSERT_GT(s.port, 0) << s.proc->out() << s.proc->err();
  client c(s.port);
  ASSERT_TRUE(c.ok());
  long before = rss_kib(s.worker);
  ASSERT_GT(before, 0);
  ASSERT_TRUE(c.send("GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n"));
  // Let the socket buffers fill: the worker waits once the kernel takes no more.
  ASSERT_TRUE(wait_settled(s.worker, 5000));
  EXPECT_LT(rss_kib(s.worker) - before, 2 * 1024) << "the worker buffered the file instead of streaming it";
  auto r = c.read(false, 20000);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  ASSERT_EQ(r->body.size(), s.big.size());
  EXPECT_TRUE(r->body == s.big);
  ASSERT_TRUE(c.send("GET /app.js HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto next = c.read();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->body, "console.log(1)\n");
}

// A client that leaves halfway through a large file: the worker ends that
// response (no leak of its file or connection) and serves the next client.
TEST(HttpStatic, AClientLeavingMidFileCostsNothing) {
  site s;
  ASSERT_GT(s.port, 0) << s.proc->out() << s.proc->err();
  // A client with a small receive buffer, so the file cannot all be in the
  // kernel's buffers: the worker is mid-file when the client resets.
  auto leave_midway = [&] {
    client c(s.port, 4096);
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE(c.send("GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n"));
    ASSERT_TRUE(c.expect_raw("\r\n\r\n"));
  };  // (closing with most of the file unread: a reset)
  // What the worker holds open: the file, and sockets (its connections).
  // (Other descriptors are left out: libuv opens a spare /dev/null lazily.)
  auto held = [&](bool& file) {
    int sockets = 0;
    file = false;
    std::error_code ec;
    for (auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(s.worker) + "/fd", ec)) {
      auto target = std::filesystem::read_symlink(e.path(), ec).string();
      file = file || target == s.dir.file("www/big.bin");
      sockets += target.rfind("socket:", 0) == 0;
    }
    return sockets;
  };
  bool file = false;
  leave_midway();
  ASSERT_TRUE(wait_until([&] { return held(file), !file; }, 5000ms)) << "the file stayed open after its client left";
  int sockets_before = held(file);
  for (int i = 0; i < 5; ++i) leave_midway();
  EXPECT_TRUE(wait_until([&] { return held(file) <= sockets_before && !file; }, 5000ms))
      << held(file) << " sockets, " << sockets_before << " before; the file " << (file ? "open" : "closed") << ": "
      << fd_list(s.worker);
  auto r = s.get("/app.js");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

namespace {

// serve_static in this process, through a router and a response that
// renders into its own buffer (no socket): the answer's raw bytes.
struct mounted {
  explicit mounted(const std::string& root, corral::http::static_options o = {}, bool compress = false) {
    if (compress) r.use(corral::http::compression());
    r.use("/static", corral::http::serve_static(root, std::move(o)));
  }
  std::string run(std::string_view method, std::string_view url, std::vector<std::pair<std::string, std::string>> hdrs = {}) {
    corral::http::request req;
    corral::http::response res;
    req.set_for_test(method, url, std::move(hdrs));
    res.reset_for_test(method == "HEAD");
    r.handle(req, res);
    return res.raw_for_test();
  }
  corral::http::router r;
};

// The body of a raw answer, and its header `name` ("" if it has none).
std::string body(const std::string& raw) { return raw.substr(raw.find("\r\n\r\n") + 4); }
std::string header(const std::string& raw, const std::string& name) {
  auto at = raw.find("\r\n" + name + ": ");
  if (at == std::string::npos || at > raw.find("\r\n\r\n")) return std::string();
  at += name.size() + 4;
  return raw.substr(at, raw.find("\r\n", at) - at);
}

}  // namespace

// compression() before serve_static: a text file is gzipped for a client
// that takes gzip, and its HEAD and its 304 say what its 200 says (the
// gzipped length, the weak tag, Vary).
TEST(HttpStatic, CompressionGzipsTextFilesAndTheirHeadAnd304Agree) {
  temp_dir dir;
  ::mkdir(dir.file("www").c_str(), 0755);
  std::string text;
  for (int i = 0; i < 200; ++i) text += "<p>paragraph " + std::to_string(i) + "</p>\n";
  write_file(dir.file("www/page.html"), text);
  write_file(dir.file("www/small.html"), "<p>small</p>\n");
  mounted m(dir.file("www"), {}, true);
  std::string gz = m.run("GET", "/static/page.html", {{"Accept-Encoding", "gzip, br"}});
  EXPECT_EQ(header(gz, "Content-Encoding"), "gzip");
  EXPECT_EQ(header(gz, "Vary"), "Accept-Encoding");
  EXPECT_EQ(header(gz, "Accept-Ranges"), "none");
  std::string tag = header(gz, "ETag");
  EXPECT_EQ(tag.substr(0, 3), "W/\"") << tag;
  EXPECT_EQ(header(gz, "Content-Length"), std::to_string(body(gz).size()));
  EXPECT_LT(body(gz).size(), text.size() / 3);

  std::string head = m.run("HEAD", "/static/page.html", {{"Accept-Encoding", "gzip"}});
  EXPECT_EQ(header(head, "Content-Encoding"), "gzip");
  EXPECT_EQ(header(head, "Content-Length"), header(gz, "Content-Length"));
  EXPECT_EQ(header(head, "ETag"), tag);
  EXPECT_EQ(header(head, "Vary"), "Accept-Encoding");
  EXPECT_EQ(body(head), "");

  std::string again = m.run("GET", "/static/page.html", {{"Accept-Encoding", "gzip"}, {"If-None-Match", tag}});
  EXPECT_EQ(again.substr(0, 12), "HTTP/1.1 304");
  EXPECT_EQ(header(again, "ETag"), tag);
  EXPECT_EQ(header(again, "Vary"), "Accept-Encoding");

  // As it is, but varying: no gzip asked for, gzip refused, identity
  // preferred (Express's negotiator).
  for (auto ae : {"", "gzip;q=0", "gzip;q=0.1, identity", "gzip;q=0.5, *"}) {
    std::string plain = m.run("GET", "/static/page.html", {{"Accept-Encoding", ae}});
    EXPECT_EQ(body(plain), text) << ae;
    EXPECT_EQ(header(plain, "Content-Encoding"), "") << ae;
    EXPECT_EQ(header(plain, "Vary"), "Accept-Encoding") << ae;
    EXPECT_EQ(header(plain, "ETag").substr(0, 1), "\"") << ae;
    EXPECT_EQ(header(plain, "Accept-Ranges"), "bytes") << ae;
  }
  // A range is of the file's own bytes: 206, not gzipped.
  std::string part = m.run("GET", "/static/page.html", {{"Accept-Encoding", "gzip"}, {"Range", "bytes=0-2"}});
  EXPECT_EQ(part.substr(0, 12), "HTTP/1.1 206");
  EXPECT_EQ(body(part), "<p>");
  // Below the threshold: as it is, not varying.
  std::string small = m.run("GET", "/static/small.html", {{"Accept-Encoding", "gzip"}});
  EXPECT_EQ(body(small), "<p>small</p>\n");
  EXPECT_EQ(header(small, "Vary"), "");
}

TEST(HttpStatic, UnderAPrefixTheMountPointRedirectsAndHeadAndRangeAndNotModifiedAreRight) {
  temp_dir dir;
  ::mkdir(dir.file("www").c_str(), 0755);
  ::mkdir(dir.file("www/docs").c_str(), 0755);
  write_file(dir.file("www/index.html"), "<h1>home</h1>\n");
  write_file(dir.file("www/app.js"), "console.log(1)\n");
  mounted m(dir.file("www"));

  std::string root = m.run("GET", "/static?v=2");
  EXPECT_EQ(root.substr(0, 12), "HTTP/1.1 301") << root;
  EXPECT_NE(root.find("Location: /static/?v=2\r\n"), std::string::npos) << root;
  EXPECT_NE(m.run("GET", "/static/").find("<h1>home</h1>"), std::string::npos);
  EXPECT_NE(m.run("GET", "/STATIC/app.js").find("console.log(1)"), std::string::npos);
  std::string slashes = m.run("GET", "/static//docs");
  EXPECT_NE(slashes.find("Location: /static//docs/\r\n"), std::string::npos) << slashes;  // (the prefix keeps it on this site)

  // HEAD: the GET's length, no body, and no range (ranges are GET's).
  std::string head = m.run("HEAD", "/static/app.js", {{"Range", "bytes=0-3"}});
  EXPECT_EQ(head.substr(0, 12), "HTTP/1.1 200") << head;
  EXPECT_NE(head.find("Content-Length: 15\r\n"), std::string::npos) << head;
  EXPECT_EQ(head.substr(head.find("\r\n\r\n") + 4), "");
  std::string part = m.run("GET", "/static/app.js", {{"Range", "bytes=0-0"}});
  EXPECT_EQ(part.substr(0, 12), "HTTP/1.1 206") << part;
  EXPECT_EQ(part.substr(part.find("\r\n\r\n") + 4), "c");

  std::string full = m.run("GET", "/static/app.js");
  auto at = full.find("ETag: ");
  ASSERT_NE(at, std::string::npos);
  std::string etag = full.substr(at + 6, full.find("\r\n", at) - at - 6);
  std::string not_modified = m.run("GET", "/static/app.js", {{"If-None-Match", etag}});
  EXPECT_EQ(not_modified.substr(0, 12), "HTTP/1.1 304") << not_modified;
  EXPECT_NE(not_modified.find("ETag: " + etag), std::string::npos);
  EXPECT_EQ(not_modified.find("Content-Type"), std::string::npos) << not_modified;
  EXPECT_EQ(not_modified.find("Accept-Ranges"), std::string::npos) << not_modified;

  // Outside the prefix, or a root of "": not served.
  EXPECT_EQ(m.run("GET", "/app.js").substr(0, 12), "HTTP/1.1 404");
  EXPECT_THROW(corral::http::serve_static(""), std::invalid_argument);
}

// The preconditions of RFC 9110 13.1 on a file: If-Match (strong
// comparison) and If-Unmodified-Since fail with 412 when the file is not
// the client's copy; If-None-Match compares weakly; If-Range takes the
// range only for the file's own strong tag.
TEST(HttpStatic, FailedPreconditionsGet412AndIfRangeComparesStrongly) {
  temp_dir dir;
  ::mkdir(dir.file("www").c_str(), 0755);
  write_file(dir.file("www/app.js"), "console.log(1)\n");
  mounted m(dir.file("www"));
  auto status = [&](std::vector<std::pair<std::string, std::string>> h, std::string_view method = "GET") {
    return m.run(method, "/static/app.js", std::move(h)).substr(0, 12);
  };
  std::string full = m.run("GET", "/static/app.js");
  auto header = [&](const std::string& name) {
    auto at = full.find(name + ": ");
    return at == std::string::npos ? std::string() : full.substr(at + name.size() + 2, full.find("\r\n", at) - at - name.size() - 2);
  };
  std::string etag = header("ETag"), modified = header("Last-Modified");
  ASSERT_FALSE(etag.empty());
  ASSERT_FALSE(modified.empty());

  EXPECT_EQ(status({{"If-Match", etag}}), "HTTP/1.1 200");
  EXPECT_EQ(status({{"If-Match", "\"x\", " + etag}}), "HTTP/1.1 200");
  EXPECT_EQ(status({{"If-Match", "*"}}), "HTTP/1.1 200");
  std::string failed = m.run("GET", "/static/app.js", {{"If-Match", "\"other\""}});
  EXPECT_EQ(failed.substr(0, 12), "HTTP/1.1 412") << failed;
  EXPECT_EQ(failed.find("console.log"), std::string::npos) << failed;
  EXPECT_EQ(status({{"If-Match", "W/" + etag}}), "HTTP/1.1 412");  // (strong comparison)
  EXPECT_EQ(status({{"If-Match", "\"other\""}}, "HEAD"), "HTTP/1.1 412");
  // If-Match decides when present, over If-Unmodified-Since.
  EXPECT_EQ(status({{"If-Match", etag}, {"If-Unmodified-Since", "Thu, 01 Jan 1998 00:00:00 GMT"}}), "HTTP/1.1 200");
  EXPECT_EQ(status({{"If-Unmodified-Since", "Thu, 01 Jan 1998 00:00:00 GMT"}}), "HTTP/1.1 412");
  EXPECT_EQ(status({{"If-Unmodified-Since", modified}}), "HTTP/1.1 200");
  EXPECT_EQ(status({{"If-Unmodified-Since", "not a date"}}), "HTTP/1.1 200");  // (ignored, as RFC 9110 13.1.4 says)
  // A passed If-Match, then a matching If-None-Match: 304.
  EXPECT_EQ(status({{"If-Match", etag}, {"If-None-Match", etag}}), "HTTP/1.1 304");
  EXPECT_EQ(status({{"If-None-Match", "W/" + etag}}), "HTTP/1.1 304");  // (weak comparison)

  EXPECT_EQ(status({{"Range", "bytes=0-0"}, {"If-Range", etag}}), "HTTP/1.1 206");
  EXPECT_EQ(status({{"Range", "bytes=0-0"}, {"If-Range", "W/" + etag}}), "HTTP/1.1 200");
  EXPECT_EQ(status({{"Range", "bytes=0-0"}, {"If-Range", "\"other\""}}), "HTTP/1.1 200");
  EXPECT_EQ(status({{"Range", "bytes=0-0"}, {"If-Range", modified}}), "HTTP/1.1 206");
}

// Compressed copies made ahead of time (nginx's gzip_static): br before
// gzip for a client that takes both, the original's type, a tag of the
// copy's own, ranges of the copy, Vary on every answer; a client that
// takes neither (or refuses them with q=0) gets the original.
TEST(HttpStatic, PrecompressedCopiesGoToClientsThatTakeThem) {
  temp_dir dir;
  ::mkdir(dir.file("www").c_str(), 0755);
  write_file(dir.file("www/app.js"), "console.log(1)\n");
  write_file(dir.file("www/app.js.gz"), "GZIPPED");
  write_file(dir.file("www/app.js.br"), "BROTLI");
  write_file(dir.file("www/only.css"), "body{}\n");
  write_file(dir.file("www/only.css.gz"), "GZ-CSS");
  corral::http::static_options o;
  o.precompressed = true;
  mounted m(dir.file("www"), o);

  std::string plain = m.run("GET", "/static/app.js");
  EXPECT_EQ(body(plain), "console.log(1)\n");
  EXPECT_EQ(header(plain, "Content-Encoding"), "");
  EXPECT_EQ(header(plain, "Vary"), "Accept-Encoding");

  std::string br = m.run("GET", "/static/app.js", {{"Accept-Encoding", "gzip, deflate, br"}});
  EXPECT_EQ(body(br), "BROTLI");
  EXPECT_EQ(header(br, "Content-Encoding"), "br");
  EXPECT_EQ(header(br, "Content-Type"), header(plain, "Content-Type"));
  EXPECT_EQ(header(br, "Content-Length"), "6");
  EXPECT_EQ(header(br, "Vary"), "Accept-Encoding");
  EXPECT_NE(header(br, "ETag"), header(plain, "ETag"));
  EXPECT_NE(header(br, "ETag").find("-br\""), std::string::npos) << header(br, "ETag");

  std::string gz = m.run("GET", "/static/app.js", {{"Accept-Encoding", "GZIP"}});
  EXPECT_EQ(body(gz), "GZIPPED");
  EXPECT_EQ(header(gz, "Content-Encoding"), "gzip");
  EXPECT_EQ(body(m.run("GET", "/static/app.js", {{"Accept-Encoding", "br;q=0, gzip;q=0.5"}})), "GZIPPED");
  EXPECT_EQ(body(m.run("GET", "/static/app.js", {{"Accept-Encoding", "br;q=0.0, gzip;q=0"}})), "console.log(1)\n");
  EXPECT_EQ(body(m.run("GET", "/static/app.js", {{"Accept-Encoding", "*"}})), "BROTLI");
  EXPECT_EQ(body(m.run("GET", "/static/app.js", {{"Accept-Encoding", "br;q=0, *"}})), "GZIPPED");
  EXPECT_EQ(body(m.run("GET", "/static/app.js", {{"Accept-Encoding", "identity"}})), "console.log(1)\n");
  // The client's weights choose (br only on a tie), across all its
  // Accept-Encoding lines; x-gzip is gzip; a weight is read as parseFloat
  // reads it (Express): none is 0, which refuses, above 1 is 1.
  EXPECT_EQ(body(m.run("GET", "/static/app.js", {{"Accept-Encoding", "br;q=0.5, gzip"}})), "GZIPPED");
  EXPECT_EQ(body(m.run("GET", "/static/app.js", {{"Accept-Encoding", "gzip;q=0.8, br;q=0.9"}})), "BROTLI");
  EXPECT_EQ(body(m.run("GET", "/static/app.js", {{"Accept-Encoding", "gzip;q=0.125, *;q=0.1"}})), "GZIPPED");
  EXPECT_EQ(body(m.run("GET", "/static/app.js", {{"Accept-Encoding", "br;q=0"}, {"Accept-Encoding", "gzip"}})), "GZIPPED");
  EXPECT_EQ(body(m.run("GET", "/static/app.js", {{"Accept-Encoding", "identity"}, {"Accept-Encoding", "br"}})), "BROTLI");
  EXPECT_EQ(header(m.run("GET", "/static/app.js", {{"Accept-Encoding", "x-gzip"}}), "Content-Encoding"), "gzip");
  EXPECT_EQ(body(m.run("GET", "/static/app.js", {{"Accept-Encoding", "br;q=high, gzip;q=0.9"}})), "GZIPPED");
  EXPECT_EQ(body(m.run("GET", "/static/app.js", {{"Accept-Encoding", "br;q=0.5, gzip;q=abc"}})), "BROTLI");
  EXPECT_EQ(body(m.run("GET", "/static/app.js", {{"Accept-Encoding", "br;q=0.0.1, gzip;q=0.0.0"}})), "console.log(1)\n");
  EXPECT_EQ(body(m.run("GET", "/static/app.js", {{"Accept-Encoding", "br;q=1.5, gzip"}})), "BROTLI");
  // Only a .gz: a br-and-gzip client gets it.
  EXPECT_EQ(body(m.run("GET", "/static/only.css", {{"Accept-Encoding", "br, gzip"}})), "GZ-CSS");
  // A directory's index file has its copies too, typed as the index.
  write_file(dir.file("www/index.html"), "<h1>home</h1>\n");
  write_file(dir.file("www/index.html.gz"), "GZ-HOME");
  std::string home = m.run("GET", "/static/", {{"Accept-Encoding", "gzip"}});
  EXPECT_EQ(body(home), "GZ-HOME");
  EXPECT_EQ(header(home, "Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(body(m.run("GET", "/static/")), "<h1>home</h1>\n");
  // The copy's own validators and ranges.
  std::string again = m.run("GET", "/static/app.js", {{"Accept-Encoding", "br"}, {"If-None-Match", header(br, "ETag")}});
  EXPECT_EQ(again.substr(0, 12), "HTTP/1.1 304") << again;
  EXPECT_EQ(header(again, "Vary"), "Accept-Encoding");
  std::string part = m.run("GET", "/static/app.js", {{"Accept-Encoding", "br"}, {"Range", "bytes=0-1"}});
  EXPECT_EQ(part.substr(0, 12), "HTTP/1.1 206") << part;
  EXPECT_EQ(body(part), "BR");
  EXPECT_EQ(header(part, "Content-Range"), "bytes 0-1/6");
  std::string head = m.run("HEAD", "/static/app.js", {{"Accept-Encoding", "gzip"}});
  EXPECT_EQ(header(head, "Content-Length"), "7");
  EXPECT_EQ(body(head), "");

  // A weight among other parameters; a Vary set before stays.
  EXPECT_EQ(body(m.run("GET", "/static/app.js", {{"Accept-Encoding", "br;level=1;q=0, gzip; q=0.0"}})), "console.log(1)\n");
  EXPECT_EQ(body(m.run("GET", "/static/app.js", {{"Accept-Encoding", "br;q=0;x=1"}})), "console.log(1)\n");
  corral::http::router cors;
  cors.use([](corral::http::request&, corral::http::response& res, corral::http::next_fn next) {
    res.vary("Origin");
    next();
  });
  cors.use(corral::http::serve_static(dir.file("www"), o));
  {
    corral::http::request req;
    corral::http::response res;
    req.set_for_test("GET", "/app.js", {{"Accept-Encoding", "gzip"}});
    res.reset_for_test();
    cors.handle(req, res);
    EXPECT_EQ(header(res.raw_for_test(), "Vary"), "Origin, Accept-Encoding");
  }
  // A dot file's 404 that is a single-page app's page: its copy, with Vary.
  corral::http::static_options spa = o;
  spa.fallback = "index.html";
  mounted app(dir.file("www"), spa);
  std::string hidden = app.run("GET", "/static/.env", {{"Accept-Encoding", "gzip"}});
  EXPECT_EQ(body(hidden), "GZ-HOME");
  EXPECT_EQ(header(hidden, "Vary"), "Accept-Encoding");

  // Off (the default): the original, and no Vary.
  mounted off(dir.file("www"));
  std::string o2 = off.run("GET", "/static/app.js", {{"Accept-Encoding", "br, gzip"}});
  EXPECT_EQ(body(o2), "console.log(1)\n");
  EXPECT_EQ(header(o2, "Vary"), "");
}
