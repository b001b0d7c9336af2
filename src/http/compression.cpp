// compression(): gzip for bodies sent whole (Express's compression(),
// nginx's gzip), and the Accept-Encoding weights it and serve_static's
// precompressed copies go by.
#include <zlib.h>

#include <algorithm>
#include <stdexcept>

#include "http/internal.hpp"

namespace corral::http {

namespace detail {

// A q that is not a qvalue (up to three decimals, at most 1) is ignored.
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
          // "0", "0.", "0.5", "0.125", "1", "1.000": up to three decimals.
          if (v.empty() || (v[0] != '0' && v[0] != '1') || v.size() > 5 || (v.size() > 1 && v[1] != '.') ||
              v.find_first_not_of("0123456789", 2) != std::string_view::npos)
            return false;
          int w = (v[0] - '0') * 1000;
          for (std::size_t i = 2, scale = 100; i < v.size(); ++i, scale /= 10) w += (v[i] - '0') * int(scale);
          q = std::min(w, 1000);
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
    bool accepted = detail::encoding_weight(req.headers(), "gzip") > 0;
    detail::access::set_compression(res, options.level, options.threshold, accepted);
    next();
  };
}

bool response::maybe_compress(std::string_view body, std::string& out) {
  if (gzip_level_ == 0 || body.size() < gzip_threshold_) return false;
  if (status_ < 200 || status_ == 204 || status_ == 206 || status_ == 304) return false;
  std::string_view type;
  if (auto t = get("Content-Type")) {
    type = *t;
  } else if (default_type_) {  // "Content-Type: text/html; charset=utf-8\r\n"
    type = default_type_;
    type = type.substr(type.find(':') + 1);
    type = type.substr(0, type.find('\r'));
  }
  if (!compressible(type) || get("Content-Encoding")) return false;
  if (auto cc = get("Cache-Control"); cc && detail::find_item(*cc, ',', [](std::string_view d) {
        return detail::iequals(d, "no-transform");
      }))
    return false;
  vary("Accept-Encoding");
  if (!gzip_accepted_) return false;
  detail::gzip_into(out, body, gzip_level_);
  set("Content-Encoding", "gzip");
  if (auto etag = get("ETag"); etag && etag->substr(0, 2) != "W/") set("ETag", "W/" + std::string(*etag));
  return true;
}

}  // namespace corral::http
