// TCP_DEFER_ACCEPT: corral::http's listening sockets have it (the kernel
// hands over a connection with its request, so the first read finds it),
// wherever the socket lives: this process, a cluster's primary, or each
// reuseport worker. A bare net::listener does not (its protocol may be one
// where the server speaks first), unless asked.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <dirent.h>

#include <map>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "corral/http.hpp"
#include "corral/loop.hpp"
#include "corral/net.hpp"
#include "http_inprocess.hpp"
#include "support/client.hpp"
#include "support/process.hpp"

using namespace support;
using http_inprocess::pump_until;

namespace {

// TCP_DEFER_ACCEPT of every listening socket process `pid` holds on `port`
// (taken with pidfd_getfd: we are the process or its ancestor).
std::vector<int> deferral_of_listeners(pid_t pid, int port) {
  std::vector<int> found;
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return found;
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = ::opendir(dir.c_str());
  while (dirent* e = d ? ::readdir(d) : nullptr) {
    if (e->d_name[0] == '.') continue;
    int fd = static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd, std::atoi(e->d_name), 0));
    if (fd < 0) continue;
    int listening = 0, defer = -1;
    socklen_t len = sizeof listening;
    sockaddr_storage ss{};
    socklen_t sslen = sizeof ss;
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &sslen) == 0 && ss.ss_family == AF_INET &&
        ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port) == port) {
      len = sizeof defer;
      ::getsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, &len);
      found.push_back(defer);
    }
    ::close(fd);
  }
  if (d) ::closedir(d);
  ::close(pidfd);
  return found;
}

// Listens with `listen` (which calls back with the port), then returns the
// deferral of this process's listening sockets on that port.
template <class Listen>
std::vector<int> own_deferral(Listen listen) {
  int port = 0;
  bool failed = false;
  listen([&](const corral::error* e, const corral::net::address& a) {
    failed = e != nullptr;
    port = a.port;
  });
  EXPECT_TRUE(pump_until([&] { return port != 0 || failed; }));
  EXPECT_FALSE(failed);
  return deferral_of_listeners(::getpid(), port);
}

TEST(HttpDeferAccept, AnHttpServerDefersAcceptingUntilTheRequestArrives) {
  corral::http::server srv([](corral::http::request&, corral::http::response& res) { res.send("hi"); });
  auto d = own_deferral([&](auto done) { srv.listen({.host = "127.0.0.1", .port = 0}, done); });
  ASSERT_EQ(d.size(), 1u);
  EXPECT_GT(d[0], 0);
  // A real client is served through it.
  int fd = connect_tcp(srv.local_address().port);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(write_all(fd, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  std::string got = http_inprocess::receive(fd, [](const std::string& s, bool) { return s.find("\r\n\r\nhi") != std::string::npos; });
  EXPECT_NE(got.find("\r\n\r\nhi"), std::string::npos) << got;
  ::close(fd);
  bool closed = false;
  srv.close([&] { closed = true; });
  EXPECT_TRUE(pump_until([&] { return closed; }));
}

TEST(HttpDeferAccept, AnHttpServerToldNotToDeferDoesNot) {
  corral::http::server srv([](corral::http::request&, corral::http::response& res) { res.send("hi"); });
  auto d = own_deferral(
      [&](auto done) { srv.listen({.host = "127.0.0.1", .port = 0, .defer_accept = false}, done); });
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0], 0);
  bool closed = false;
  srv.close([&] { closed = true; });
  EXPECT_TRUE(pump_until([&] { return closed; }));
}

TEST(HttpDeferAccept, ABareListenerDefersOnlyWhenAsked) {
  for (bool ask : {false, true}) {
    corral::net::listener l;
    l.on_connection([](corral::unique_fd) {});
    corral::net::listen_options o{.host = "127.0.0.1", .port = 0};
    if (ask) o.defer_accept = true;
    auto d = own_deferral([&](auto done) { l.listen(o, done); });
    ASSERT_EQ(d.size(), 1u);
    if (ask) {
      EXPECT_GT(d[0], 0);
    } else {
      EXPECT_EQ(d[0], 0) << "a bare listener must not defer: its server may speak first";
    }
    bool closed = false;
    l.close([&] { closed = true; });
    EXPECT_TRUE(pump_until([&] { return closed; }));
  }
}

// http_shutdown_cluster under each policy: every socket listening on the
// port, in the primary or a worker, defers; and the cluster answers.
class ClusterDeferAccept : public ::testing::TestWithParam<const char*> {};

TEST_P(ClusterDeferAccept, EveryListeningSocketOfAnHttpClusterDefers) {
  child p({bin("tests/e2e/http_shutdown_cluster")}, {.env = {{"WORKERS", "2"}, {"CORRAL_SCHED_POLICY", GetParam()}}});
  ASSERT_TRUE(p.wait_out("listening ", 20s, 2)) << p.out() << p.err();
  std::regex re(R"(listening (\d+) \S+:(\d+))");
  std::string out = p.out();
  std::set<pid_t> pids{p.pid()};
  int port = 0;
  for (auto it = std::sregex_iterator(out.begin(), out.end(), re); it != std::sregex_iterator(); ++it) {
    pids.insert(std::stoi((*it)[1]));
    port = std::stoi((*it)[2]);
  }
  ASSERT_GT(port, 0) << out;
  std::size_t sockets = 0;
  for (pid_t pid : pids) {
    for (int d : deferral_of_listeners(pid, port)) {
      EXPECT_GT(d, 0) << "pid " << pid << " (primary " << p.pid() << ")";
      ++sockets;
    }
  }
  // round_robin: the primary's; shared: the primary's and each worker's
  // copy; reuseport: each worker's own.
  EXPECT_GE(sockets, std::string(GetParam()) == "round_robin" ? 1u : 2u);
  int fd = connect_tcp(port);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(write_all(fd, "GET /none HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  EXPECT_NE(read_all(fd, 10000).find("HTTP/1.1 404"), std::string::npos);
  ::close(fd);

}

INSTANTIATE_TEST_SUITE_P(Policies, ClusterDeferAccept, ::testing::Values("round_robin", "shared", "reuseport"),
                         [](const auto& info) { return std::string(info.param); });

// pid_server, whose bare listener speaks first: no socket of its cluster defers.
TEST(HttpDeferAccept, ABareListenerInAClusterDoesNotDefer) {
  child p({bin("tests/e2e/pid_server")}, {.env = {{"WORKERS", "1"}, {"CORRAL_SCHED_POLICY", "round_robin"}}});
  ASSERT_TRUE(p.wait_out("listening ", 20s, 1)) << p.out() << p.err();
  int port = listening_port_of(p.out());
  ASSERT_GT(port, 0) << p.out();
  auto d = deferral_of_listeners(p.pid(), port);
  ASSERT_FALSE(d.empty());
  for (int v : d) EXPECT_EQ(v, 0);

}

}  // namespace
