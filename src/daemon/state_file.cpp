#include "daemon/state_file.hpp"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <ctime>
#include <limits>

#include "daemon/json_fields.hpp"

namespace corral::daemon {

namespace {

error bad(const std::string& what) { return error(std::make_error_code(std::errc::bad_message), what); }
error sys(int err, const std::string& what) {
  return error(std::error_code(err, std::generic_category()), what + ": " + std::strerror(err));
}

}  // namespace

json to_json(const persisted_state& s) {
  json apps = json::array();
  for (const auto& a : s.apps) {
    json inst = json::array();
    for (const auto& i : a.instances)
      inst.push_back({{"id", i.id}, {"index", i.index}, {"pid", i.pid}, {"start_ticks", i.start_ticks},
                      {"output_inodes", {i.output_inodes[0], i.output_inodes[1]}}});
    apps.push_back({{"spec", to_json(a.spec)}, {"instances", inst}});
  }
  return json{{"version", state_format_version}, {"daemon_pid", s.daemon_pid}, {"next_id", s.next_id}, {"apps", apps}};
}

namespace {

constexpr int64_t max_pid = std::numeric_limits<pid_t>::max();

result<std::vector<persisted_instance>> instances_from_json(const json& a, const std::string& who) {
  json_fields fa(a);
  const json& instances = fa.array("instances");
  if (!fa.error().empty()) return bad(who + ": " + fa.error());
  std::vector<persisted_instance> out;
  for (size_t n = 0; n < instances.size(); ++n) {
    std::string which = who + ": instance #" + std::to_string(n + 1);
    if (!instances[n].is_object()) return bad(which + ": expected an object, got " + json_kind(instances[n]));
    // -1: a dead daemon's instance still stopping (docs/manager-state.md).
    json_fields fi(instances[n]);
    fi.require("id");
    persisted_instance pi;
    pi.id = static_cast<int>(fi.whole("id", -1, INT_MAX, 0));
    pi.index = static_cast<int>(fi.whole("index", -1, limits::max_instances, 0));
    pi.pid = static_cast<pid_t>(fi.whole("pid", 0, max_pid, 0));
    pi.start_ticks = fi.whole_unsigned("start_ticks", 0, UINT64_MAX, 0);
    if (!fi.error().empty()) return bad(which + ": " + fi.error());
    // (Absent in files older than it; then nothing is taken over.)
    if (auto it = instances[n].find("output_inodes"); it != instances[n].end() && !it->is_null()) {
      if (!it->is_array() || it->size() != 2 || !(*it)[0].is_number_unsigned() || !(*it)[1].is_number_unsigned())
        return bad(which + ": output_inodes must be two whole numbers, got " + it->dump());
      pi.output_inodes = {(*it)[0].get<uint64_t>(), (*it)[1].get<uint64_t>()};
    }
    out.push_back(pi);
  }
  return out;
}

}  // namespace

result<persisted_state> state_from_json(const json& j) {
  if (!j.is_object()) return bad("expected an object, got " + json_kind(j));
  json_fields f(j);
  f.require("version");
  if (int64_t v = f.whole("version", INT64_MIN, INT64_MAX, 0); f.error().empty() && v != state_format_version)
    return bad("version " + std::to_string(v) + " is not one this corral reads (" + std::to_string(state_format_version) + ")");
  persisted_state s;
  s.daemon_pid = static_cast<pid_t>(f.whole("daemon_pid", 0, max_pid, 0));
  s.next_id = static_cast<int>(f.whole("next_id", 0, INT_MAX, 0));
  f.require("apps");
  const json& apps = f.array("apps");
  if (!f.error().empty()) return bad(f.error());
  for (size_t k = 0; k < apps.size(); ++k) {
    const json& a = apps[k];
    std::string label = "app #" + std::to_string(k + 1);
    if (!a.is_object()) {
      s.unreadable.push_back({label + ": expected an object, got " + json_kind(a), {}});
      continue;
    }
    auto spec = a.contains("spec") ? app_spec_from_json(a["spec"], label)
                                   : result<app_spec>(bad(label + ": spec is missing"));
    std::string who = spec ? "app '" + spec->name + "'" : label;
    auto instances = instances_from_json(a, who);
    if (!spec || !instances) {
      s.unreadable.push_back({!spec ? spec.err().message() : instances.err().message(),
                              instances ? std::move(instances.value()) : std::vector<persisted_instance>{}});
      continue;
    }
    s.apps.push_back({std::move(spec.value()), std::move(instances.value())});
  }
  return s;
}

result<json> parse_state_text(const std::string& path, const std::string& text) {
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    size_t upto = std::min<size_t>(e.byte > 0 ? e.byte - 1 : 0, text.size());
    auto line = 1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(upto), '\n');
    // "[json.exception.parse_error.101] parse error at line 3, column 5: syntax error ..."
    std::string what = e.what();
    if (auto col = what.find(", column "); col != std::string::npos && what.find(": ", col) != std::string::npos)
      what = what.substr(what.find(": ", col) + 2);
    return bad(path + ":" + std::to_string(line) + ": not valid JSON (" + what + ")");
  }
}

result<persisted_state> load_state_file(const std::string& path) {
  auto text = read_file(path);
  if (!text) return text.err();
  auto j = parse_state_text(path, *text);
  if (!j) return j.err();
  auto st = state_from_json(*j);
  if (!st) return bad(path + ": " + st.err().message());
  return st;
}

result<std::string> set_aside(const std::string& path) {
  std::string stem = path + ".broken-" + std::to_string(::time(nullptr));
  for (int n = 0; n < 1000; ++n) {
    std::string to = n == 0 ? stem : stem + "." + std::to_string(n);
    if (::renameat2(AT_FDCWD, path.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return to;
    if (errno == EEXIST) continue;
    // A file system without RENAME_NOREPLACE: only the daemon, which holds
    // daemon.lock, renames in the home, so a check first does not race.
    if (errno != EINVAL) return sys(errno, "rename " + path + " to " + to);
    if (::access(to.c_str(), F_OK) == 0) continue;
    if (::rename(path.c_str(), to.c_str()) == 0) return to;
    return sys(errno, "rename " + path + " to " + to);
  }
  return bad("rename " + path + ": " + stem + " and its next 999 names are taken");
}

status write_file_atomic(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return sys(errno, "open " + tmp);
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return sys(err, "write " + tmp);
    }
    off += static_cast<size_t>(n);
  }
  // Data must be on disk before the rename makes it the state: otherwise a
  // crash can leave an empty file under the final name.
  if (::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return sys(err, "fsync " + tmp);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return sys(err, "rename " + tmp);
  }
  auto slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);  // makes the rename itself durable
    ::close(dfd);
  }
  return {};
}

result<std::string> read_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return sys(errno, "open " + path);
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return sys(err, "read " + path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

}  // namespace corral::daemon
