// A libcorral program under a supervisor: the corral manager (a channel at
// CORRAL_CHANNEL_FD while this process is not a cluster worker) or systemd
// (NOTIFY_SOCKET). The program says it is ready by itself once it listens,
// and a 'shutdown' message from the manager stops it like SIGTERM.
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cluster/internal.hpp"

namespace corral::cluster::detail {
namespace {

struct supervisor_link {
  bool opened = false;
  bool ready_sent = false;
  std::unique_ptr<channel> ch;
};

supervisor_link& link() {
  static auto* l = new supervisor_link;  // lives for the whole process
  return *l;
}

// systemd's sd_notify protocol: one datagram to the socket NOTIFY_SOCKET
// names (a path, or an abstract name written with a leading '@').
void sd_notify_ready() {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (!path || !*path) return;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::size_t len = std::strlen(path);
  if (len >= sizeof addr.sun_path) return;
  std::memcpy(addr.sun_path, path, len);
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  static const char msg[] = "READY=1";
  ::sendto(fd, msg, sizeof msg - 1, MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr),
           static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len));
  ::close(fd);
}

}  // namespace

void open_supervisor_link() {
  auto& l = link();
  if (l.opened) return;
  l.opened = true;
  const char* fd_env = std::getenv(channel_fd_env);
  if (!fd_env || !*fd_env) return;
  int fd = std::atoi(fd_env);
  ::unsetenv(channel_fd_env);
  ::unsetenv("NODE_CHANNEL_FD");
  channel_options co;
  co.peer = "the corral manager (pid " + std::to_string(::getppid()) + ")";
  auto ch = channel::open(fd, co);
  if (!ch) {
    std::fprintf(stderr, "corral: cannot open the manager's channel (fd %d): %s\n", fd, ch.err().message().c_str());
    return;
  }
  l.ch = std::move(ch.value());
  l.ch->set_ref(false);  // the manager's link must not keep the program alive
  l.ch->on_message([](json&& msg, std::vector<unique_fd>&&) {
    if (msg.is_string() && msg == "shutdown") ::kill(::getpid(), SIGTERM);
  });
  l.ch->on_error([](const error& e) { std::fprintf(stderr, "corral: %s\n", e.message().c_str()); });
}

channel* supervisor_channel() {
  (void)is_worker();  // the process's role is decided (and the link opened) first
  return link().ch.get();
}

void notify_ready() {
  auto& l = link();
  if (l.ready_sent || is_worker()) return;
  l.ready_sent = true;
  if (channel* ch = supervisor_channel()) ch->send(json("ready"));  // PM2's convention
  sd_notify_ready();
}

}  // namespace corral::cluster::detail
