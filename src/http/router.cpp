// The router: Express-style path patterns matched segment by segment (no
// regular expressions on the request path), layers run in order.
#include <algorithm>
#include <string>

#include "corral/http.hpp"
#include "http/internal.hpp"

namespace corral::http {

struct router::segment {
  enum class kind { literal, param, optional_param, wildcard };
  kind k;
  std::string text;  // the literal, or the parameter's name
};

struct router::layer {
  bool is_middleware = false;
  std::string method;  // "" = any
  std::string prefix;  // middleware only
  std::vector<segment> segments;
  handler h;
  middleware m;
};

namespace {

using segment = router::segment;

std::vector<segment> compile(std::string_view pattern) {
  std::vector<segment> out;
  std::size_t i = 0;
  while (i < pattern.size()) {
    if (pattern[i] == '/') {
      ++i;
      continue;
    }
    std::size_t end = pattern.find('/', i);
    if (end == std::string_view::npos) end = pattern.size();
    std::string_view s = pattern.substr(i, end - i);
    i = end;
    if (s == "*") {
      out.push_back({segment::kind::wildcard, "*"});
    } else if (s.size() > 1 && s[0] == ':' && s.back() == '?') {
      out.push_back({segment::kind::optional_param, std::string(s.substr(1, s.size() - 2))});
    } else if (s.size() > 1 && s[0] == ':') {
      out.push_back({segment::kind::param, std::string(s.substr(1))});
    } else {
      out.push_back({segment::kind::literal, std::string(s)});
    }
  }
  return out;
}

// The next path segment starting at `pos` (which points after a '/', or at
// the end); empty segments from doubled or trailing slashes are skipped, as
// Express's non-strict routing does for a trailing slash.
bool next_segment(std::string_view path, std::size_t& pos, std::string_view& seg) {
  while (pos < path.size() && path[pos] == '/') ++pos;
  if (pos >= path.size()) return false;
  std::size_t end = path.find('/', pos);
  if (end == std::string_view::npos) end = path.size();
  seg = path.substr(pos, end - pos);
  pos = end;
  return true;
}

}  // namespace

// Recursion depth is bounded by the number of optional parameters in a
// pattern (a handful), not by the request.
static bool match_at(const std::vector<segment>& segs, std::size_t si, std::string_view path, std::size_t pos,
                     request& req) {
  using detail::access;
  for (; si < segs.size(); ++si) {
    const segment& s = segs[si];
    if (s.k == segment::kind::wildcard) {
      while (pos < path.size() && path[pos] == '/') ++pos;
      access::add_param(req, s.text, path.substr(std::min(pos, path.size())));
      return true;
    }
    std::size_t save = pos;
    std::string_view seg;
    bool have = next_segment(path, pos, seg);
    if (s.k == segment::kind::literal) {
      if (!have || !detail::iequals(seg, s.text)) return false;  // Express: case-insensitive by default
      continue;
    }
    if (s.k == segment::kind::param) {
      if (!have) return false;
      access::add_param(req, s.text, seg);
      continue;
    }
    // optional: first try consuming a segment, then try without it.
    if (have) {
      auto mark = access::param_count(req);
      access::add_param(req, s.text, seg);
      if (match_at(segs, si + 1, path, pos, req)) return true;
      access::truncate_params(req, mark);
    }
    pos = save;
  }
  std::string_view rest;
  return !next_segment(path, pos, rest);
}

namespace {

bool prefix_matches(std::string_view prefix, std::string_view path) {
  if (prefix.empty() || prefix == "/") return true;
  if (path.size() < prefix.size() || !detail::iequals(path.substr(0, prefix.size()), prefix)) return false;
  return path.size() == prefix.size() || path[prefix.size()] == '/';
}

bool method_matches(std::string_view route, std::string_view req) {
  return route.empty() || route == req || (req == "HEAD" && route == "GET");
}

}  // namespace

router::router() = default;
router::~router() = default;

router& router::add(std::string_view method, std::string_view pattern, handler h) {
  auto l = std::make_unique<layer>();
  l->method = std::string(method);
  l->segments = compile(pattern);
  l->h = std::move(h);
  layers_.push_back(std::move(l));
  return *this;
}

router& router::use(middleware m) { return use("/", std::move(m)); }

router& router::use(std::string_view prefix, middleware m) {
  auto l = std::make_unique<layer>();
  l->is_middleware = true;
  l->prefix = std::string(prefix);
  while (l->prefix.size() > 1 && l->prefix.back() == '/') l->prefix.pop_back();
  l->m = std::move(m);
  layers_.push_back(std::move(l));
  return *this;
}

void router::handle(request& req, response& res) const { run_from(0, req, res); }

void next_fn::operator()() const { r_->run_from(index_, *req_, *res_); }

void router::run_from(std::size_t index, request& req, response& res) const {
  std::string_view path = req.path();
  for (std::size_t i = index; i < layers_.size(); ++i) {
    const layer& l = *layers_[i];
    if (l.is_middleware) {
      if (!prefix_matches(l.prefix, path)) continue;
      detail::access::set_base_len(req, l.prefix == "/" ? 0 : l.prefix.size());
      l.m(req, res, next_fn(this, &req, &res, i + 1));
      return;
    }
    if (!method_matches(l.method, req.method())) continue;
    detail::access::truncate_params(req, 0);
    if (!match_at(l.segments, 0, path, 0, req)) continue;
    detail::access::set_base_len(req, 0);
    l.h(req, res);
    return;
  }
  no_match(req, res);
}

void router::no_match(request& req, response& res) const {
  std::string_view path = req.path();
  std::string allow;
  bool get = false;
  for (const auto& lp : layers_) {
    const layer& l = *lp;
    if (l.is_middleware || l.method.empty()) continue;
    detail::access::truncate_params(req, 0);
    if (!match_at(l.segments, 0, path, 0, req)) continue;
    if (allow.find(l.method) != std::string::npos) continue;  // method names are not substrings of one another here
    if (!allow.empty()) allow += ", ";
    allow += l.method;
    get = get || l.method == "GET";
  }
  detail::access::truncate_params(req, 0);
  if (allow.empty()) {
    res.status(404).set("Content-Type", "text/plain; charset=utf-8").send("Not Found");
    return;
  }
  if (get && allow.find("HEAD") == std::string::npos) allow += ", HEAD";
  if (req.method() == "OPTIONS") {
    // As Express: a path with routes answers OPTIONS itself, with Allow.
    res.set("Allow", allow).set("Content-Type", "text/plain; charset=utf-8").send(allow);
    return;
  }
  res.status(405).set("Allow", allow).set("Content-Type", "text/plain; charset=utf-8").send("Method Not Allowed");
}

bool router::match_for_test(std::string_view pattern, std::string_view path, request& req) {
  auto segs = compile(pattern);
  detail::access::truncate_params(req, 0);
  // The names must outlive the request's views: keep the compiled patterns.
  static std::vector<std::vector<segment>> keep;
  keep.push_back(std::move(segs));
  return match_at(keep.back(), 0, path, 0, req);
}

}  // namespace corral::http
