#include "daemon/watch_rules.hpp"

#include <fnmatch.h>

#include <climits>

namespace corral::daemon {

namespace {

std::vector<std::string> components(std::string_view path) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at <= path.size()) {
    size_t slash = path.find('/', at);
    if (slash == std::string_view::npos) slash = path.size();
    if (slash > at) out.emplace_back(path.substr(at, slash - at));
    at = slash + 1;
  }
  return out;
}

bool name_match(const std::string& pattern, const std::string& name) {
  return ::fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
}

}  // namespace

bool glob_match(std::string_view pattern, std::string_view path) {
  auto pat = components(pattern);
  auto comp = components(path);
  const size_t n = comp.size();
  // next[j]: pat[i+1..] matches comp[j..]; row[j]: pat[i..] matches comp[j..].
  std::vector<char> next(n + 1, 0), row(n + 1, 0);
  next[n] = 1;
  for (size_t i = pat.size(); i-- > 0;) {
    const bool any = pat[i] == "**";
    row[n] = any ? next[n] : 0;
    for (size_t j = n; j-- > 0;)
      row[j] = any ? (next[j] || row[j + 1]) : (next[j + 1] && name_match(pat[i], comp[j]));
    std::swap(row, next);
  }
  return next[0] != 0;
}

ignore_rules::ignore_rules(const std::vector<std::string>& patterns, std::string base) : base_(std::move(base)) {
  while (base_.size() > 1 && base_.back() == '/') base_.pop_back();
  for (auto n : always_ignored) names_.emplace_back(n);
  for (std::string p : patterns) {
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    // "./build" is anchored at the cwd, as "a/b" is; "build/" is a name.
    const bool path = p.find('/') != std::string::npos;
    while (p.rfind("./", 0) == 0) p.erase(0, 2);
    if (p.empty() || p == ".") continue;
    if (!path) {
      names_.push_back(std::move(p));
      continue;
    }
    // A directory that matches leaves out what is below it too.
    p += "/**";
    (p[0] == '/' ? absolute_ : relative_).push_back(std::move(p));
  }
}

bool ignore_rules::ignores(std::string_view path) const {
  auto slash = path.rfind('/');
  if (files_ && files_(path)) return true;
  std::string name(slash == std::string_view::npos ? path : path.substr(slash + 1));
  for (const auto& n : names_)
    if (name_match(n, name)) return true;
  for (const auto& a : absolute_)
    if (glob_match(a, path)) return true;
  if (relative_.empty()) return false;
  std::string_view rel;
  if (base_ == "/") rel = path.substr(path.empty() ? 0 : 1);
  else if (path.size() > base_.size() && path.compare(0, base_.size(), base_) == 0 && path[base_.size()] == '/')
    rel = path.substr(base_.size() + 1);
  else return false;
  for (const auto& r : relative_)
    if (glob_match(r, rel)) return true;
  return false;
}

std::string parent_dir(std::string_view path) {
  auto slash = path.rfind('/');
  if (slash == std::string_view::npos || slash == 0) return "/";
  return std::string(path.substr(0, slash));
}

std::string awaited_name(std::string_view path, std::string_view ancestor) {
  // Below "/", every path; below "/a", "/a/..." but not "/ab".
  size_t from = ancestor == "/" ? 1 : ancestor.size() + 1;
  if (path.size() <= from || path.compare(0, ancestor.size(), ancestor) != 0 || path[from - 1] != '/') return {};
  auto slash = path.find('/', from);
  return std::string(path.substr(from, slash == std::string_view::npos ? std::string_view::npos : slash - from));
}

bool change_batch::add(std::string path) {
  switch (state_) {
    case state::idle:
      state_ = state::collecting;
      first_ = std::move(path);
      more_ = 0;
      return true;
    case state::collecting:
      if (more_ < INT_MAX) ++more_;
      return false;
    case state::restarting:
      if (!pending_) {
        pending_ = true;
        first_ = std::move(path);
        more_ = 0;
      } else if (more_ < INT_MAX) {
        ++more_;
      }
      return false;
  }
  return false;
}

change_batch::taken change_batch::take() {
  taken t{std::move(first_), more_, ++round_};
  state_ = state::restarting;
  first_.clear();
  more_ = 0;
  pending_ = false;
  return t;
}

bool change_batch::finish(uint64_t round) {
  if (state_ != state::restarting || round != round_) return false;
  if (!pending_) {
    state_ = state::idle;
    return false;
  }
  pending_ = false;
  state_ = state::collecting;
  return true;
}

void change_batch::clear() {
  state_ = state::idle;
  first_.clear();
  more_ = 0;
  pending_ = false;
  ++round_;
}

}  // namespace corral::daemon
