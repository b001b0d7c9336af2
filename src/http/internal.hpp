// Internal to corral::http: helpers shared by the router, the messages and
// the connection.
#pragma once

#include <ctime>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "corral/http.hpp"

namespace corral::http::detail {

/// Reaches the private state of request/response for the library's own code.
struct access {
  static std::size_t param_count(const request& r) noexcept { return r.n_params_; }
  static void truncate_params(request& r, std::size_t n) noexcept { r.n_params_ = n; }
  static void add_param(request& r, std::string_view name, std::string_view raw) { r.add_param(name, raw); }
  static void set_base_len(request& r, std::size_t n) noexcept { r.base_len_ = n; }
  static int gzip_decision(const response& r, std::size_t size, std::string_view type) {
    return r.gzip_decision(size, type);
  }
  static void gzip_headers(response& r, int decision) { r.gzip_headers(decision); }
  static void set_compression(response& r, int level, std::size_t threshold, bool accepted) noexcept {
    r.gzip_level_ = level;
    r.gzip_threshold_ = threshold;
    r.gzip_accepted_ = accepted;
  }
};

/// The weight (RFC 9110 12.5.3) that a request's Accept-Encoding lines, all
/// of them, give `coding`, in thousandths: its own entry's (x-gzip counts as
/// gzip), else "*"'s, else 0.
int encoding_weight(const std::vector<header>& headers, std::string_view coding);

/// `in` as one gzip member (RFC 1952) at zlib `level`, appended to `out`.
/// The deflate state is kept per thread and reset between bodies.
void gzip_into(std::string& out, std::string_view in, int level);

/// ASCII case-insensitive equality (header names, tokens).
inline bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    unsigned char x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
    if (x >= 'A' && x <= 'Z') x |= 0x20;
    if (y >= 'A' && y <= 'Z') y |= 0x20;
    if (x != y) return false;
  }
  return true;
}

/// `v` without the spaces and tabs around it (RFC 9110's OWS).
inline std::string_view trim_ows(std::string_view v) noexcept {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

/// Walks a `sep`-separated header list ("a, b", "k=v; k2=v2"): calls
/// `stop(item)` with each item, trimmed (an empty one too), until it returns
/// true. Returns whether it did.
template <class F>
bool find_item(std::string_view list, char sep, F&& stop) {
  while (!list.empty()) {
    auto at = list.find(sep);
    if (stop(trim_ows(list.substr(0, at)))) return true;
    if (at == std::string_view::npos) break;
    list.remove_prefix(at + 1);
  }
  return false;
}

/// IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") of `t`.
std::string http_date(time_t t);

/// "Date: <IMF-fixdate>\r\n", re-rendered when the wall-clock second changes
/// (CLOCK_REALTIME_COARSE is a vDSO read, so asking per response is cheap).
std::string_view date_line() noexcept;

/// "HTTP/1.1 <code> <reason>\r\n".
std::string_view status_line(int code, std::string& scratch);
/// The reason phrase for `code` ("Unknown" if we have none).
std::string_view reason(int code) noexcept;

/// Appends `n` in decimal / hex.
void append_decimal(std::string& out, std::size_t n);
void append_hex(std::string& out, std::size_t n);

}  // namespace corral::http::detail
