#include "daemon/proc_stats.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <string>

#include "corral/fd.hpp"

namespace corral::daemon {

namespace {

uint64_t page_size() { return static_cast<uint64_t>(::sysconf(_SC_PAGESIZE)); }

// One small read: /proc/<pid>/stat is well under 1 KiB.
std::optional<std::string> read_stat(pid_t pid) {
  std::string path = "/proc/" + std::to_string(pid) + "/stat";
  unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return std::nullopt;
  char buf[1024];
  ssize_t n = ::read(fd.get(), buf, sizeof buf);
  if (n <= 0) return std::nullopt;
  return std::string(buf, static_cast<size_t>(n));
}

}  // namespace

std::optional<proc_sample> parse_stat(pid_t pid, std::string_view text, uint64_t page) {
  // The command name (field 2) may contain spaces and parentheses: parse
  // after the last ')'.
  auto close = text.rfind(')');
  if (close == std::string_view::npos || close + 2 >= text.size()) return std::nullopt;
  std::string_view rest = text.substr(close + 2);
  proc_sample s;
  s.pid = pid;
  s.state = rest[0];
  // Fields 4.. into v[4]..; we need 5 (pgrp), 14 (utime), 15 (stime), 22 (starttime), 24 (rss pages).
  uint64_t v[25] = {};
  size_t pos = 1;
  int i = 4;
  for (; i <= 24; ++i) {
    while (pos < rest.size() && rest[pos] == ' ') ++pos;
    // Fields 4.. are integers; a few (e.g. 21 priority) may be negative: read the magnitude.
    if (pos < rest.size() && rest[pos] == '-') ++pos;
    auto [end, ec] = std::from_chars(rest.data() + pos, rest.data() + rest.size(), v[i]);
    if (ec != std::errc()) break;
    pos = static_cast<size_t>(end - rest.data());
  }
  if (i <= 24) return std::nullopt;
  s.pgid = static_cast<pid_t>(v[5]);
  s.cpu_ticks = v[14] + v[15];
  s.start_ticks = v[22];
  s.rss_bytes = v[24] * page;
  return s;
}

std::optional<proc_sample> sample_process(pid_t pid) {
  auto text = read_stat(pid);
  if (!text) return std::nullopt;
  return parse_stat(pid, *text, page_size());
}

std::vector<proc_sample> sample_groups(const std::vector<pid_t>& pgids) {
  std::vector<proc_sample> out;
  if (pgids.empty()) return out;
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  uint64_t page = page_size();
  while (dirent* e = ::readdir(d)) {
    if (!std::isdigit(static_cast<unsigned char>(e->d_name[0]))) continue;
    pid_t pid = static_cast<pid_t>(std::atol(e->d_name));
    auto text = read_stat(pid);
    if (!text) continue;  // exited meanwhile
    auto s = parse_stat(pid, *text, page);
    // A zombie's counters are final and its rss is 0; its time is already
    // counted, and it is about to go: skip it.
    if (s && s->state != 'Z' && std::binary_search(pgids.begin(), pgids.end(), s->pgid)) out.push_back(*s);
  }
  ::closedir(d);
  return out;
}

bool environ_marks_instance_of(std::string_view environ, std::string_view home) {
  bool home_matches = false, named = false;
  while (!environ.empty()) {
    auto end = environ.find('\0');
    std::string_view kv = environ.substr(0, end);
    if (kv.starts_with("CORRAL_HOME=") && kv.substr(12) == home) home_matches = true;
    if (kv.starts_with("CORRAL_APP_NAME=")) named = true;
    if (end == std::string_view::npos) break;
    environ.remove_prefix(end + 1);
  }
  return home_matches && named;
}

std::vector<pid_t> instance_groups_of_home(const std::string& home) {
  std::vector<pid_t> out;
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  uint64_t page = page_size();
  const pid_t self = ::getpid();
  const uid_t uid = ::geteuid();
  std::string env;
  while (dirent* e = ::readdir(d)) {
    if (!std::isdigit(static_cast<unsigned char>(e->d_name[0]))) continue;
    pid_t pid = static_cast<pid_t>(std::atol(e->d_name));
    if (pid == self) continue;
    auto text = read_stat(pid);
    if (!text) continue;
    auto s = parse_stat(pid, *text, page);
    if (!s || s->pgid != pid || s->state == 'Z') continue;
    std::string dir = std::string("/proc/") + e->d_name;
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0 || st.st_uid != uid) continue;
    unique_fd fd(::open((dir + "/environ").c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) continue;
    env.clear();
    char buf[8192];
    for (ssize_t n; (n = ::read(fd.get(), buf, sizeof buf)) > 0 && env.size() < (1u << 20);)
      env.append(buf, static_cast<size_t>(n));
    if (environ_marks_instance_of(env, home)) out.push_back(pid);
  }
  ::closedir(d);
  return out;
}

}  // namespace corral::daemon
