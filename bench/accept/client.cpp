// bench/accept load: connection-per-request. `concurrency` connections at a
// time, each connects, sends "hello\n", reads the reply "hello <pid>\n" until
// EOF, closes, and starts over, for `seconds`. Prints
//   connections=<n> rate=<n/s> errors=<n> workers=<pid:count,...>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

struct conn {
  int fd = -1;
  bool sent = false;
  std::string reply;
};

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: accept_client PORT SECONDS CONCURRENCY\n");
    return 2;
  }
  int port = std::atoi(argv[1]);
  double seconds = std::atof(argv[2]);
  int concurrency = std::atoi(argv[3]);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  std::vector<conn> conns(static_cast<std::size_t>(concurrency));
  long done = 0, errors = 0;
  std::map<std::string, long> per_worker;

  auto start_one = [&](std::size_t i) {
    conn& c = conns[i];
    c = conn{};
    c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int r = ::connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    if (r != 0 && errno != EINPROGRESS) {
      ++errors;
      ::close(c.fd);
      c.fd = -1;
      return;
    }
    epoll_event ev{};
    ev.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = i;
    epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
  };
  auto finish = [&](std::size_t i, bool ok) {
    conn& c = conns[i];
    ::close(c.fd);  // also removes it from epoll
    c.fd = -1;
    if (ok) {
      ++done;
      auto sp = c.reply.find(' ');
      auto nl = c.reply.find('\n');
      if (sp != std::string::npos && nl != std::string::npos) per_worker[c.reply.substr(sp + 1, nl - sp - 1)]++;
    } else {
      ++errors;
    }
  };

  auto t0 = std::chrono::steady_clock::now();
  auto deadline = t0 + std::chrono::duration<double>(seconds);
  for (std::size_t i = 0; i < conns.size(); ++i) start_one(i);
  epoll_event events[256];
  char buf[512];
  while (std::chrono::steady_clock::now() < deadline) {
    int n = epoll_wait(ep, events, 256, 100);
    for (int k = 0; k < n; ++k) {
      std::size_t i = events[k].data.u64;
      conn& c = conns[i];
      if (c.fd < 0) continue;
      if (!c.sent && (events[k].events & EPOLLOUT)) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err || ::send(c.fd, "hello\n", 6, MSG_NOSIGNAL) != 6) {
          finish(i, false);
          start_one(i);
          continue;
        }
        c.sent = true;
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.u64 = i;
        epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
        continue;
      }
      if (events[k].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        for (;;) {
          ssize_t r = ::read(c.fd, buf, sizeof buf);
          if (r > 0) {
            c.reply.append(buf, static_cast<std::size_t>(r));
            continue;
          }
          if (r == 0) {
            finish(i, c.reply.find('\n') != std::string::npos);
            start_one(i);
          } else if (errno != EAGAIN) {
            finish(i, false);
            start_one(i);
          }
          break;
        }
      }
    }
  }
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("connections=%ld rate=%.0f errors=%ld workers=", done, done / elapsed, errors);
  bool first = true;
  for (auto& [pid, n] : per_worker) {
    std::printf("%s%s:%ld", first ? "" : ",", pid.c_str(), n);
    first = false;
  }
  std::printf("\n");
  return 0;
}
