// A listener stopped while it is busy: from inside its own connection
// callback, with more of the same accept batch still to deliver, or while a
// cluster worker still waits for the primary to answer its listen.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <regex>
#include <tuple>

#include "support/client.hpp"
#include "support/process.hpp"

using namespace support;

namespace {

// workers (0: alone), policy, what the first connection's callback does.
using close_case = std::tuple<int, std::string, std::string>;

std::string case_name(const ::testing::TestParamInfo<close_case>& info) {
  auto [workers, policy, how] = info.param;
  return (workers ? policy : std::string("alone")) + "_" + how;
}

}  // namespace

class ListenerClosedInCallback : public ::testing::TestWithParam<close_case> {};

// Connections accepted before the close are delivered, not dropped: the
// batch they came in must outlive the acceptor the close destroys (under
// ASan a use-after-free, in a plain build closed or garbage fds).
TEST_P(ListenerClosedInCallback, StillDeliversEveryConnectionAcceptedBefore) {
  auto [workers, policy, how] = GetParam();
  const int clients = 8;
  child p({bin("tests/e2e/close_on_first_connection")},
          {.env = {{"WORKERS", std::to_string(workers)},
                   {"CORRAL_SCHED_POLICY", policy},
                   {"CLOSE_BY", how},
                   {"CLIENTS", std::to_string(clients)}}});
  ASSERT_TRUE(p.wait_out("connected ", 20s)) << p.out() << p.err();
  // Every client is delivered once, and the process ends cleanly.
  EXPECT_TRUE(p.wait_out("conn ", 10s, clients)) << p.out() << p.err();
  if (workers) {
    ASSERT_TRUE(p.wait_out("exit ", 10s)) << p.out() << p.err();
    EXPECT_TRUE(std::regex_search(p.out(), std::regex("exit \\d+ code 0 signal 0"))) << p.out() << p.err();
  }
  auto st = p.wait_exit(10s);
  ASSERT_TRUE(st) << p.out() << p.err();
  EXPECT_EQ(count(p.out(), "conn ok"), clients) << p.out() << p.err();
  EXPECT_EQ(count(p.out(), "conn bad"), 0) << p.out() << p.err();
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << *st << p.err();
}

INSTANTIATE_TEST_SUITE_P(
    Net, ListenerClosedInCallback,
    ::testing::Values(close_case{0, "round_robin", "close"}, close_case{0, "round_robin", "shutdown"},
                      close_case{1, "shared", "close"}, close_case{1, "shared", "disconnect"},
                      close_case{1, "shared", "shutdown"}, close_case{1, "reuseport", "close"},
                      close_case{1, "reuseport", "disconnect"}, close_case{1, "round_robin", "close"},
                      close_case{1, "round_robin", "disconnect"}),
    case_name);

// A close while the primary has not answered a listen yet takes effect once
// it answers, and only that once: listening again later must stay listening
// (it used to report success, then close itself).
TEST(ListenerClose, DuringAClusterListenThenListeningAgainStaysListening) {
  become_subreaper();
  child p({bin("tests/e2e/pid_server")}, {.env = {{"WORKERS", "1"}, {"RELISTEN", "1"}}});
  ASSERT_TRUE(p.wait_out("relistened ", 20s)) << p.out() << p.err();
  EXPECT_NE(p.out().find("relistened listening"), std::string::npos) << p.out() << p.err();
  std::smatch m;
  std::string out = p.out();
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(listening \d+ 127\.0\.0\.1:(\d+))"))) << out;
  int fd = connect_tcp(std::stoi(m[1]));
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(read_line(fd, 5000)) << p.out() << p.err();  // served
  ::close(fd);
}
