// serve_static: Express's express.static (the serve-static and send
// modules) on corral::http: files under a root, conditional requests, one
// byte range, index files, and streaming with back-pressure.
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "corral/http.hpp"
#include "http/internal.hpp"

namespace corral::http {

namespace {

struct mime_entry {
  std::string_view ext;
  std::string_view type;
};

// The types a web server meets most; the rest are octet streams (as nginx's
// default_type, and what a browser then downloads).
constexpr std::array<mime_entry, 38> mime_table{{
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json; charset=utf-8"},
    {"map", "application/json; charset=utf-8"},
    {"txt", "text/plain; charset=utf-8"},
    {"md", "text/markdown; charset=utf-8"},
    {"csv", "text/csv; charset=utf-8"},
    {"xml", "application/xml"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"avif", "image/avif"},
    {"ico", "image/x-icon"},
    {"bmp", "image/bmp"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"ttf", "font/ttf"},
    {"otf", "font/otf"},
    {"wasm", "application/wasm"},
    {"pdf", "application/pdf"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
    {"tar", "application/x-tar"},
    {"mp4", "video/mp4"},
    {"webm", "video/webm"},
    {"ogg", "audio/ogg"},
    {"mp3", "audio/mpeg"},
    {"wav", "audio/wav"},
    {"webmanifest", "application/manifest+json"},
    {"yaml", "text/yaml; charset=utf-8"},
    {"yml", "text/yaml; charset=utf-8"},
    {"ics", "text/calendar; charset=utf-8"},
}};

// An IMF-fixdate back to time_t; -1 for anything else (the obsolete formats
// a conditional request may carry are then ignored: the full answer).
time_t parse_http_date(std::string_view s) {
  static constexpr std::string_view months = "JanFebMarAprMayJunJulAugSepOctNovDec";
  // "Sun, 06 Nov 1994 08:49:37 GMT": 29 characters.
  if (s.size() != 29 || s[3] != ',' || s[4] != ' ' || s.substr(25) != " GMT") return -1;
  auto num = [&](std::size_t at, std::size_t n, int& out) {
    auto r = std::from_chars(s.data() + at, s.data() + at + n, out);
    return r.ec == std::errc() && r.ptr == s.data() + at + n;
  };
  struct tm tm {};
  int year = 0;
  auto m = months.find(s.substr(8, 3));
  if (m == std::string_view::npos || m % 3 != 0) return -1;
  if (!num(5, 2, tm.tm_mday) || !num(12, 4, year) || !num(17, 2, tm.tm_hour) || !num(20, 2, tm.tm_min) ||
      !num(23, 2, tm.tm_sec))
    return -1;
  tm.tm_mon = static_cast<int>(m / 3);
  tm.tm_year = year - 1900;
  return timegm(&tm);
}

// Is `etag` (ours: strong) among a header's list of entity tags, or is the
// list "*"? Weak comparison (If-None-Match) ignores a W/ prefix; strong
// comparison (If-Match, If-Range) takes no weak tag (RFC 9110 8.8.3.2).
enum class compare { weak, strong };
bool etag_matches(std::string_view list, std::string_view etag, compare how) {
  return detail::find_item(list, ',', [&](std::string_view item) {
    if (item == "*") return true;
    if (item.substr(0, 2) == "W/") {
      if (how == compare::strong) return false;
      item.remove_prefix(2);
    }
    return !item.empty() && item == etag;
  });
}

// "bytes=a-b", "bytes=a-", "bytes=-n" against a file of `size` bytes: the
// first and last byte. nullopt when the header is not one range we serve
// (several ranges, another unit, a malformed one: the whole file, as
// send does); `unsatisfiable` when it is one range past the end (416).
std::optional<std::pair<uint64_t, uint64_t>> parse_range(std::string_view h, uint64_t size, bool& unsatisfiable) {
  unsatisfiable = false;
  if (h.substr(0, 6) != "bytes=") return std::nullopt;
  h.remove_prefix(6);
  if (h.find(',') != std::string_view::npos) return std::nullopt;
  auto dash = h.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  auto number = [](std::string_view t, uint64_t& out) {
    auto r = std::from_chars(t.data(), t.data() + t.size(), out);
    return !t.empty() && r.ec == std::errc() && r.ptr == t.data() + t.size();
  };
  std::string_view a = h.substr(0, dash), b = h.substr(dash + 1);
  uint64_t first = 0, last = 0;
  if (a.empty()) {  // the last `b` bytes
    uint64_t n = 0;
    if (!number(b, n)) return std::nullopt;
    if (n == 0 || size == 0) {
      unsatisfiable = true;
      return std::nullopt;
    }
    first = n >= size ? 0 : size - n;
    last = size - 1;
  } else {
    if (!number(a, first)) return std::nullopt;
    if (b.empty()) {
      last = size == 0 ? 0 : size - 1;
    } else if (!number(b, last) || last < first) {
      return std::nullopt;
    }
    if (first >= size) {
      unsatisfiable = true;
      return std::nullopt;
    }
    if (last >= size) last = size - 1;
  }
  return std::make_pair(first, last);
}

class static_server {
 public:
  static_server(std::string root, static_options o) : root_(std::move(root)), o_(std::move(o)) {
    // ("" would make every path absolute: the whole filesystem.)
    if (root_.empty()) throw std::invalid_argument("serve_static: the root directory is required");
    while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
  }

  void serve(request& req, response& res, const next_fn& next) const {
    bool head = req.method() == "HEAD";
    if (req.method() != "GET" && !head) {
      if (o_.fallthrough) return next();
      res.status(405).set("Allow", "GET, HEAD").set("Content-Type", "text/plain; charset=utf-8").send("Method Not Allowed");
      return;
    }
    // Every answer from here may depend on Accept-Encoding (a dot file's
    // 404 may be the fallback's compressed copy).
    if (o_.precompressed) res.vary("Accept-Encoding");
    std::string_view path = req.path();
    std::string_view rel = path.substr(req.base_url().size());
    std::string decoded = percent_decode(rel);
    if (decoded.find('\0') != std::string::npos) return plain(res, 400, "Bad Request");
    if (decoded.empty() || decoded.front() != '/') decoded.insert(decoded.begin(), '/');
    // Every segment: ".." is refused outright (send's 403), a dot file
    // does not exist unless asked for.
    for (std::size_t at = 1; at <= decoded.size();) {
      std::size_t end = decoded.find('/', at);
      if (end == std::string::npos) end = decoded.size();
      std::string_view seg(decoded.data() + at, end - at);
      if (seg == "..") return plain(res, 403, "Forbidden");
      if (!o_.dotfiles && !seg.empty() && seg.front() == '.') return not_found(req, res, next);
      at = end + 1;
    }
    std::string file = root_ + decoded;
    if (decoded.back() != '/')
      if (auto c = precompressed_copy(req, file)) return send_file(req, res, std::move(c->fd), c->st, file, head, c->coding);
    unique_fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
    struct stat st {};
    if (!fd || ::fstat(fd.get(), &st) != 0) return open_failed(errno, req, res, next);
    if (S_ISDIR(st.st_mode)) {
      // (The mount point itself, "/static" under use("/static"), too: its
      // page's relative links need the slash.)
      if (rel.empty() || rel.back() != '/') {
        if (!o_.redirect) return not_found(req, res, next);
        // One leading slash: "//host/" would be another site's URL.
        std::string_view p = path;
        while (p.size() > 1 && p[1] == '/') p.remove_prefix(1);
        std::string location = std::string(p) + "/";
        if (auto q = req.query_string(); !q.empty()) location.append("?").append(q);
        res.status(301).set("Location", location).set("Content-Type", "text/plain; charset=utf-8");
        res.send("Redirecting to " + location + "\n");
        return;
      }
      if (o_.index.empty()) return not_found(req, res, next);
      file += o_.index;
      if (auto c = precompressed_copy(req, file)) return send_file(req, res, std::move(c->fd), c->st, file, head, c->coding);
      fd = unique_fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
      if (!fd || ::fstat(fd.get(), &st) != 0) return open_failed(errno, req, res, next);
    }
    if (!S_ISREG(st.st_mode)) return not_found(req, res, next);
    send_file(req, res, std::move(fd), st, file, head);
  }

 private:
  static void plain(response& res, int code, std::string_view text) {
    res.status(code).set("Content-Type", "text/plain; charset=utf-8").send(text);
  }
  void not_found(request& req, response& res, const next_fn& next) const {
    if (!o_.fallback.empty()) {
      std::string file = root_ + "/" + o_.fallback;
      bool head = req.method() == "HEAD";
      if (auto c = precompressed_copy(req, file)) return send_file(req, res, std::move(c->fd), c->st, file, head, c->coding);
      unique_fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
      struct stat st {};
      if (fd && ::fstat(fd.get(), &st) == 0 && S_ISREG(st.st_mode))
        return send_file(req, res, std::move(fd), st, file, head);
    }
    if (o_.fallthrough) return next();
    plain(res, 404, "Not Found");
  }
  void open_failed(int err, request& req, response& res, const next_fn& next) const {
    if (err == EACCES || err == EPERM) return plain(res, 403, "Forbidden");
    if (err == ENOENT || err == ENOTDIR || err == ENAMETOOLONG || err == ELOOP) return not_found(req, res, next);
    plain(res, 500, "Internal Server Error");
  }

  // A compressed copy of `file` made ahead of time that the client takes
  // (the coding it weights higher; br on a tie), tried before the file itself, as nginx's gzip_static: for
  // such a client the original is not opened at all.
  struct copy {
    unique_fd fd;
    struct stat st {};
    const char* coding = nullptr;
  };
  std::optional<copy> precompressed_copy(const request& req, const std::string& file) const {
    if (!o_.precompressed) return std::nullopt;
    // The codings the client takes, its preferred first (br on a tie).
    std::pair<const char*, const char*> codings[] = {{"br", ".br"}, {"gzip", ".gz"}};
    const int br = detail::encoding_weight(req.headers(), "br"), gzip = detail::encoding_weight(req.headers(), "gzip");
    if (gzip > br) std::swap(codings[0], codings[1]);
    for (auto [name, ext] : codings) {
      if (detail::encoding_weight(req.headers(), name) == 0) continue;
      copy c;
      c.fd = unique_fd(::open((file + ext).c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
      if (c.fd && ::fstat(c.fd.get(), &c.st) == 0 && S_ISREG(c.st.st_mode)) {
        c.coding = name;
        return c;
      }
    }
    return std::nullopt;
  }

  // `file` (the original's name: its type) from `fd`, or its compressed
  // copy `coding` (its own size, date and tag; ranges and preconditions are
  // of the copy, as nginx's).
  void send_file(request& req, response& res, unique_fd fd, const struct stat& st, const std::string& file, bool head,
                 const char* coding = nullptr) const {
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    const int64_t mtime_ms = int64_t(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1'000'000;
    // A strong tag, as nginx's: the same size and modification time (to the
    // millisecond) is taken as the same bytes, so ranges may be resumed. A
    // compressed copy's names its coding too.
    char etag[80] = "";
    if (o_.etag)
      std::snprintf(etag, sizeof etag, "\"%llx-%llx%s%s\"", static_cast<unsigned long long>(size),
                    static_cast<unsigned long long>(mtime_ms), coding ? "-" : "", coding ? coding : "");
    std::string modified = o_.last_modified ? detail::http_date(st.st_mtim.tv_sec) : std::string();

    // The preconditions in RFC 9110 13.2.2's order. A failed If-Match or
    // If-Unmodified-Since is 412: the client's copy is not the file's
    // current one (a resumed download of a file that changed stops there).
    // Without an ETag, If-Match can match nothing but "*".
    if (auto im = req.get("If-Match")) {
      if (!etag_matches(*im, etag, compare::strong))  // (no ETag: only "*" matches)
        return plain(res, 412, "Precondition Failed");
    } else if (auto ius = req.get("If-Unmodified-Since")) {
      time_t since = parse_http_date(*ius);
      if (since >= 0 && st.st_mtim.tv_sec > since) return plain(res, 412, "Precondition Failed");
    }
    res.set("Cache-Control", "public, max-age=" + std::to_string(o_.max_age.count()));
    if (*etag) res.set("ETag", etag);
    if (!modified.empty()) res.set("Last-Modified", modified);
    // 304 (with the validators and Cache-Control only, RFC 9110 15.4.5):
    // If-None-Match decides when present; If-Modified-Since otherwise.
    // A 304 carries the Vary and the (weak) tag the 200 would have had with
    // compression() (a copy made ahead of time carries its own).
    const int gzip = coding ? 0 : detail::access::gzip_decision(res, static_cast<std::size_t>(size), mime_type(file));
    if (auto inm = req.get("If-None-Match")) {
      if (*etag && etag_matches(*inm, etag, compare::weak)) return detail::access::gzip_headers(res, gzip), not_modified(res);
    } else if (auto ims = req.get("If-Modified-Since"); ims && o_.last_modified) {
      time_t since = parse_http_date(*ims);
      if (since >= 0 && st.st_mtim.tv_sec <= since) return detail::access::gzip_headers(res, gzip), not_modified(res);
    }
    res.set("Accept-Ranges", "bytes");
    res.set("Content-Type", mime_type(file));
    if (coding) res.set("Content-Encoding", coding);

    uint64_t first = 0, length = size;
    auto range = head ? std::nullopt : req.get("Range");  // (ranges are GET's only, RFC 9110 14.2)
    if (range) {
      // If-Range: the range only if the file is still the one the client
      // has part of (its ETag, strongly, or exactly its date); else the
      // whole file.
      bool fresh = true;
      if (auto ir = req.get("If-Range"))
        fresh = (ir->find('"') != std::string_view::npos) ? (*etag && *ir == etag)  // (a W/ one never equals)
                                                          : (*ir == modified && !modified.empty());
      bool unsatisfiable = false;
      auto r = fresh ? parse_range(*range, size, unsatisfiable) : std::nullopt;
      if (unsatisfiable) {
        res.status(416).set("Content-Range", "bytes */" + std::to_string(size));
        plain(res, 416, "Range Not Satisfiable");
        return;
      }
      if (r) {
        first = r->first;
        length = r->second - r->first + 1;
        res.status(206).set("Content-Range", "bytes " + std::to_string(r->first) + "-" + std::to_string(r->second) +
                                                 "/" + std::to_string(size));
      }
    }

    // A small body goes out with its headers in one write; a larger one by
    // sendfile(2), page cache to socket, as the client takes it.
    // (A HEAD that compression() would gzip is read too: its length is the
    // gzipped one a GET gets.)
    if ((!head || gzip == 2) && length > 0 && length <= response::high_water) {
      std::string body(static_cast<std::size_t>(length), '\0');
      ssize_t got;
      do got = ::pread(fd.get(), body.data(), body.size(), static_cast<off_t>(first));
      while (got < 0 && errno == EINTR);
      if (got == static_cast<ssize_t>(length)) return res.end(body);
      // (changed under us: the whole-file path below ends it short)
    }
    res.send_file(std::move(fd), first, length);
  }

  static void not_modified(response& res) {
    res.status(304);
    res.end();
  }

  std::string root_;
  static_options o_;
};

}  // namespace

std::string_view mime_type(std::string_view file_name) noexcept {
  auto slash = file_name.rfind('/');
  if (slash != std::string_view::npos) file_name.remove_prefix(slash + 1);
  auto dot = file_name.rfind('.');
  if (dot == std::string_view::npos || dot == 0) return "application/octet-stream";
  std::string_view ext = file_name.substr(dot + 1);
  for (const auto& e : mime_table)
    if (detail::iequals(e.ext, ext)) return e.type;
  return "application/octet-stream";
}

middleware serve_static(std::string root, static_options options) {
  auto s = std::make_shared<const static_server>(std::move(root), std::move(options));
  return [s](request& req, response& res, next_fn next) { s->serve(req, res, next); };
}

}  // namespace corral::http
