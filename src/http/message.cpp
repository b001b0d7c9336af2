// Requests and responses: accessors, header rendering, body framing.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <stdexcept>

#include "core/json_nesting.hpp"
#include "http/connection.hpp"
#include "http/internal.hpp"

namespace corral::http {

namespace {

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void decode_into(std::string& out, std::string_view in, bool plus_is_space) {
  out.clear();
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%' && i + 2 < in.size()) {
      int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_is_space && c == '+' ? ' ' : c);
  }
}

bool has_crlf(std::string_view v) noexcept { return v.find_first_of("\r\n") != std::string_view::npos; }

}  // namespace

std::string percent_decode(std::string_view in, bool plus_is_space) {
  std::string out;
  out.reserve(in.size());
  decode_into(out, in, plus_is_space);
  return out;
}

// ---- request ---------------------------------------------------------------

std::string_view request::path() const noexcept {
  std::string_view u = url_;
  // RFC 9112 3.2.2: the absolute-form ("http://host/p?q", as sent to a
  // proxy) must be accepted; its path is what follows the authority, "/"
  // if none (as Express's parseurl).
  if (!u.empty() && u[0] != '/') {
    std::size_t scheme_end = u.find("://");
    if (scheme_end != std::string_view::npos && u.find_first_of("/?#") == scheme_end + 1) {
      std::size_t start = u.find_first_of("/?#", scheme_end + 3);
      if (start == std::string_view::npos || u[start] != '/') return "/";
      u = u.substr(start);
    }
  }
  return u.substr(0, u.find_first_of("?#"));
}

std::string_view request::query_string() const noexcept {
  std::string_view u = url_;
  std::size_t q = u.find('?');
  if (q == std::string_view::npos) return {};
  u = u.substr(q + 1);
  return u.substr(0, u.find('#'));
}

namespace {

// Calls `fn(value)` for each `name=value` of the query string, decoded, in
// order, until `fn` returns false.
template <class Fn>
void each_query_value(std::string_view qs, std::string_view name, Fn&& fn) {
  std::string key;
  while (!qs.empty()) {
    std::size_t amp = qs.find('&');
    std::string_view pair = qs.substr(0, amp);
    qs = amp == std::string_view::npos ? std::string_view{} : qs.substr(amp + 1);
    std::size_t eq = pair.find('=');
    decode_into(key, pair.substr(0, eq), true);
    if (key != name) continue;
    if (!fn(eq == std::string_view::npos ? std::string() : percent_decode(pair.substr(eq + 1), true))) return;
  }
}

}  // namespace

std::optional<std::string> request::query(std::string_view name) const {
  std::optional<std::string> first;
  each_query_value(query_string(), name, [&](std::string v) {
    first = std::move(v);
    return false;
  });
  return first;
}

std::vector<std::string> request::query_all(std::string_view name) const {
  std::vector<std::string> out;
  each_query_value(query_string(), name, [&](std::string v) {
    out.push_back(std::move(v));
    return true;
  });
  return out;
}

bool request::is(std::string_view type) const {
  auto ct = get("Content-Type");
  if (!ct) return false;
  std::string_view media = detail::trim_ows(ct->substr(0, ct->find(';')));
  auto slash = media.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == media.size()) return false;
  std::string_view top = media.substr(0, slash), sub = media.substr(slash + 1);
  auto has_suffix = [&](std::string_view suffix) {  // "+json"
    return sub.size() > suffix.size() && detail::iequals(sub.substr(sub.size() - suffix.size()), suffix);
  };
  if (type == "json") return (detail::iequals(top, "application") && detail::iequals(sub, "json")) || has_suffix("+json");
  if (type == "urlencoded") return detail::iequals(media, "application/x-www-form-urlencoded");
  if (type == "multipart") return detail::iequals(top, "multipart");
  if (!type.empty() && type.front() == '+') return has_suffix(type);
  if (type.find('/') == std::string_view::npos) {  // an extension: its type
    std::string name = "x.";
    name.append(type);
    std::string_view known = mime_type(name);
    known = detail::trim_ows(known.substr(0, known.find(';')));
    return known != "application/octet-stream" && detail::iequals(media, known);
  }
  auto want_slash = type.find('/');
  std::string_view want_top = type.substr(0, want_slash), want_sub = type.substr(want_slash + 1);
  return (want_top == "*" || detail::iequals(want_top, top)) && (want_sub == "*" || detail::iequals(want_sub, sub));
}

std::optional<nlohmann::json> request::json() const {
  if (!is("json")) return std::nullopt;
  if (body_.empty()) return nlohmann::json::object();
  // (A value nested that deep would overflow the stack of the handler that
  // copies or dumps it.)
  if (corral::detail::json_nests_deeper_than(body_, corral::detail::max_json_nesting))
    throw status_error(400, "invalid JSON in the request body: nested deeper than " +
                                std::to_string(corral::detail::max_json_nesting) + " levels");
  try {
    return nlohmann::json::parse(body_);
  } catch (const nlohmann::json::exception& e) {
    // A syntax error, or a number no double holds (1e999: out_of_range).
    // nlohmann's text names the byte: "[json.exception.parse_error.101]
    // parse error at line 1, column 9: syntax error while parsing ..."; the
    // part after the tag is for the client.
    std::string_view what = e.what();
    if (auto close = what.find("] "); close != std::string_view::npos) what.remove_prefix(close + 2);
    throw status_error(400, "invalid JSON in the request body: " + std::string(what));
  }
}

std::optional<std::string> request::form(std::string_view name) const {
  if (!is("urlencoded")) return std::nullopt;
  std::optional<std::string> first;
  each_query_value(body_, name, [&](std::string v) {
    first = std::move(v);
    return false;
  });
  return first;
}

std::vector<std::string> request::form_all(std::string_view name) const {
  std::vector<std::string> out;
  if (!is("urlencoded")) return out;
  each_query_value(body_, name, [&](std::string v) {
    out.push_back(std::move(v));
    return true;
  });
  return out;
}

std::string_view request::param(std::string_view name) const noexcept {
  for (std::size_t i = 0; i < n_params_; ++i)
    if (params_[i].name == name) return params_[i].value;
  return {};
}

bool request::has_param(std::string_view name) const noexcept {
  for (std::size_t i = 0; i < n_params_; ++i)
    if (params_[i].name == name) return true;
  return false;
}

std::optional<std::string_view> request::get(std::string_view name) const noexcept {
  for (const auto& h : headers_)
    if (detail::iequals(h.name, name)) return h.value;
  return std::nullopt;
}

std::optional<std::string_view> request::trailer(std::string_view name) const noexcept {
  for (const auto& h : trailers_)
    if (detail::iequals(h.name, name)) return h.value;
  return std::nullopt;
}

const net::address& request::remote_address() const {
  if (!remote_) {
    net::address a;
    a.host.clear();
    int fd = conn_ ? conn_->socket_fd() : -1;
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (fd < 0) {
      static const net::address none = a;
      return none;  // (not kept: a test's request may be given one later)
    }
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
      char text[INET6_ADDRSTRLEN] = "";
      if (ss.ss_family == AF_INET) {
        auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
        if (::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text)) a.host = text;
        a.port = ntohs(in->sin_port);
      } else if (ss.ss_family == AF_INET6) {
        auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
        if (::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text)) a.host = text;
        a.port = ntohs(in6->sin6_port);
      } else if (ss.ss_family == AF_UNIX && len > offsetof(sockaddr_un, sun_path)) {
        auto* un = reinterpret_cast<const sockaddr_un*>(&ss);
        if (un->sun_path[0] != '\0') a.path.assign(un->sun_path, ::strnlen(un->sun_path, len - offsetof(sockaddr_un, sun_path)));
      }
    }
    remote_ = std::move(a);
  }
  return *remote_;
}

namespace {

using detail::find_item;
using detail::trim_ows;

// The first value of a comma-separated header, trimmed.
std::string_view first_value(std::string_view v) { return trim_ows(v.substr(0, v.find(','))); }

}  // namespace

std::string request::ip() const {
  const std::string& peer = remote_address().host;
  if (trust_proxy_hops_ <= 0) return peer;
  // The chain, client first: every X-Forwarded-For line's entries, then the peer.
  std::vector<std::string_view> chain;
  for (const auto& h : headers_) {
    if (!detail::iequals(h.name, "X-Forwarded-For")) continue;
    find_item(h.value, ',', [&](std::string_view entry) {
      if (!entry.empty()) chain.push_back(entry);
      return false;
    });
  }
  // The peer is hop 0; each trusted proxy added the entry before it.
  std::size_t hops = std::min(static_cast<std::size_t>(trust_proxy_hops_), chain.size());
  return hops == 0 ? peer : std::string(chain[chain.size() - hops]);
}

std::string_view request::hostname() const noexcept {
  std::optional<std::string_view> host;
  if (trust_proxy_hops_ > 0) host = get("X-Forwarded-Host");
  if (!host) host = get("Host");
  if (!host) return {};
  std::string_view h = first_value(*host);
  if (!h.empty() && h.front() == '[') return h.substr(0, h.find(']') == std::string_view::npos ? h.size() : h.find(']') + 1);
  return h.substr(0, h.find(':'));
}

std::string_view request::protocol() const noexcept {
  if (trust_proxy_hops_ > 0)
    if (auto p = get("X-Forwarded-Proto"); p && !first_value(*p).empty()) return first_value(*p);
  return "http";
}

std::optional<std::string> request::cookie(std::string_view name) const {
  // "a=1; b=2" in one or more Cookie lines; the first `name` wins (as the
  // cookie module's parse).
  for (const auto& h : headers_) {
    if (!detail::iequals(h.name, "Cookie")) continue;
    std::string_view value;
    bool found = find_item(h.value, ';', [&](std::string_view pair) {
      auto eq = pair.find('=');
      if (eq == std::string_view::npos || trim_ows(pair.substr(0, eq)) != name) return false;
      value = trim_ows(pair.substr(eq + 1));
      return true;
    });
    if (!found) continue;
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
    return percent_decode(value, false);
  }
  return std::nullopt;
}

void request::add_param(std::string_view name, std::string_view raw_value) {
  if (n_params_ == params_.size()) params_.emplace_back();
  auto& slot = params_[n_params_++];
  slot.name = name;
  decode_into(slot.value, raw_value, false);
}

void request::clear() noexcept {
  url_.clear();
  header_bytes_.clear();
  header_offsets_.clear();
  headers_.clear();
  trailer_bytes_.clear();
  trailer_offsets_.clear();
  trailers_.clear();
  body_.clear();
  n_params_ = 0;
  base_len_ = 0;
}

void request::set_for_test(std::string_view method, std::string_view url,
                           std::vector<std::pair<std::string, std::string>> hdrs, std::string_view body) {
  static const std::array<std::string_view, 9> known = {"GET",  "HEAD",  "POST",    "PUT",  "PATCH",
                                                         "DELETE", "OPTIONS", "TRACE", "CONNECT"};
  clear();
  method_ = "OTHER";
  for (auto m : known)
    if (m == method) method_ = m;
  url_ = std::string(url);
  for (auto& [n, v] : hdrs) {
    header_bytes_ += n;
    std::size_t name_end = header_bytes_.size();
    header_bytes_ += v;
    header_offsets_.emplace_back(name_end, header_bytes_.size());
  }
  std::size_t start = 0;
  for (auto [name_end, value_end] : header_offsets_) {
    std::string_view all = header_bytes_;
    headers_.push_back({all.substr(start, name_end - start), all.substr(name_end, value_end - name_end)});
    start = value_end;
  }
  body_ = std::string(body);
}

// ---- response --------------------------------------------------------------

void response::reset(std::string* out, detail::connection* conn, bool head, bool keep_alive, bool http10) {
  out_ = out;
  conn_ = conn;
  n_headers_ = 0;
  declared_length_.reset();
  body_sent_ = 0;
  status_ = 200;
  head_ = head;
  keep_alive_ = keep_alive;
  http10_ = http10;
  headers_sent_ = chunked_ = finished_ = has_content_type_ = false;
  default_type_ = nullptr;
  gzip_level_ = 0;
  gzip_accepted_ = false;
}

void response::reset_for_test(bool head, bool keep_alive) {
  test_out_.clear();
  reset(&test_out_, nullptr, head, keep_alive, false);
}

response& response::status(int code) noexcept {
  if (!headers_sent_ && code >= 100 && code <= 999) status_ = code;
  return *this;
}

response& response::set(std::string_view name, std::string_view value) { return put_header(name, value, true); }

response& response::append(std::string_view name, std::string_view value) { return put_header(name, value, false); }

response& response::put_header(std::string_view name, std::string_view value, bool replace) {
  if (headers_sent_ || name.empty() || has_crlf(name) || has_crlf(value)) return *this;  // no response splitting
  using detail::iequals;
  if (iequals(name, "Content-Length")) {
    std::size_t n = 0;
    auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (ec == std::errc() && p == value.data() + value.size()) declared_length_ = n;
    return *this;
  }
  if (iequals(name, "Transfer-Encoding")) return *this;  // we frame the body ourselves
  if (iequals(name, "Connection")) {
    if (iequals(value, "close")) keep_alive_ = false;
    return *this;  // rendered from keep_alive_
  }
  if (iequals(name, "Content-Type")) {
    has_content_type_ = true;
    replace = true;  // (one type)
  }
  if (replace)
    for (std::size_t i = 0; i < n_headers_; ++i) {
      if (iequals(headers_[i].first, name)) {
        headers_[i].second.assign(value);
        return *this;
      }
    }
  if (n_headers_ == headers_.size()) headers_.emplace_back();
  auto& slot = headers_[n_headers_++];
  slot.first.assign(name);
  slot.second.assign(value);
  return *this;
}

std::optional<std::string_view> response::get(std::string_view name) const noexcept {
  for (std::size_t i = 0; i < n_headers_; ++i)
    if (detail::iequals(headers_[i].first, name)) return std::string_view(headers_[i].second);
  return std::nullopt;
}

response& response::vary(std::string_view field) {
  auto now = get("Vary");
  if (!now || trim_ows(*now).empty()) return set("Vary", field);
  if (find_item(*now, ',', [&](std::string_view item) { return item == "*" || detail::iequals(item, field); }))
    return *this;
  std::string joined(*now);
  joined.append(", ").append(field);
  return set("Vary", joined);
}

namespace {

// RFC 6265's cookie-name: an RFC 9110 token.
bool is_token(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (unsigned char c : s)
    if (c <= 0x20 || c >= 0x7f || std::string_view("()<>@,;:\\\"/[]?={}").find(static_cast<char>(c)) != std::string_view::npos)
      return false;
  return true;
}

// encodeURIComponent: all but A-Z a-z 0-9 - _ . ! ~ * ' ( ) as %XX.
void encode_component(std::string& out, std::string_view in) {
  static constexpr char hex[] = "0123456789ABCDEF";
  for (unsigned char c : in) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
        std::string_view("-_.!~*'()").find(static_cast<char>(c)) != std::string_view::npos) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
}

// "; Domain=...; Path=...; Secure; HttpOnly; SameSite=..." as set. What
// could not be sent as given throws, as Express's res.cookie() does: a
// cookie without the Path or SameSite its author meant is a security bug.
void add_cookie_attributes(std::string& line, std::string_view name, const cookie_options& o) {
  auto check = [&](std::string_view what, std::string_view v) {
    for (unsigned char c : v)
      if (c < 0x20 || c == 0x7f || c == ';')
        throw std::invalid_argument("cookie '" + std::string(name) + "': option " + std::string(what) + " is invalid");
  };
  check("domain", o.domain);
  check("path", o.path);
  if (!o.same_site.empty() && !detail::iequals(o.same_site, "Strict") && !detail::iequals(o.same_site, "Lax") &&
      !detail::iequals(o.same_site, "None"))
    throw std::invalid_argument("cookie '" + std::string(name) + "': option same_site must be Strict, Lax or None");
  if (!o.domain.empty()) line += "; Domain=" + o.domain;
  if (!o.path.empty()) line += "; Path=" + o.path;
  if (o.secure) line += "; Secure";
  if (o.http_only) line += "; HttpOnly";
  if (!o.same_site.empty()) line += "; SameSite=" + o.same_site;
}

void check_cookie_name(std::string_view name) {
  if (!is_token(name)) throw std::invalid_argument("cookie name '" + std::string(name) + "' is not a token (RFC 6265)");
}

}  // namespace

response& response::cookie(std::string_view name, std::string_view value, const cookie_options& o) {
  check_cookie_name(name);
  std::string line(name);
  line += '=';
  encode_component(line, value);
  if (o.max_age) {
    // (Within what an Expires date can say: 0 .. 400 years, browsers' own cap being 400 days.)
    long long secs = std::clamp<long long>(o.max_age->count(), 0, 400LL * 366 * 86400);
    line += "; Max-Age=" + std::to_string(secs);
    line += "; Expires=" + detail::http_date(::time(nullptr) + static_cast<time_t>(secs));
  }
  add_cookie_attributes(line, name, o);
  return append("Set-Cookie", line);
}

response& response::clear_cookie(std::string_view name, const cookie_options& o) {
  check_cookie_name(name);
  // (Express 4's: an empty value that expired at the epoch.)
  std::string line(name);
  line += "=; Expires=Thu, 01 Jan 1970 00:00:00 GMT";
  add_cookie_attributes(line, name, o);
  return append("Set-Cookie", line);
}

namespace {
bool bodiless_status(int code) noexcept { return code < 200 || code == 204 || code == 304; }
}  // namespace

void response::render_head(std::size_t content_length, bool chunked) {
  std::string& out = *out_;
  out += detail::status_line(status_, scratch_);
  out += detail::date_line();
  if (!has_content_type_ && default_type_) out += default_type_;
  for (std::size_t i = 0; i < n_headers_; ++i) {
    out += headers_[i].first;
    out += ": ";
    out += headers_[i].second;
    out += "\r\n";
  }
  if (!bodiless_status(status_)) {
    if (chunked) {
      out += "Transfer-Encoding: chunked\r\n";
    } else if (content_length != std::string::npos) {
      out += "Content-Length: ";
      detail::append_decimal(out, content_length);
      out += "\r\n";
    }
  }
  if (!keep_alive_) {
    out += "Connection: close\r\n";
  } else if (http10_) {
    out += "Connection: keep-alive\r\n";
  }
  out += "\r\n";
  headers_sent_ = true;
  chunked_ = chunked;
}

void response::append_body(std::string_view bytes) {
  if (head_ || bodiless_status(status_) || bytes.empty()) return;
  if (chunked_) {
    detail::append_hex(*out_, bytes.size());
    *out_ += "\r\n";
    *out_ += bytes;
    *out_ += "\r\n";
    return;
  }
  // Bytes past the Content-Length sent would be read as the next response.
  if (declared_length_) bytes = bytes.substr(0, *declared_length_ - std::min(body_sent_, *declared_length_));
  body_sent_ += bytes.size();
  *out_ += bytes;
}

void response::redirect(std::string_view location, int code) {
  // What a URL cannot hold as is (controls, a space, bytes above ASCII) is
  // percent-encoded, as Express's encodeurl does; a '%' that starts an
  // escape stays, so an encoded URL is not encoded twice (a lone one is
  // %25). A CR LF cannot split the header either way.
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string url;
  url.reserve(location.size());
  auto hex_digit = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; };
  for (std::size_t i = 0; i < location.size(); ++i) {
    unsigned char ch = static_cast<unsigned char>(location[i]);
    bool lone_percent = ch == '%' && !(i + 2 < location.size() && hex_digit(location[i + 1]) && hex_digit(location[i + 2]));
    if (lone_percent || ch <= 0x20 || ch >= 0x7f || ch == '"' || ch == '<' || ch == '>' || ch == '\\' || ch == '^' || ch == '`' ||
        ch == '{' || ch == '|' || ch == '}') {
      url += '%';
      url += hex[ch >> 4];
      url += hex[ch & 15];
    } else {
      url += static_cast<char>(ch);
    }
  }
  status(code);
  set("Location", url);
  set("Content-Type", "text/plain; charset=utf-8");
  std::string body(detail::reason(code));
  body.append(". Redirecting to ").append(url);
  send(body);
}

void response::send(std::string_view body) {
  if (finished_ || !out_) return;
  if (headers_sent_) {
    end(body);
    return;
  }
  default_type_ = "Content-Type: text/html; charset=utf-8\r\n";  // rendered as a constant
  end_whole(body);
}

void response::json(const nlohmann::json& value) {
  if (finished_ || !out_) return;
  default_type_ = "Content-Type: application/json; charset=utf-8\r\n";
  std::string body = value.dump();
  if (headers_sent_) {
    end(body);
    return;
  }
  end_whole(body);
}

bool response::write(std::string_view chunk) {
  if (finished_ || !out_) return true;
  if (conn_ && conn_->closed()) return true;  // (the client left: discarded, and nothing to wait for)
  if (!headers_sent_) {
    if (declared_length_) {
      render_head(*declared_length_, false);
    } else if (http10_) {
      keep_alive_ = false;  // HTTP/1.0 has no chunking: the body ends with the connection
      render_head(std::string::npos, false);
    } else {
      render_head(std::string::npos, true);
    }
  }
  append_body(chunk);
  if (!conn_) return true;
  conn_->on_response_output();
  return conn_->buffered() <= high_water;
}

void response::on_drain(std::function<void()> fn) {
  if (!conn_) {
    if (fn) fn();
    return;
  }
  conn_->set_drain(std::move(fn));
}

bool response::aborted() const noexcept { return conn_ && conn_->closed(); }

void response::send_file(unique_fd fd, uint64_t offset, uint64_t length) {
  if (finished_ || !out_ || headers_sent_) return;
  declared_length_ = static_cast<std::size_t>(length);
  render_head(static_cast<std::size_t>(length), false);
  if (head_ || length == 0 || bodiless_status(status_)) return finish();
  if (!conn_) {  // (unit tests: the bytes, read here)
    std::string buf(static_cast<std::size_t>(length), '\0');
    ssize_t n = ::pread(fd.get(), buf.data(), buf.size(), static_cast<off_t>(offset));
    buf.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    append_body(buf);
    return finish();
  }
  finished_ = true;  // (the handler's part is done; the connection ends it once the file is out)
  conn_->send_file(std::move(fd), offset, length);
}

void response::end(std::string_view last) {
  if (finished_ || !out_) return;
  if (!headers_sent_) {
    end_whole(last);
    return;
  }
  append_body(last);
  if (chunked_ && !head_ && !bodiless_status(status_)) *out_ += "0\r\n\r\n";
  // A body shorter than its declared length: the client would wait for the
  // rest, or take the next response for it. Closing tells it it was cut.
  if (!chunked_ && declared_length_ && body_sent_ < *declared_length_ && !head_ && !bodiless_status(status_))
    keep_alive_ = false;
  finish();
}

// The whole body at once: framed by its own length, whatever Content-Length
// was set (as Express's res.send(), which sets it itself), but for HEAD,
// whose declared length is that of the body a GET would get.
void response::end_whole(std::string_view body) {
  std::string gzipped;
  if (gzip_level_ && maybe_compress(body, gzipped)) {
    body = gzipped;
    declared_length_.reset();  // (a HEAD's too: it is the length a GET gets)
  }
  if (!head_ || !declared_length_) declared_length_ = body.size();
  render_head(*declared_length_, false);
  append_body(body);
  finish();
}

void response::finish() {
  finished_ = true;
  if (conn_) conn_->on_response_end();
}

// ---- shared text -----------------------------------------------------------

namespace detail {

// IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), in the C locale whatever
// the program's.
std::string http_date(time_t t) {
  static constexpr const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7], tm.tm_mday,
                months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

std::string_view date_line() noexcept {
  static thread_local char line[64];
  static thread_local std::size_t len = 0;
  static thread_local time_t cached = -1;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  if (ts.tv_sec != cached) {
    cached = ts.tv_sec;
    struct tm tm;
    gmtime_r(&cached, &tm);
    len = strftime(line, sizeof line, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
  }
  return {line, len};
}

std::string_view reason(int code) noexcept {
  switch (code) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

std::string_view status_line(int code, std::string& scratch) {
  // The common ones pre-rendered: no formatting on the hot path.
  switch (code) {
    case 200: return "HTTP/1.1 200 OK\r\n";
    case 404: return "HTTP/1.1 404 Not Found\r\n";
    default: break;
  }
  scratch = "HTTP/1.1 ";
  append_decimal(scratch, static_cast<std::size_t>(code));
  scratch += ' ';
  scratch += reason(code);
  scratch += "\r\n";
  return scratch;
}

void append_decimal(std::string& out, std::size_t n) {
  char buf[24];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, n);
  out.append(buf, p);
}

void append_hex(std::string& out, std::size_t n) {
  char buf[24];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, n, 16);
  out.append(buf, p);
}

}  // namespace detail
}  // namespace corral::http
