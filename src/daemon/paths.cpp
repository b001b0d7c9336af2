#include "daemon/paths.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "corral/fd.hpp"
#include "daemon/app_spec.hpp"

namespace corral::daemon {

namespace {

error failed(int e, const std::string& what) {
  return error(std::error_code(e, std::generic_category()), what + ": " + std::strerror(e));
}

}  // namespace

std::string with_index(const std::string& path, int index) {
  auto slash = path.rfind('/');
  auto dot = path.rfind('.');
  std::string tag = "-" + std::to_string(index);
  if (dot == std::string::npos || dot <= slash + 1) return path + tag;
  return path.substr(0, dot) + tag + path.substr(dot);
}

status make_parents(const std::string& path, const char* key) {
  std::string dir = path.substr(0, path.rfind('/'));
  for (size_t at = 1; at <= dir.size(); ++at) {
    if (at != dir.size() && dir[at] != '/') continue;
    std::string step = dir.substr(0, at);
    if (::mkdir(step.c_str(), 0700) == 0 || errno == EEXIST) continue;
    return failed(errno, std::string(key) + ": cannot create directory " + step);
  }
  return {};
}

std::string pid_file_path(const app_spec& spec, int index) {
  if (spec.pid_file.empty()) return {};
  return spec.instances == 1 ? spec.pid_file : with_index(spec.pid_file, index);
}

status write_pid_file(const std::string& path, pid_t pid) {
  std::string tmp = path + ".corral-new";
  std::string text = std::to_string(pid) + "\n";
  {
    unique_fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644));
    if (!fd) return failed(errno, "pid_file: cannot write " + tmp);
    if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
      int e = errno ? errno : ENOSPC;
      ::unlink(tmp.c_str());
      return failed(e, "pid_file: cannot write " + tmp);
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return failed(e, "pid_file: cannot rename " + tmp + " to " + path);
  }
  return {};
}

void remove_pid_file(const std::string& path, pid_t pid) {
  if (path.empty() || pid <= 0) return;
  unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return;
  char buf[32];
  ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
  if (n <= 0) return;
  buf[n] = '\0';
  if (std::to_string(pid) + "\n" == buf) ::unlink(path.c_str());
}

}  // namespace corral::daemon
