// compression(): gzip for bodies sent whole (Express's compression(),
// nginx's gzip), and the Accept-Encoding weights it and serve_static's
// precompressed copies go by.
#include <zlib.h>

#include <algorithm>
#include <stdexcept>

#include "http/internal.hpp"

namespace corral::http {

namespace detail {

int encoding_weight(const std::vector<header>& headers, std::string_view coding) {
  int own = -1, any = -1;
  using detail::trim_ows;
  for (const header& h : headers) {
    if (!detail::iequals(h.name, "Accept-Encoding")) continue;
    detail::find_item(h.value, ',', [&](std::string_view item) {
      auto semi = item.find(';');
      std::string_view name = trim_ows(item.substr(0, semi));
      int q = 1000;
      if (semi != std::string_view::npos)
        detail::find_item(item.substr(semi + 1), ';', [&](std::string_view p) {
          if (p.size() < 3 || (p[0] != 'q' && p[0] != 'Q') || trim_ows(p.substr(1)).substr(0, 1) != "=") return false;
          std::string_view v = trim_ows(trim_ows(p.substr(1)).substr(1));
          // Read as JavaScript's parseFloat reads it (Express's negotiator):
          // the leading number, to a thousandth; none (or a negative one)
          // is 0, which refuses; above 1 is 1.
          long whole = 0, frac = 0, scale = 100;
          std::size_t i = 0;
          for (; i < v.size() && v[i] >= '0' && v[i] <= '9'; ++i) whole = std::min(whole * 10 + (v[i] - '0'), 1000L);
          if (i < v.size() && v[i] == '.')
            for (++i; i < v.size() && v[i] >= '0' && v[i] <= '9'; ++i, scale /= 10) frac += (v[i] - '0') * scale;
          q = static_cast<int>(std::min(whole * 1000 + frac, 1000L));
          return false;
        });
      if (detail::iequals(name, coding) || (coding == "gzip" && detail::iequals(name, "x-gzip"))) own = std::max(own, q);
      else if (name == "*") any = std::max(any, q);
      return false;
    });
  }
  return own >= 0 ? own : std::max(any, 0);
}


namespace {

// One deflate state per thread and level, reset between bodies: deflateInit
// allocates about 256 KiB, which per response would cost more than the
// compression of a small body.
struct deflater {
  z_stream z{};
  int level = 0;
  ~deflater() {
    if (level) deflateEnd(&z);
  }
};

}  // namespace

void gzip_into(std::string& out, std::string_view in, int level) {
  thread_local deflater d;
  if (d.level != level) {
    if (d.level) deflateEnd(&d.z);
    d.z = z_stream{};
    d.level = 0;
    // 15 + 16: a 32 KiB window with a gzip header and trailer.
    if (deflateInit2(&d.z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) throw std::bad_alloc();
    d.level = level;
  } else {
    deflateReset(&d.z);
  }
  std::size_t at = out.size();
  out.resize(at + deflateBound(&d.z, static_cast<uLong>(in.size())));
  d.z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  d.z.avail_in = static_cast<uInt>(in.size());
  d.z.next_out = reinterpret_cast<Bytef*>(out.data() + at);
  d.z.avail_out = static_cast<uInt>(out.size() - at);
  int r = deflate(&d.z, Z_FINISH);  // deflateBound: room for all of it at once
  out.resize(out.size() - d.z.avail_out);
  if (r != Z_STREAM_END) throw std::runtime_error("gzip: deflate failed");
}

}  // namespace detail

namespace {

// Whether a Content-Type is text that gzip shrinks (the compressible
// database's common part: text/*, JSON, JavaScript, XML, SVG).
bool compressible(std::string_view type) {
  type = detail::trim_ows(type.substr(0, type.find(';')));
  auto slash = type.find('/');
  if (slash == std::string_view::npos) return false;
  std::string_view top = type.substr(0, slash), sub = type.substr(slash + 1);
  auto ends_with = [&](std::string_view suffix) {
    return sub.size() >= suffix.size() && detail::iequals(sub.substr(sub.size() - suffix.size()), suffix);
  };
  if (detail::iequals(top, "text")) return true;
  if (ends_with("+json") || ends_with("+xml")) return true;
  if (detail::iequals(top, "application"))
    return detail::iequals(sub, "json") || detail::iequals(sub, "javascript") || detail::iequals(sub, "xml") ||
           detail::iequals(sub, "x-javascript") || detail::iequals(sub, "wasm");
  return detail::iequals(type, "image/svg+xml");
}

}  // namespace

middleware compression(compression_options options) {
  if (options.level < 1 || options.level > 9)
    throw std::invalid_argument("compression: level " + std::to_string(options.level) + " is not 1-9");
  return [options](request& req, response& res, next_fn next) {
    // gzip unless the client weights it 0, or weights identity (named, or
    // by "*") above it: Express's negotiator.
    int gzip = detail::encoding_weight(req.headers(), "gzip");
    bool accepted = gzip > 0 && gzip >= detail::encoding_weight(req.headers(), "identity");
    detail::access::set_compression(res, options.level, options.threshold, accepted);
    next();
  };
}

int response::gzip_decision(std::size_t size, std::string_view type) const {
  // (Over 1 GiB: zlib's one-call lengths are 32-bit, and no one sends that whole.)
  if (gzip_level_ == 0 || size < gzip_threshold_ || size > (std::size_t(1) << 30)) return 0;
  if (!compressible(type) || get("Content-Encoding")) return 0;
  if (auto cc = get("Cache-Control"); cc && detail::find_item(*cc, ',', [](std::string_view d) {
        return detail::iequals(d, "no-transform");
      }))
    return 0;
  return gzip_accepted_ ? 2 : 1;
}

void response::gzip_headers(int decision) {
  if (decision >= 1) vary("Accept-Encoding");
  if (decision < 2) return;
  // The gzipped bytes are another representation: a strong tag of the
  // uncompressed ones would be a lie (compression() makes it weak too),
  // and byte ranges are not of these bytes (nginx's gzip drops them).
  if (auto etag = get("ETag"); etag && etag->substr(0, 2) != "W/") set("ETag", "W/" + std::string(*etag));
  if (get("Accept-Ranges")) set("Accept-Ranges", "none");
}

bool response::maybe_compress(std::string_view body, std::string& out) {
  if (status_ < 200 || status_ == 204 || status_ == 206 || status_ == 304) return false;
  std::string_view type;
  if (auto t = get("Content-Type")) {
    type = *t;
  } else if (default_type_) {  // "Content-Type: text/html; charset=utf-8\r\n"
    type = default_type_;
    type = type.substr(type.find(':') + 1);
    type = type.substr(0, type.find('\r'));
  }
  int decision = gzip_decision(body.size(), type);
  gzip_headers(decision);
  if (decision < 2) return false;
  detail::gzip_into(out, body, gzip_level_);
  set("Content-Encoding", "gzip");
  return true;
}

}  // namespace corral::http
