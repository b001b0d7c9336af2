#include "daemon/sd_notify.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>

#include "corral/fd.hpp"

namespace corral::daemon {

bool notify_address(std::string_view name, sockaddr_un& addr, socklen_t& len) {
  addr = sockaddr_un{};
  addr.sun_family = AF_UNIX;
  if (name.empty() || name.size() >= sizeof addr.sun_path || (name[0] != '/' && name[0] != '@')) return false;
  std::memcpy(addr.sun_path, name.data(), name.size());
  const bool abstract = name[0] == '@';
  if (abstract) addr.sun_path[0] = '\0';
  // An abstract name is its bytes; a path, with its terminating NUL.
  len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() + (abstract ? 0 : 1));
  return true;
}

namespace {

// `state`, with `fd` attached (SCM_RIGHTS) if it is not -1.
bool send_notify(std::string_view state, int fd) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  sockaddr_un addr;
  socklen_t addr_len = 0;
  if (!path || !notify_address(path, addr, addr_len)) return false;
  unique_fd sock(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!sock) return false;
  iovec iov{const_cast<char*>(state.data()), state.size()};
  msghdr msg{};
  msg.msg_name = &addr;
  msg.msg_namelen = addr_len;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  }
  return ::sendmsg(sock.get(), &msg, MSG_NOSIGNAL) == static_cast<ssize_t>(state.size());
}

}  // namespace

bool notify_service_manager(std::string_view state) { return send_notify(state, -1); }

bool notify_barrier(int timeout_ms) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return false;
  unique_fd rd(p[0]), wr(p[1]);
  if (!send_notify("BARRIER=1", wr.get())) return false;
  wr.reset();
  pollfd pfd{rd.get(), POLLIN, 0};
  int r;
  do r = ::poll(&pfd, 1, timeout_ms);
  while (r < 0 && errno == EINTR);
  return r > 0;  // (POLLHUP: the manager closed its copy)
}

}  // namespace corral::daemon
