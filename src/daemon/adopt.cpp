#include "daemon/adopt.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>

#include "net/socket.hpp"

namespace corral::daemon {
namespace {

bool numeric_host(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, host.c_str(), buf) == 1 || ::inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

bool same_place(const net::address& bound, const net::address& want) {
  if (want.is_unix() || bound.is_unix()) return want.is_unix() && bound.is_unix() && bound.path == want.path;
  // A name ("localhost") was resolved when the socket was bound.
  return bound.port == want.port && (bound.host == want.host || !numeric_host(want.host));
}

bool listening(int fd) {
  int on = 0;
  socklen_t len = sizeof on;
  return ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 && on;
}

error denied(const std::string& call, pid_t pid, int err) {
  return error(std::error_code(err, std::generic_category()),
               call + " on pid " + std::to_string(pid) + ": " + std::strerror(err));
}

// The first fd of `pid` whose /proc link `by_link` accepts and whose
// duplicate `accept` accepts; empty if none (or `pid` is gone).
result<unique_fd> take_fd(pid_t pid, const std::function<bool(std::string_view)>& by_link,
                          const std::function<bool(int)>& accept) {
  unique_fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd) {
    if (errno == ESRCH) return unique_fd();
    return denied("pidfd_open", pid, errno);
  }
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    if (errno == ENOENT) return unique_fd();  // gone meanwhile
    return denied("opendir " + dir, pid, errno);
  }
  unique_fd found;
  while (dirent* e = ::readdir(d)) {
    char* end;
    long n = std::strtol(e->d_name, &end, 10);
    if (*end || n < 0) continue;
    char link[64];
    ssize_t len = ::readlinkat(::dirfd(d), e->d_name, link, sizeof link - 1);
    if (len <= 0 || !by_link(std::string_view(link, static_cast<size_t>(len)))) continue;
    unique_fd fd(static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd.get(), static_cast<int>(n), 0)));
    if (!fd) {
      // Not ours to take: the caller does without.
      if (errno == EPERM || errno == ENOSYS) {
        int err = errno;
        ::closedir(d);
        return denied("pidfd_getfd", pid, err);
      }
      continue;  // closed meanwhile
    }
    if (accept(fd.get())) {
      found = std::move(fd);
      break;
    }
  }
  ::closedir(d);
  return found;
}

// The first of `inherited` that `accept` accepts, moved out; empty if none.
unique_fd take_inherited(std::vector<unique_fd>* inherited, const std::function<bool(int)>& accept) {
  if (!inherited) return {};
  for (auto& fd : *inherited)
    if (fd && accept(fd.get())) return std::move(fd);
  return {};
}

}  // namespace

result<unique_fd> take_listening_socket(pid_t pid, const net::address& want, std::vector<unique_fd>* inherited) {
  auto matches = [&want](int fd) {
    if (!listening(fd)) return false;
    auto bound = net::detail::local_address_of(fd);
    return bound && same_place(*bound, want);
  };
  if (auto fd = take_inherited(inherited, matches)) return fd;
  if (pid <= 0) return unique_fd();
  return take_fd(
      pid, [](std::string_view link) { return link.substr(0, 7) == "socket:"; }, matches);
}

result<unique_fd> take_socket_by_inode(pid_t pid, uint64_t inode, std::vector<unique_fd>* inherited) {
  auto same_inode = [inode](int fd) {
    struct stat st {};
    return ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == inode;
  };
  if (auto fd = take_inherited(inherited, same_inode)) return fd;
  std::string name = "socket:[" + std::to_string(inode) + "]";
  return take_fd(pid, [&name](std::string_view link) { return link == name; }, [](int) { return true; });
}

}  // namespace corral::daemon
