// The seed's HTTP examples, run for real: cluster_http spreads requests over
// its workers; hello_app answers /hello/:name? and closes gracefully on SIGINT.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <regex>
#include <set>

#include "http_client.hpp"
#include "support/process.hpp"

using namespace support;
using http_test::client;

namespace {

int port_of(const std::string& out) {
  std::smatch m;
  if (std::regex_search(out, m, std::regex(R"(Listening on port (\d+))"))) return std::stoi(m[1]);
  return 0;
}

std::optional<http_test::response> fetch(int port, const std::string& path) {
  client c(port);
  if (!c.ok()) return std::nullopt;
  if (!c.send("GET " + path + " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")) return std::nullopt;
  return c.read();
}

}  // namespace

TEST(ClusterHttp, WorkersShareThePortAndEachAnswersWithItsPid) {
  become_subreaper();
  child p({bin("examples/cluster_http"), "2"}, {.env = {{"PORT", "0"}}});
  ASSERT_TRUE(p.wait_out("Worker ", 20s, 2)) << p.out() << p.err();
  ASSERT_TRUE(p.wait_out("Listening on port ", 10s, 2)) << p.out();
  std::string out = p.out();
  EXPECT_NE(out.find("Master " + std::to_string(p.pid()) + " is running"), std::string::npos) << out;
  EXPECT_NE(out.find("Forking process number 1..."), std::string::npos) << out;
  std::set<std::string> started;
  std::regex re(R"(Worker (\d+) started\.\.\.)");
  for (auto it = std::sregex_iterator(out.begin(), out.end(), re); it != std::sregex_iterator(); ++it)
    started.insert((*it)[1]);
  ASSERT_EQ(started.size(), 2u) << out;
  int port = port_of(out);
  ASSERT_GT(port, 0);
  std::set<std::string> answered;
  for (int i = 0; i < 20 && answered.size() < 2; ++i) {
    auto r = fetch(port, "/");
    ASSERT_TRUE(r) << i;
    ASSERT_EQ(r->body.rfind("Hello World from ", 0), 0u) << r->body;
    answered.insert(r->body.substr(17));
  }
  EXPECT_EQ(answered, started);
  p.signal(SIGINT);
  ASSERT_TRUE(p.wait_exit(10s)) << p.out() << p.err();
  EXPECT_TRUE(wait_until([&] { reap_orphans(); return live_in_group(p.pid()).empty(); }, 5s));
}

TEST(HelloApp, GreetsByNameOrTheWorld) {
  child p({bin("examples/hello_app")}, {.env = {{"PORT", "0"}}});
  ASSERT_TRUE(p.wait_out("Listening on port ", 10s)) << p.err();
  int port = port_of(p.out());
  auto r = fetch(port, "/hello/John");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "Hello John!!!");
  r = fetch(port, "/hello");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "Hello World !!!");
  r = fetch(port, "/hello/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "Hello World !!!");
}

TEST(HelloApp, SigintFinishesTheRequestInFlightRunsCleanupAndExitsZero) {
  child p({bin("examples/hello_app")}, {.env = {{"PORT", "0"}}});
  ASSERT_TRUE(p.wait_out("Listening on port ", 10s)) << p.err();
  int port = port_of(p.out());
  client slow(port);
  ASSERT_TRUE(slow.send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"));
  // Make sure the slow request is being handled before the signal.
  ASSERT_TRUE(fetch(port, "/hello"));
  p.signal(SIGINT);
  ASSERT_TRUE(p.wait_out("Closing server...", 5s)) << p.out();
  EXPECT_FALSE(client(port).ok());  // no longer accepting
  auto r = slow.read(false, 5000);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "slow done");
  EXPECT_EQ(r->header("connection"), "close");
  auto st = p.wait_exit(5s);
  ASSERT_TRUE(st) << p.out();
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << *st;
  std::string out = p.out();
  auto closed = out.find("Server closed !!!");
  ASSERT_NE(closed, std::string::npos) << out;
  EXPECT_NE(out.find("Cleaning up...", closed), std::string::npos) << out;
}

TEST(HelloApp, ForcesExitOneWhenAConnectionWillNotFinish) {
  child p({bin("examples/hello_app")}, {.env = {{"PORT", "0"}}});
  ASSERT_TRUE(p.wait_out("Listening on port ", 10s)) << p.err();
  int port = port_of(p.out());
  // Half a request: the connection is busy (not idle) and never finishes
  // within the 5 s; only the 60 s headers timeout would end it.
  client stuck(port);
  ASSERT_TRUE(stuck.send("GET /hello HTTP/1.1\r\nHost: t\r\n"));
  ASSERT_TRUE(fetch(port, "/hello"));
  p.signal(SIGINT);
  auto st = p.wait_exit(10s);
  ASSERT_TRUE(st) << p.out();
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 1) << *st;
  EXPECT_NE(p.out().find("Cleaning up..."), std::string::npos);
}
