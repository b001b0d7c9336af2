// Issue 5's promise, measured by a real client: 20 rolling restarts of the
// 2-worker examples/cluster_http under wrk cost zero requests, with
// keep-alive and with a new connection per request.
#include <gtest/gtest.h>
#include <signal.h>

#include <regex>

#include "support/process.hpp"

using namespace support;

namespace {

int listening_port(const std::string& out) {
  std::smatch m;
  if (std::regex_search(out, m, std::regex(R"(Listening on port (\d+))"))) return std::stoi(m[1]);
  return 0;
}

}  // namespace

class ZeroDowntime : public ::testing::TestWithParam<bool> {};

TEST_P(ZeroDowntime, TwentyRollingRestartsUnderWrkFailNoRequest) {
  bool keep_alive = GetParam();
  become_subreaper();
  child server({bin("examples/cluster_http"), "2"}, {.env = {{"PORT", "0"}}});
  ASSERT_TRUE(server.wait_out("Listening on port", 20s, 2)) << server.out() << server.err();
  int port = listening_port(server.out());
  ASSERT_GT(port, 0);
  // wrk runs until the restarts are done, however long a slow (sanitized)
  // build takes for them; SIGINT then makes it print its report.
  std::vector<std::string> wrk = {"wrk", "-t2", "-c16", "-d120s", "http://127.0.0.1:" + std::to_string(port) + "/"};
  if (!keep_alive) wrk.insert(wrk.end() - 1, {"-H", "Connection: close"});
  child load(wrk);
  ASSERT_TRUE(wait_until([&] { return !live_in_group(load.pid()).empty(); }, 5s));
  for (int i = 1; i <= 20; ++i) {
    server.signal(SIGHUP);
    ASSERT_TRUE(server.wait_out("Restarted all workers", 20s, i)) << server.out() << server.err();
  }
  ASSERT_TRUE(alive(load.pid())) << "the restarts outlasted the load; lengthen wrk's -d";
  load.signal(SIGINT);
  auto st = load.wait_exit(30s);
  ASSERT_TRUE(st);
  std::string report = load.out();
  EXPECT_NE(report.find("requests in"), std::string::npos) << report << load.err();
  EXPECT_EQ(report.find("Socket errors"), std::string::npos) << report;
  EXPECT_EQ(report.find("Non-2xx"), std::string::npos) << report;
  EXPECT_EQ(count(server.out(), "Restarted all workers"), 20) << server.out();
  EXPECT_EQ(server.err(), "");
}

INSTANTIATE_TEST_SUITE_P(ClusterHttp, ZeroDowntime, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "KeepAlive" : "ConnectionClose"; });
