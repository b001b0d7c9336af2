// Test program: a listener stopped from inside its connection callback while
// more connections of the same accept batch are still to be delivered.
// Configured by the environment:
//   CLIENTS (default 8)  clients it connects to itself once listening,
//   WORKERS (default 0)  0: listens alone; 1: a cluster primary whose one
//                        worker listens (CORRAL_SCHED_POLICY picks the policy),
//   CLOSE_BY             on the first connection: "close" (listener::close),
//                        "disconnect" (the worker's disconnect) or "shutdown"
//                        (corral::shutdown::begin()).
// Once listening it connects its clients (blocking) and waits until the
// kernel has queued them all on its listening socket, so that one wakeup
// accepts them all. For every connection delivered it prints "conn ok" if it
// is one of its clients' (and not one already seen), "conn bad" otherwise.
// The primary prints "exit <pid> code <c> signal <s>" for its worker.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "corral/cluster.hpp"
#include "corral/net.hpp"
#include "corral/shutdown.hpp"

namespace cluster = corral::cluster;
namespace net = corral::net;

namespace {

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

std::string close_by() {
  const char* v = std::getenv("CLOSE_BY");
  return v ? v : "close";
}

int port_of_sock(int fd, bool peer) {
  sockaddr_in sa{};
  socklen_t len = sizeof sa;
  int r = peer ? ::getpeername(fd, reinterpret_cast<sockaddr*>(&sa), &len)
               : ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  return r == 0 && sa.sin_family == AF_INET ? ntohs(sa.sin_port) : -1;
}

net::listener* server = nullptr;
std::set<int> client_ports;  // the local ports of our clients not yet delivered
std::vector<int> clients;
bool closed = false;

void on_connection(corral::unique_fd fd) {
  int peer = fd ? port_of_sock(fd.get(), true) : -1;
  bool ours = peer > 0 && client_ports.erase(peer) == 1;
  std::printf("conn %s\n", ours ? "ok" : "bad");
  if (closed) return;
  closed = true;
  std::string how = close_by();
  if (how == "disconnect") {
    cluster::worker().disconnect();
  } else if (how == "shutdown") {
    corral::shutdown::begin();
  } else {
    server->close();
  }
}

// Our own listening socket on `port` (in a round-robin worker there is none).
int listening_fd(int port) {
  for (int fd = 0; fd < 1024; ++fd) {
    int on = 0;
    socklen_t len = sizeof on;
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 && on && port_of_sock(fd, false) == port) return fd;
  }
  return -1;
}

// Waits (at most 5 s) until the kernel has queued `n` connections on `fd`.
bool wait_queued(int fd, int n) {
  for (int i = 0; i < 5000; ++i) {
    tcp_info info{};
    socklen_t len = sizeof info;
    if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0 && static_cast<int>(info.tcpi_unacked) >= n)
      return true;  // a listening socket's tcpi_unacked is its accept queue length
    timespec ms{0, 1'000'000};
    ::nanosleep(&ms, nullptr);
  }
  return false;
}

void connect_clients(int port) {
  int n = env_int("CLIENTS", 8);
  for (int i = 0; i < n; ++i) {
    int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(port));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(c, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      std::fprintf(stderr, "connect: %s\n", std::strerror(errno));
      std::exit(4);
    }
    client_ports.insert(port_of_sock(c, false));
    clients.push_back(c);  // kept open until exit
  }
  int lfd = listening_fd(port);
  if (lfd >= 0 && !wait_queued(lfd, n)) {
    std::fprintf(stderr, "the kernel did not queue %d connections\n", n);
    std::exit(5);
  }
  std::printf("connected %d\n", n);
}

void serve() {
  if (close_by() == "shutdown") corral::shutdown::enable();
  server = new net::listener;  // lives for the whole process
  server->on_connection(on_connection);
  net::listen_options o;
  o.host = "127.0.0.1";
  server->listen(o, [](const corral::error* e, const net::address& a) {
    if (e) {
      std::fprintf(stderr, "listen failed: %s\n", e->message().c_str());
      std::exit(3);
    }
    connect_clients(a.port);
  });
}

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  if (cluster::is_primary() && env_int("WORKERS", 0) > 0) {
    cluster::on_exit([](corral::worker& w, int code, int sig) {
      std::printf("exit %d code %d signal %d\n", w.pid(), code, sig);
    });
    cluster::fork();
  } else {
    serve();
  }
  return corral::run();
}
