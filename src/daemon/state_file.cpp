#include "daemon/state_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

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
      inst.push_back({{"id", i.id}, {"index", i.index}, {"pid", i.pid}, {"start_ticks", i.start_ticks}});
    apps.push_back({{"spec", to_json(a.spec)}, {"instances", inst}});
  }
  return json{{"version", state_format_version}, {"daemon_pid", s.daemon_pid}, {"next_id", s.next_id}, {"apps", apps}};
}

result<persisted_state> state_from_json(const json& j) {
  if (!j.is_object()) return bad("state: expected an object");
  persisted_state s;
  try {
    if (j.at("version").get<int>() != state_format_version) return bad("state: unknown version");
    s.daemon_pid = j.value("daemon_pid", 0);
    s.next_id = j.value("next_id", 0);
    for (const auto& a : j.at("apps")) {
      auto spec = app_spec_from_json(a.at("spec"));
      if (!spec) return spec.err();
      persisted_app pa{std::move(spec.value()), {}};
      for (const auto& i : a.value("instances", json::array()))
        pa.instances.push_back({i.at("id").get<int>(), i.value("index", 0), i.value("pid", 0),
                                i.value("start_ticks", uint64_t{0})});
      s.apps.push_back(std::move(pa));
    }
  } catch (const json::exception& e) {
    return bad(std::string("state: ") + e.what());
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
