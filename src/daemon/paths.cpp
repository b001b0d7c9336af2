#include "daemon/paths.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstring>

#include "corral/fd.hpp"
#include "daemon/app_spec.hpp"

namespace corral::daemon {

namespace {

error failed(int e, const std::string& what) {
  return error(std::error_code(e, std::generic_category()), what + ": " + std::strerror(e));
}

}  // namespace

namespace {

// Where with_index puts "-<i>": before the extension, or at the end.
size_t index_at(const std::string& path) {
  auto slash = path.rfind('/');
  auto dot = path.rfind('.');
  return dot == std::string::npos || dot <= slash + 1 ? path.size() : dot;
}

}  // namespace

std::string with_index(const std::string& path, int index) {
  size_t at = index_at(path);
  return path.substr(0, at) + "-" + std::to_string(index) + path.substr(at);
}

bool is_pid_file(const std::string& pid_file, std::string_view path) {
  if (pid_file.empty()) return false;
  constexpr std::string_view temp = ".corral-new";
  if (path.size() > temp.size() && path.substr(path.size() - temp.size()) == temp) path.remove_suffix(temp.size());
  if (path == pid_file) return true;
  size_t at = index_at(pid_file);
  std::string_view stem = std::string_view(pid_file).substr(0, at), ext = std::string_view(pid_file).substr(at);
  if (path.size() < stem.size() + ext.size() + 2 || path.substr(0, stem.size()) != stem ||
      path[stem.size()] != '-' || path.substr(path.size() - ext.size()) != ext)
    return false;
  auto digits = path.substr(stem.size() + 1, path.size() - stem.size() - 1 - ext.size());
  return std::all_of(digits.begin(), digits.end(), [](unsigned char c) { return std::isdigit(c); });
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

std::string pid_file_problem(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || S_ISREG(st.st_mode)) return {};
  return path + " exists and is not a regular file (a pid file replaces what is there, and is removed at exit)";
}

result<std::string> path_safe_from_app_user(const std::string& path, const char* key) {
  auto refuse = [&](const std::string& why) {
    return error(std::make_error_code(std::errc::permission_denied),
                 std::string(key) + " " + path + ": " + why + "; the app runs as another user, who could make the "
                 "daemon write through it into any file: choose a directory only root or the daemon's user can write "
                 "(or leave the default under the daemon's home)");
  };
  // The deepest directory on the way that exists, resolved; the rest is
  // made by the daemon.
  std::string dir = path.substr(0, path.rfind('/'));
  std::string rest = path.substr(dir.size());
  char real[PATH_MAX];
  while (!dir.empty() && ::realpath(dir.c_str(), real) == nullptr) {
    if (errno != ENOENT) return refuse(dir + ": " + std::strerror(errno));
    auto cut = dir.rfind('/');
    rest = dir.substr(cut) + rest;
    dir.resize(cut);
  }
  std::string resolved = dir.empty() ? "" : std::string(real);
  if (resolved == "/") resolved.clear();
  const uid_t daemon_uid = ::geteuid();
  // "/" and each directory below it down to `resolved`.
  for (size_t at = 0;;) {
    std::string d = at == 0 ? "/" : resolved.substr(0, at);
    struct stat st {};
    if (::lstat(d.c_str(), &st) != 0) return refuse(d + ": " + std::strerror(errno));
    bool last = at >= resolved.size();
    if (st.st_uid != 0 && st.st_uid != daemon_uid)
      return refuse("the directory " + d + " is owned by uid " + std::to_string(st.st_uid));
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !((st.st_mode & S_ISVTX) && !last))
      return refuse("the directory " + d + " is writable by " + ((st.st_mode & S_IWOTH) ? "anyone" : "its group"));
    if (last) break;
    at = resolved.find('/', at + 1);
    if (at == std::string::npos) at = resolved.size();
  }
  // The file itself, if there: a link the daemon would follow is refused.
  std::string full = resolved + rest;
  struct stat st {};
  if (::lstat(full.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) return refuse("it is a symbolic link");
  return full;
}

status write_pid_file(const std::string& path, pid_t pid) {
  if (auto why = pid_file_problem(path); !why.empty())
    return error(std::make_error_code(std::errc::file_exists), "pid_file: " + why);
  std::string tmp = path + ".corral-new";
  std::string text = std::to_string(pid) + "\n";
  {
    ::unlink(tmp.c_str());  // a leftover, or anything else put there: ours is made new (O_EXCL)
    unique_fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644));
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

bool pid_file_holds(const std::string& path, pid_t pid) {
  if (path.empty() || pid <= 0) return false;
  unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return false;
  char buf[32];
  ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
  if (n <= 0) return false;
  buf[n] = '\0';
  return std::to_string(pid) + "\n" == buf;
}

void remove_pid_file(const std::string& path, pid_t pid) {
  if (pid_file_holds(path, pid)) ::unlink(path.c_str());
}

}  // namespace corral::daemon
