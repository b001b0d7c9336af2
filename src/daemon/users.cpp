#include "daemon/users.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <vector>

namespace corral::daemon {

namespace {

// The colon-separated fields of each line of `path` until `take` says done.
template <class F>
void each_line(const std::string& path, F take) {
  std::FILE* f = std::fopen(path.c_str(), "re");
  if (!f) return;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, f)) {
    std::string line = buf;
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    if (line.empty() || line[0] == '#' || line[0] == '+' || line[0] == '-') continue;  // (NIS markers)
    std::vector<std::string> fields;
    for (size_t at = 0;;) {
      size_t colon = line.find(':', at);
      fields.push_back(line.substr(at, colon == std::string::npos ? std::string::npos : colon - at));
      if (colon == std::string::npos) break;
      at = colon + 1;
    }
    if (take(fields)) break;
  }
  std::fclose(f);
}

std::optional<user_entry> find_user_where(const std::string& passwd, bool by_id, const std::string& key) {
  std::optional<user_entry> found;
  each_line(passwd, [&](const std::vector<std::string>& f) {
    // name:password:uid:gid:gecos:home:shell
    if (f.size() < 7 || (by_id ? f[2] : f[0]) != key) return false;
    auto uid = parse_id(f[2]);
    auto gid = parse_id(f[3]);
    if (!uid || !gid) return false;
    found = user_entry{f[0], *uid, *gid, f[5], f[6]};
    return true;
  });
  return found;
}

}  // namespace

std::optional<uint32_t> parse_id(const std::string& text) {
  if (text.empty() || text.size() > 10 ||
      !std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); }))
    return std::nullopt;
  uint64_t v = std::stoull(text);
  if (v >= 0xffffffffu) return std::nullopt;
  return static_cast<uint32_t>(v);
}

std::optional<user_entry> find_user(const std::string& name, const std::string& passwd) {
  auto id = parse_id(name);
  return find_user_where(passwd, id.has_value(), id ? std::to_string(*id) : name);
}

std::optional<user_entry> find_user(uid_t uid, const std::string& passwd) {
  return find_user_where(passwd, true, std::to_string(uid));
}

std::optional<group_entry> find_group(const std::string& name, const std::string& group) {
  auto id = parse_id(name);
  std::optional<group_entry> found;
  each_line(group, [&](const std::vector<std::string>& f) {
    // name:password:gid:members
    if (f.size() < 3 || (id ? f[2] != std::to_string(*id) : f[0] != name)) return false;
    auto gid = parse_id(f[2]);
    if (!gid) return false;
    found = group_entry{f[0], *gid};
    return true;
  });
  return found;
}

}  // namespace corral::daemon
