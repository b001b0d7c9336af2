// Workers that use the shutdown helper (corral/shutdown.hpp) inside a
// cluster whose primary handles the same signals.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <regex>

#include "http_client.hpp"
#include "support/client.hpp"
#include "support/process.hpp"

using namespace support;

// A Ctrl-C reaches every process of the group: each worker hears it by its
// own signal and by its primary's disconnect, in either order. That is one
// request to leave, not two: the requests in flight finish and the workers
// exit 0 (a second trigger used to force: exit 1, the requests cut).
TEST(Shutdown, SigintToTheGroupLetsHelperWorkersFinishInFlightRequestsAndExitZero) {
  become_subreaper();
  child p({bin("tests/e2e/http_shutdown_cluster")}, {.env = {{"WORKERS", "2"}, {"SLOW_MS", "1000"}}});
  ASSERT_TRUE(p.wait_out("listening ", 20s, 2)) << p.out() << p.err();
  int port = listening_port_of(p.out());
  http_test::client a(port), b(port);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(a.send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"));
  ASSERT_TRUE(b.send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"));
  ASSERT_TRUE(p.wait_out("slow ", 10s, 2)) << p.out() << p.err();  // both in flight
  p.signal_group(SIGINT);
  for (auto* c : {&a, &b}) {
    auto r = c->read(false, 10000);
    ASSERT_TRUE(r) << p.out() << p.err();
    EXPECT_EQ(r->body, "slow done");
  }
  auto st = p.wait_exit(20s);
  ASSERT_TRUE(st) << p.out() << p.err();
  EXPECT_EQ(count(p.out(), "code 0 signal 0"), 2) << p.out() << p.err();
  EXPECT_EQ(count(p.out(), "forced "), 0) << p.out();
  EXPECT_TRUE(wait_until([&] { reap_orphans(); return live_in_group(p.pid()).empty(); }, 5s));
}

// The disconnect that came with the first Ctrl-C does not use up the worker's
// right to be forced: a second signal to it still cuts the wait short.
TEST(Shutdown, SecondSigintToAHelperWorkerForcesItAfterAGroupSigint) {
  become_subreaper();
  child p({bin("tests/e2e/http_shutdown_cluster")}, {.env = {{"WORKERS", "1"}, {"SLOW_MS", "30000"}}});
  ASSERT_TRUE(p.wait_out("listening ", 20s)) << p.out() << p.err();
  int port = listening_port_of(p.out());
  std::smatch m;
  std::string out = p.out();
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(listening (\d+) )")));
  pid_t worker = std::stoi(m[1]);
  http_test::client a(port);
  ASSERT_TRUE(a.send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"));
  ASSERT_TRUE(p.wait_out("slow ", 10s)) << p.out() << p.err();
  auto t0 = clock::now();
  p.signal_group(SIGINT);
  ASSERT_TRUE(p.wait_out("closing ", 10s)) << p.out() << p.err();
  // The group's SIGINT was delivered to the worker before it printed that
  // (whether its shutdown began by it or by the disconnect): this is its second.
  ::kill(worker, SIGINT);
  ASSERT_TRUE(p.wait_out("exit ", 10s)) << p.out() << p.err();
  EXPECT_LT(clock::now() - t0, 10s);
  EXPECT_NE(p.out().find("forced " + std::to_string(worker)), std::string::npos) << p.out();
  EXPECT_NE(p.out().find("exit " + std::to_string(worker) + " code 1 signal 0"), std::string::npos) << p.out();
  ASSERT_TRUE(p.wait_exit(10s));
}

// A worker that begins its shutdown while the primary has not yet answered
// its listen, and the answer is an error (the port is taken): the listen
// reports the error and the server's close completes, so the worker exits 0
// at once (it used to wait out its 10 s timeout and exit 1).
TEST(Shutdown, HelperWorkerLeavingBeforeAFailedListenIsAnsweredExitsAtOnce) {
  become_subreaper();
  int taken = 0;
  int holder = listen_tcp(taken);  // the primary's bind gets EADDRINUSE
  ASSERT_GE(holder, 0);
  child p({bin("tests/e2e/http_shutdown_cluster")}, {.env = {{"WORKERS", "1"},
                                                              {"PORT", std::to_string(taken)},
                                                              {"SHUTDOWN_AT_ONCE", "1"},
                                                              {"SHUTDOWN_TIMEOUT_MS", "10000"}}});
  ASSERT_TRUE(p.wait_out("exit ", 5s)) << p.out() << p.err();
  EXPECT_NE(p.out().find("listen failed: "), std::string::npos) << p.out() << p.err();
  EXPECT_TRUE(std::regex_search(p.out(), std::regex(R"(closed \d+\n)"))) << p.out() << p.err();
  EXPECT_TRUE(std::regex_search(p.out(), std::regex(R"(exit \d+ code 0 signal 0)"))) << p.out() << p.err();
  EXPECT_TRUE(p.wait_exit(10s)) << p.out() << p.err();
  ::close(holder);
}
