// The example apps in other languages serve on a socket handed over by
// systemd's socket-activation protocol (what the corral manager does in
// cluster mode) and stop gracefully, knowing nothing of Corral.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/client.hpp"
#include "support/process.hpp"

using namespace support;

namespace {

std::string get(int port) {
  int fd = connect_tcp(port);
  if (fd < 0) return "connect failed";
  write_all(fd, "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
  std::string reply = read_all(fd, 5000);
  ::close(fd);
  return reply;
}

}  // namespace

TEST(AnyLanguage, PythonAppServesOnTheInheritedSocketAndStopsOnSigint) {
  become_subreaper();
  int port = 0;
  int sock = listen_tcp(port);
  child p({"python3", src("examples/python/app.py")},
          {.env = {{"LISTEN_FDS", "1"}}, .unset_env = {"PORT"}, .fds = {{3, sock}}, .listen_pid = true});
  ::close(sock);
  ASSERT_TRUE(p.wait_out("serving", 20s)) << p.out() << p.err();
  std::string reply = get(port);
  EXPECT_EQ(reply.rfind("HTTP/1.1 200 ", 0), 0u) << reply;
  EXPECT_NE(reply.find("Hello from Python " + std::to_string(p.pid())), std::string::npos) << reply;
  p.signal(SIGINT);
  auto st = p.wait_exit(10s);
  ASSERT_TRUE(st) << p.out() << p.err();
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << p.err();
  EXPECT_NE(p.out().find("stopped"), std::string::npos);
}

TEST(AnyLanguage, NodeAppServesOnFd3SaysReadyAndStopsOnShutdownMessage) {
  become_subreaper();
  int port = 0;
  int sock = listen_tcp(port);
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  child p({"node", src("examples/node/app.js")},
          {.env = {{"LISTEN_FDS", "1"}, {"NODE_CHANNEL_FD", "4"}}, .fds = {{3, sock}, {4, sv[1]}}, .listen_pid = true});
  ::close(sock);
  ::close(sv[1]);
  auto ready = read_line(sv[0], 20000);
  ASSERT_TRUE(ready) << p.out() << p.err();
  EXPECT_EQ(*ready, "\"ready\"");
  std::string reply = get(port);
  EXPECT_EQ(reply.rfind("HTTP/1.1 200 ", 0), 0u) << reply;
  EXPECT_NE(reply.find("Hello from Node " + std::to_string(p.pid())), std::string::npos) << reply;
  ASSERT_TRUE(write_all(sv[0], "\"shutdown\"\n"));
  auto st = p.wait_exit(10s);
  ASSERT_TRUE(st) << p.out() << p.err();
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << p.err();
  ::close(sv[0]);
}
