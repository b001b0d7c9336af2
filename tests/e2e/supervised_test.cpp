// A libcorral program under a supervisor says it is ready by itself, by the
// manager's channel and by systemd's sd_notify, and stops on 'shutdown'.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "support/client.hpp"
#include "support/process.hpp"

using namespace support;

TEST(Supervised, ClusterPrimaryNotifiesSystemdOnceEveryWorkerListens) {
  become_subreaper();
  temp_dir dir;
  std::string path = dir.file("notify");
  int sock = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  ASSERT_EQ(::bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  child p({bin("examples/cluster_echo"), "0", "2"}, {.env = {{"NOTIFY_SOCKET", path}}});
  pollfd pfd{sock, POLLIN, 0};
  ASSERT_EQ(::poll(&pfd, 1, 20000), 1) << p.out() << p.err();
  char buf[64] = {};
  ssize_t n = ::recv(sock, buf, sizeof buf - 1, 0);
  EXPECT_EQ(std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0), "READY=1");
  // Ready means serving: both workers are listening by now.
  EXPECT_EQ(count(p.out(), "listening on"), 2) << p.out();
  EXPECT_EQ(::poll(&pfd, 1, 300), 0) << "READY=1 is sent once";
  ::close(sock);
}

TEST(Supervised, ManagerChannelGetsReadyAndShutdownStopsTheProgramGracefully) {
  become_subreaper();
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  child p({bin("examples/cluster_echo"), "0", "2"},
          {.env = {{"CORRAL_CHANNEL_FD", "3"}, {"NODE_CHANNEL_FD", "3"}}, .fds = {{3, sv[1]}}});
  ::close(sv[1]);
  auto line = read_line(sv[0], 20000);
  ASSERT_TRUE(line) << p.out() << p.err();
  EXPECT_EQ(*line, "\"ready\"");
  EXPECT_EQ(count(p.out(), "listening on"), 2) << p.out();
  ASSERT_TRUE(write_all(sv[0], "\"shutdown\"\n"));
  auto st = p.wait_exit(10s);
  ASSERT_TRUE(st) << p.out() << p.err();
  // Stopped as by SIGTERM: the primary disconnected its workers first.
  EXPECT_TRUE(WIFSIGNALED(*st) && WTERMSIG(*st) == SIGTERM) << *st;
  EXPECT_TRUE(wait_until([&] { reap_orphans(); return live_in_group(p.pid()).empty(); }, 5s));
  ::close(sv[0]);
}
