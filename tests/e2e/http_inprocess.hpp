// In-process HTTP tests' helpers: a connected loopback TCP pair whose server
// side goes to http::server::serve(), and ways to run the loop while the
// client side reads.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <utility>

#include "corral/http.hpp"
#include "corral/loop.hpp"

namespace http_inprocess {

using namespace std::chrono_literals;
using corral::default_loop;

// A connected loopback TCP pair: `client` is ours, `served` goes to serve().
struct tcp_pair {
  /// `client_rcvbuf`: the client's SO_RCVBUF, set before it connects (set
  /// later, the window it already advertised could overrun it).
  explicit tcp_pair(int client_rcvbuf = 0) {
    int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (::bind(lfd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 && ::listen(lfd, 4) == 0 &&
        ::getsockname(lfd, reinterpret_cast<sockaddr*>(&sa), &len) == 0) {
      client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (client_rcvbuf > 0) ::setsockopt(client, SOL_SOCKET, SO_RCVBUF, &client_rcvbuf, sizeof client_rcvbuf);
      if (::connect(client, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0)
        served = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    }
    ::close(lfd);
  }
  tcp_pair(tcp_pair&& o) noexcept : client(std::exchange(o.client, -1)), served(std::exchange(o.served, -1)) {}
  tcp_pair& operator=(tcp_pair&& o) noexcept {  // (the old pair closes with `o`)
    std::swap(client, o.client);
    std::swap(served, o.served);
    return *this;
  }
  ~tcp_pair() {
    if (client >= 0) ::close(client);
    if (served >= 0) ::close(served);
  }
  bool ok() const { return client >= 0 && served >= 0; }
  bool send(const std::string& s) const { return ::send(client, s.data(), s.size(), MSG_NOSIGNAL) == ssize_t(s.size()); }
  int client = -1;
  int served = -1;
};

// What the client has received, running the loop until `done(received, eof)`
// holds or 10 s pass.
template <class Done>
std::string receive(int fd, Done done, bool* eof_out = nullptr) {
  std::string got;
  bool eof = false;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!done(got, eof) && !eof && std::chrono::steady_clock::now() < deadline) {
    uv_run(default_loop(), UV_RUN_NOWAIT);
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 1) <= 0) continue;
    char buf[65536];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      eof = true;
    } else {
      got.append(buf, static_cast<std::size_t>(n));
    }
  }
  if (eof_out) *eof_out = eof;
  return got;
}

// Runs the loop until `pred()` or 10 s.
template <class Pred>
bool pump_until(Pred pred) {
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!pred() && std::chrono::steady_clock::now() < deadline) {
    uv_run(default_loop(), UV_RUN_NOWAIT);
    ::poll(nullptr, 0, 1);
  }
  return pred();
}

// What is readable on `fd` right now, without running the loop; `eof` set
// if the server has closed.
inline std::string drain_now(int fd, bool& eof) {
  std::string got;
  eof = false;
  char buf[65536];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      got.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    eof = n == 0;
    return got;
  }
}

inline std::size_t count(const std::string& s, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = s.find(needle); at != std::string::npos; at = s.find(needle, at + 1)) ++n;
  return n;
}

// A server on `routes` serving the `served` side of the pair `p`, made on
// first use with the given options; the tests' fixtures derive from it.
class served_fixture : public ::testing::Test {
 protected:
  corral::http::server& server(corral::http::server_options o = {}) {
    if (!srv_) srv_.emplace(routes, o);
    return *srv_;
  }
  // The client sends `waiting`, then the server is given its side.
  bool serve_after(const std::string& waiting) {
    if (!p.ok() || !p.send(waiting)) return false;
    bool ok = static_cast<bool>(server().serve(corral::unique_fd(p.served)));
    p.served = -1;
    return ok;
  }
  void TearDown() override {
    if (pending) pending->send("late");  // a response a test kept must be ended
    srv_.reset();
    uv_run(default_loop(), UV_RUN_NOWAIT);
  }
  corral::http::router routes;
  corral::http::response* pending = nullptr;
  std::optional<corral::http::server> srv_;
  tcp_pair p;
};

}  // namespace http_inprocess
