// corral/http.hpp — an HTTP/1.1 server and an Express-style router.
//
//   corral::http::router app;
//   app.get("/hello/:name?", [](auto& req, auto& res) {
//     res.send("Hello " + std::string(req.param("name")) + "!!!");
//   });
//   corral::http::server srv(app);
//   srv.listen({.port = 3000}, [](const corral::error* e, const corral::net::address& a) { ... });
//   return corral::run();
//
// The server works unchanged alone, as a cluster worker (the primary shares
// the port; a worker's disconnect() closes the server gracefully) and under
// systemd or the manager (LISTEN_FDS), through corral::net::listener.
//
// Everything runs on corral::default_loop(), on the thread that calls
// corral::run(). Handlers run on the loop; a handler may answer later (from a
// timer, another request...) as long as the response is ended eventually.
// While a request is unanswered, later requests pipelined on the same
// connection wait, so responses always go out in order.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "corral/error.hpp"
#include "corral/fd.hpp"
#include "corral/net.hpp"

namespace corral::http {

namespace detail {
class connection;
struct server_state;
struct access;
}  // namespace detail

/// One request header as received (name in its original case).
struct header {
  std::string_view name;
  std::string_view value;
};

/// Thrown by a handler (or by request::json()) to answer with `status`, as
/// Express's http-errors: a 4xx answers with the message as its text body
/// (the client's mistake, said to the client, not logged); a 5xx answers
/// with the status's reason phrase and the message goes to stderr. Any other
/// exception answers 500. A status outside 400-599 is taken as 500.
class status_error : public std::runtime_error {
 public:
  status_error(int status, const std::string& message)
      : std::runtime_error(message), status_(status >= 400 && status <= 599 ? status : 500) {}
  int status() const noexcept { return status_; }

 private:
  int status_;
};

/// A received request. Owned by its connection; valid until its response is
/// ended (views into it are valid as long).
class request {
 public:
  request() = default;
  request(const request&) = delete;
  request& operator=(const request&) = delete;

  /// "GET", "POST"...
  std::string_view method() const noexcept { return method_; }
  /// The request target as sent: "/hello/John?x=1".
  std::string_view url() const noexcept { return url_; }
  /// The target's path, not decoded: "/hello/John" (also for an
  /// absolute-form target "http://host/hello/John"; "/" if it has none).
  std::string_view path() const noexcept;
  /// The raw query string after '?', or empty.
  std::string_view query_string() const noexcept;
  /// The first query parameter `name`, percent- and '+'-decoded; nullopt if absent.
  std::optional<std::string> query(std::string_view name) const;
  /// Every query parameter `name`, in order, decoded as query() does
  /// (Express's req.query gives an array for a repeated key).
  std::vector<std::string> query_all(std::string_view name) const;
  /// The route parameter `name` (":name" in the route), percent-decoded;
  /// empty if absent. A `*` wildcard is named "*".
  std::string_view param(std::string_view name) const noexcept;
  /// True if the route matched parameter `name` (an optional one may be absent).
  bool has_param(std::string_view name) const noexcept;
  /// In a middleware added with use(prefix, ...): the part of path() its
  /// prefix matched ("/static" for "/static/app.js"; Express's req.baseUrl).
  /// Empty elsewhere.
  std::string_view base_url() const noexcept { return path().substr(0, base_len_); }
  /// The first header named `name` (case-insensitive), or nullopt.
  std::optional<std::string_view> get(std::string_view name) const noexcept;
  /// Every header, in order.
  const std::vector<header>& headers() const noexcept { return headers_; }
  /// The first trailer field named `name` (case-insensitive), or nullopt.
  std::optional<std::string_view> trailer(std::string_view name) const noexcept;
  /// Every trailer field, in order (Node's `req.trailers`): the fields a
  /// chunked body may end with (RFC 9112 7.1.2). They are not headers: they
  /// are not in headers() and get() does not see them. Empty when the body
  /// was not chunked or had none. Handlers run once the whole request,
  /// trailers included, has arrived, so they are always complete here.
  const std::vector<header>& trailers() const noexcept { return trailers_; }
  /// The body, de-chunked (requests are buffered up to the server's body limit).
  std::string_view body() const noexcept { return body_; }
  /// Whether the Content-Type's media type (parameters aside, any case) is
  /// `type` (Express's req.is): "application/json"; "text/*" or "*/*";
  /// "+json" for any type with that suffix; or a short name: "json"
  /// (application/json or any +json type), "urlencoded", "multipart"
  /// (multipart/*), or a file extension mime_type() knows ("html", "txt").
  /// False without a Content-Type.
  bool is(std::string_view type) const;
  /// The body parsed as JSON (express.json()): nullopt when the request is
  /// not is("json"); an empty object for an empty body, as body-parser.
  /// Unlike express.json()'s defaults, a +json type is JSON too, and any
  /// JSON value is taken (body-parser's strict mode takes only an object or
  /// an array).
  /// Throws status_error(400, "invalid JSON in the request body: <where>")
  /// when it does not parse (or nests deeper than 10,000 levels), which
  /// answers 400 with that text.
  std::optional<nlohmann::json> json() const;
  /// The first field `name` of an application/x-www-form-urlencoded body
  /// (express.urlencoded()), decoded as query() decodes; nullopt if absent
  /// or the request is not is("urlencoded").
  std::optional<std::string> form(std::string_view name) const;
  /// Every field `name` of such a body, in order.
  std::vector<std::string> form_all(std::string_view name) const;
  /// The cookie `name` from the Cookie header(s), unquoted and
  /// percent-decoded (cookie-parser's req.cookies[name]); nullopt if absent.
  std::optional<std::string> cookie(std::string_view name) const;
  int http_major() const noexcept { return major_; }
  int http_minor() const noexcept { return minor_; }

  /// The peer's address (Node's req.socket.remoteAddress and remotePort):
  /// "127.0.0.1" or "::1" and the port; host "" over a Unix socket, or when
  /// first asked after the client had gone. Asked once per connection
  /// (getpeername), not per request.
  const net::address& remote_address() const;
  /// The client's address (Express's req.ip): remote_address()'s host, or,
  /// behind trusted proxies (server_options::trust_proxy_hops = n), the
  /// address n hops away: X-Forwarded-For read from the right, one entry
  /// per trusted proxy (its left-most entry if it has fewer).
  std::string ip() const;
  /// The Host header without its port (Express's req.hostname; behind a
  /// trusted proxy, X-Forwarded-Host first). "" without either.
  std::string_view hostname() const noexcept;
  /// "http", or behind a trusted proxy X-Forwarded-Proto's first value
  /// ("https"; Express's req.protocol).
  std::string_view protocol() const noexcept;

  /// Test-only: fills a request as the parser would.
  void set_for_test(std::string_view method, std::string_view url, std::vector<std::pair<std::string, std::string>> hdrs = {},
                    std::string_view body = {});

 private:
  friend class detail::connection;
  friend struct detail::access;
  void clear() noexcept;
  void add_param(std::string_view name, std::string_view raw_value);

  std::string_view method_;
  std::string url_;
  std::string header_bytes_;  // names and values back to back; headers_ views into it
  std::vector<std::pair<std::size_t, std::size_t>> header_offsets_;  // (name end, value end) in header_bytes_
  std::vector<header> headers_;
  // Trailers in storage of their own: they arrive after headers_ was handed
  // out, and appending them to header_bytes_ could move what it views.
  std::string trailer_bytes_;
  std::vector<std::pair<std::size_t, std::size_t>> trailer_offsets_;  // as header_offsets_
  std::vector<header> trailers_;
  std::string body_;
  struct param_slot {
    std::string_view name;  // into the route pattern, which outlives the request
    std::string value;
  };
  std::vector<param_slot> params_;  // reused across requests: the first n_params_ are live
  std::size_t n_params_ = 0;
  std::size_t base_len_ = 0;  // base_url()'s length
  int major_ = 1;
  int minor_ = 1;
  detail::connection* conn_ = nullptr;  // null for a test's request
  mutable std::optional<net::address> remote_;  // asked of the socket once
  int trust_proxy_hops_ = 0;                    // the server's

 public:
  /// Test-only: the peer and the server's trust_proxy_hops for ip() and the others.
  void set_remote_for_test(net::address peer, int trust_proxy_hops = 0) {
    remote_ = std::move(peer);
    trust_proxy_hops_ = trust_proxy_hops;
  }
};

/// A Set-Cookie line's attributes (Express's res.cookie options).
struct cookie_options {
  /// Max-Age, and Expires as the same moment (for clients without
  /// Max-Age); unset: a session cookie.
  std::optional<std::chrono::seconds> max_age;
  std::string path = "/";
  std::string domain;  ///< "" for none: this host only
  bool secure = false;
  bool http_only = false;
  /// "Strict", "Lax" or "None" ("" for none).
  std::string same_site;
};

/// The answer to one request. Owned by its connection. Headers go out with
/// the first write()/send()/json()/end(); set() and status() after that are
/// ignored. A handler that answers later may keep the reference until it
/// ends the response, even if the client leaves meanwhile (its output is then
/// discarded); it must not touch the response after ending it. Every
/// response must be ended: the connection's memory is held for it until then.
class response {
 public:
  response() = default;
  response(const response&) = delete;
  response& operator=(const response&) = delete;

  /// Sets the status code (200 by default).
  response& status(int code) noexcept;
  /// Sets header `name` (replacing an earlier one of that name, case-insensitive).
  /// Content-Length and Transfer-Encoding are managed by the response: a
  /// Content-Length set here frames a streamed body (write()), whose bytes
  /// past it are dropped and which, ended short of it, closes the
  /// connection; a body sent whole is framed by its own length (but for HEAD).
  response& set(std::string_view name, std::string_view value);
  /// The value of header `name` as set so far (the first line of that
  /// name), or nullopt (Express's res.get()).
  std::optional<std::string_view> get(std::string_view name) const noexcept;
  /// Adds `field` to the Vary header unless it is there already (Express's
  /// res.vary(): a middleware's Vary: Origin and a Vary: Accept-Encoding
  /// both stay).
  response& vary(std::string_view field);
  /// Adds a header line even if one of that name is set already (Express's
  /// res.append; for Set-Cookie, Link, ...). Framing headers as set().
  response& append(std::string_view name, std::string_view value);
  /// Express's res.cookie(): a Set-Cookie line for `name`, its value
  /// percent-encoded (encodeURIComponent, which request::cookie() undoes).
  /// Throws std::invalid_argument, as Express does, for a name that is not
  /// an RFC 6265 token, a path or domain with ';' or a control character,
  /// or a same_site other than Strict, Lax or None (in a handler: a 500).
  /// max_age is capped at 400 years.
  response& cookie(std::string_view name, std::string_view value, const cookie_options& options = {});
  /// Express's res.clearCookie(): the cookie expired (give the path and
  /// domain it was set with).
  response& clear_cookie(std::string_view name, const cookie_options& options = {});
  /// Sends `body` with its Content-Length and ends the response. Content-Type
  /// defaults to "text/html; charset=utf-8" (as Express).
  void send(std::string_view body);
  /// Express's res.redirect(): status `code` (302 Found unless told), a
  /// Location header and a short text body naming it; ends the response.
  void redirect(std::string_view location, int code = 302);
  /// Sends `value` serialised, as application/json, and ends the response.
  void json(const nlohmann::json& value);
  /// Streams part of the body: chunked encoding unless a Content-Length was
  /// set (HTTP/1.0 clients: close-delimited). Returns false once more than
  /// `high_water` bytes wait for the client to take them (Node's
  /// res.write()): write more from an on_drain() callback, or memory grows
  /// with a slow client.
  bool write(std::string_view chunk);
  /// Runs `fn` once, on the loop, when what was written so far has gone to
  /// the kernel, or when the client has left (aborted() is then true, and
  /// the response must still be ended). At once if nothing waits. One
  /// callback at a time: a second replaces the first.
  void on_drain(std::function<void()> fn);
  /// True once the client has gone: what is written is discarded.
  bool aborted() const noexcept;
  /// Sends `length` bytes of file `fd` from `offset` as the whole body
  /// (Content-Length: length) and ends the response. The connection sends
  /// them with sendfile(2), from the page cache to the socket with no copy
  /// through user space, as the client takes them (a piece that has to wait
  /// for room goes through a 64 KiB buffer); a file shorter than `length`
  /// closes the connection once what there was is sent. Only before
  /// anything was written.
  void send_file(unique_fd fd, uint64_t offset, uint64_t length);
  static constexpr std::size_t high_water = 64 * 1024;
  /// Ends the response, with an optional last piece of body.
  void end(std::string_view last = {});

  bool headers_sent() const noexcept { return headers_sent_; }
  bool finished() const noexcept { return finished_; }
  int status_code() const noexcept { return status_; }

  /// Test-only: a response that renders into its own buffer, with no connection.
  void reset_for_test(bool head = false, bool keep_alive = true);
  /// Test-only: the bytes rendered so far.
  const std::string& raw_for_test() const noexcept { return test_out_; }

 private:
  friend class detail::connection;
  friend struct detail::access;
  void reset(std::string* out, detail::connection* conn, bool head, bool keep_alive, bool http10);
  response& put_header(std::string_view name, std::string_view value, bool replace);
  void render_head(std::size_t content_length, bool chunked);
  void append_body(std::string_view bytes);
  void end_whole(std::string_view body);
  /// compression()'s part of end_whole(): `body` gzipped into `out`
  /// (returns true), or false to send it as it is.
  bool maybe_compress(std::string_view body, std::string& out);
  /// compression()'s choice for a body of `size` bytes of `type` with the
  /// headers set so far: 0 as it is, 1 as it is but varying, 2 gzipped.
  int gzip_decision(std::size_t size, std::string_view type) const;
  /// The headers that choice puts on the answer (Vary; a weak ETag and no
  /// ranges when gzipped), for a 304 or a HEAD as for the 200.
  void gzip_headers(int decision);
  void finish();

  std::string* out_ = nullptr;             // where bytes go: the connection's output buffer
  detail::connection* conn_ = nullptr;     // null in unit tests
  std::vector<std::pair<std::string, std::string>> headers_;  // reused: first n_headers_ live
  std::size_t n_headers_ = 0;
  std::string test_out_;
  std::string scratch_;
  std::optional<std::size_t> declared_length_;  // from a set("Content-Length")
  std::size_t body_sent_ = 0;                   // body bytes rendered (when not chunked)
  const char* default_type_ = nullptr;          // send()/json()'s Content-Type line, unless set()
  int status_ = 200;
  bool head_ = false;
  bool keep_alive_ = true;
  bool http10_ = false;
  bool headers_sent_ = false;
  bool chunked_ = false;
  bool finished_ = false;
  bool has_content_type_ = false;
  // Set by compression() for the handlers after it.
  int gzip_level_ = 0;  // 0: no compression() ran
  bool gzip_accepted_ = false;
  std::size_t gzip_threshold_ = 0;
};

class router;

/// Continues a middleware chain: calling it runs the next matching layer.
/// Cheap to copy; valid while the request is unanswered.
class next_fn {
 public:
  void operator()() const;

 private:
  friend class router;
  next_fn(const router* r, request* req, response* res, std::size_t index) : r_(r), req_(req), res_(res), index_(index) {}
  const router* r_;
  request* req_;
  response* res_;
  std::size_t index_;
};

/// A route handler.
using handler = std::function<void(request&, response&)>;
/// A middleware: call `next()` to go on, or answer the request itself.
using middleware = std::function<void(request&, response&, next_fn next)>;

/// Routes requests by method and path, Express-style. Path patterns:
/// literal segments, ":name" parameters, optional ":name?" parameters (so
/// "/hello/:name?" matches "/hello" and "/hello/John"), and "*" (the rest of
/// the path, as parameter "*"). Layers run in the order they were added. With
/// no match: 405 with Allow if the path exists for other methods (OPTIONS:
/// 200 with Allow, as Express), else 404. Literal segments and use()
/// prefixes match case-insensitively (Express's default).
/// A GET route also answers HEAD. Not thread-safe; add routes before serving.
class router {
 public:
  router();
  ~router();
  router(const router&) = delete;
  router& operator=(const router&) = delete;

  router& get(std::string_view pattern, handler h) { return add("GET", pattern, std::move(h)); }
  router& post(std::string_view pattern, handler h) { return add("POST", pattern, std::move(h)); }
  router& put(std::string_view pattern, handler h) { return add("PUT", pattern, std::move(h)); }
  router& patch(std::string_view pattern, handler h) { return add("PATCH", pattern, std::move(h)); }
  router& del(std::string_view pattern, handler h) { return add("DELETE", pattern, std::move(h)); }
  /// Any method.
  router& all(std::string_view pattern, handler h) { return add("", pattern, std::move(h)); }
  /// A route for one method ("" for any).
  router& add(std::string_view method, std::string_view pattern, handler h);
  /// A middleware for every request.
  router& use(middleware m);
  /// A middleware for paths under `prefix` ("/api" matches "/api" and "/api/...").
  router& use(std::string_view prefix, middleware m);

  /// Dispatches one request. An exception from a handler propagates to the caller
  /// (the server turns it into a 500).
  void handle(request& req, response& res) const;
  /// Test helper and building block: does `pattern` match `path`? Fills
  /// `req`'s params on success.
  static bool match_for_test(std::string_view pattern, std::string_view path, request& req);

  struct segment;
  struct layer;

 private:
  friend class next_fn;
  void run_from(std::size_t index, request& req, response& res) const;
  void no_match(request& req, response& res) const;

  std::vector<std::unique_ptr<layer>> layers_;
};

/// serve_static's choices; the defaults are Express's express.static().
struct static_options {
  /// Served for a directory's URL ("" for none).
  std::string index = "index.html";
  /// A directory's URL without its trailing slash: 301 to the URL with it.
  bool redirect = true;
  /// Serve files and directories whose name starts with '.'; otherwise
  /// they do not exist (404, or the next layer).
  bool dotfiles = false;
  /// A single-page app's page ("index.html", relative to the root): served
  /// for a GET or HEAD of a path that is no file (404 otherwise), so the
  /// app's own router sees every URL (`pm2 serve --spa`). "" for none.
  std::string fallback;
  /// A file that does not exist, or a method other than GET and HEAD, goes
  /// to the next layer; false: 404 (and 405 with Allow: GET, HEAD).
  bool fallthrough = true;
  /// Cache-Control: public, max-age=N.
  std::chrono::seconds max_age{0};
  /// ETag (strong, from size and modification time) and Last-Modified:
  /// 304 Not Modified for a matching If-None-Match or If-Modified-Since,
  /// 412 for a failed If-Match or If-Unmodified-Since, If-Range.
  bool etag = true;
  bool last_modified = true;
  /// Compressed copies made ahead of time (nginx's gzip_static and
  /// brotli_static): a file's `name.br` or `name.gz` beside it goes instead
  /// to a client whose Accept-Encoding takes br or gzip (the one it weights
  /// higher; br on a tie), with
  /// Content-Encoding, the original's Content-Type and its own ETag; every
  /// answer then says `Vary: Accept-Encoding`. Off: one open() less a file.
  bool precompressed = false;
};

/// A middleware that serves the files under directory `root` (Express's
/// express.static): GET and HEAD, Content-Type from the extension,
/// conditional requests (304, 412), one byte range (206, 416; Accept-Ranges),
/// index files and the directory redirect. The path is the request's below
/// its use() prefix, percent-decoded; a ".." segment gets 403 and a NUL
/// byte 400, so nothing outside `root` is served (symbolic links inside it
/// are followed, as Express's). Large files are streamed with
/// back-pressure (response::on_drain), so a slow client costs no memory.
/// Files are read on the loop's thread (nginx's default too): from the page
/// cache that is a copy, from a slow disk a stall.
middleware serve_static(std::string root, static_options options = {});

/// compression()'s choices; the defaults are Express's compression().
struct compression_options {
  /// Bodies shorter than this go as they are (compression's "1kb"): under
  /// a packet, gzip saves no time.
  std::size_t threshold = 1024;
  /// zlib's level: 1 fastest ... 9 smallest (6, zlib's and Express's
  /// default; nginx's gzip_comp_level is 1).
  int level = 6;
};

/// A middleware that gzips the bodies the handlers after it send whole
/// (send(), json(), end() with nothing written before; Express's
/// compression(), nginx's gzip): for a client whose Accept-Encoding takes
/// gzip (or x-gzip) with a weight above 0 and not below identity's, a body
/// of at least `threshold` bytes
/// whose Content-Type is text (text/*, JSON, JavaScript, XML, SVG, +json,
/// +xml) goes with Content-Encoding: gzip, its compressed Content-Length,
/// a strong ETag made weak and Accept-Ranges: none; such a response (and
/// its 304 and HEAD from serve_static) says Vary: Accept-Encoding to every
/// client. Left alone: a body with a Content-Encoding already, a
/// Cache-Control: no-transform, a 206, a bodiless status, streamed bodies
/// (write()) and send_file() (serve_static's `precompressed` serves files
/// gzipped ahead of time). Throws std::invalid_argument for a level outside
/// 1-9.
middleware compression(compression_options options = {});

/// The Content-Type for a file name's extension ("text/html; charset=utf-8"
/// for "index.html"), application/octet-stream when unknown.
std::string_view mime_type(std::string_view file_name) noexcept;

/// Percent-decodes `in` ("%2F" -> "/"); with `plus_is_space`, '+' becomes ' '
/// (query strings). Malformed escapes are kept as they are.
std::string percent_decode(std::string_view in, bool plus_is_space = false);

/// Limits and timeouts; defaults are Node's (send_timeout: nginx's).
struct server_options {
  /// A request line plus header section larger than this gets 431.
  std::size_t max_header_bytes = 16 * 1024;
  /// A request body larger than this gets 413 (checked against Content-Length
  /// up front, and while chunks arrive).
  std::size_t max_body_bytes = 1024 * 1024;
  /// From a request's first byte to the end of its headers (slowloris).
  std::chrono::milliseconds headers_timeout{60'000};
  /// From a request's first byte to the end of its body.
  std::chrono::milliseconds request_timeout{300'000};
  /// How long a keep-alive connection may stay idle between requests.
  std::chrono::milliseconds keep_alive_timeout{5'000};
  /// During a graceful close: how long a connection idle at a request
  /// boundary may still bring one more request (answered with Connection: close).
  std::chrono::milliseconds close_idle_grace{500};
  /// How long an answer may wait on a client that takes none of it (its
  /// receive window full): measured between two times the client takes
  /// some, not over the whole answer, as nginx's send_timeout (and with its
  /// default; Node has none, and a client that stops reading holds a
  /// connection, and a graceful close, forever). Then the connection closes.
  std::chrono::milliseconds send_timeout{60'000};
  /// How many proxies in front of the server to believe (Express's `trust
  /// proxy` as a number): request::ip() takes X-Forwarded-For's entry this
  /// many hops away, and hostname() and protocol() X-Forwarded-Host and
  /// -Proto. 0 (the default) believes none of them: a client could write
  /// any address there.
  int trust_proxy_hops = 0;
};

/// An HTTP/1.1 server: keep-alive, pipelining, chunked bodies, HEAD,
/// Expect: 100-continue, limits and timeouts (server_options). Not copyable
/// or movable. Destroying it closes everything at once.
class server {
 public:
  /// Serves with `h` for every request.
  explicit server(handler h, server_options options = {});
  /// Serves with `r`, which is borrowed and must outlive the server.
  explicit server(const router& r, server_options options = {});
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// Listens through corral::net::listener (alone, in a cluster, or with
  /// LISTEN_FDS). `done` runs once on the loop with the bound address or an
  /// error. In a cluster worker the server registers its graceful close()
  /// with the worker's disconnect(). Unless `options.defer_accept` says
  /// otherwise, the listening socket gets TCP_DEFER_ACCEPT: a connection is
  /// handed over with its request, read and often answered on accept.
  void listen(const net::listen_options& options, net::listener::listening_fn done);
  /// Serves one connected stream socket (accepted elsewhere). Takes ownership.
  /// A request already waiting on it is read and handled at once: its
  /// handler may run (and the connection be answered and closed) before
  /// this returns. An error if the fd is not usable (closed already).
  status serve(unique_fd fd);
  /// Graceful close: stops accepting; requests in flight finish and are
  /// answered with Connection: close; keep-alive connections close at a
  /// request boundary (idle ones after `close_idle_grace`); then `done` runs
  /// on the loop. Calling it again only adds to the callbacks.
  void close(std::function<void()> done = {});
  /// Closes every connection now, whatever it is doing (after close(), this
  /// makes it finish at once).
  void close_all_connections();
  /// Open connections.
  std::size_t connection_count() const noexcept;
  /// The bound address, once listening.
  const net::address& local_address() const noexcept;
  bool is_closing() const noexcept;

 private:
  std::unique_ptr<detail::server_state> s_;
};

}  // namespace corral::http
