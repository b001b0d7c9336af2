// Garbage on one worker's channel: the primary reports it, naming the worker,
// closes that channel only, and keeps exchanging messages with the others.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <regex>
#include <string>

#include "support/process.hpp"

using namespace support;

namespace {

struct garbage_case {
  std::string mode;
  std::string error;  // what the primary must say about worker 1's channel
};

class ChannelGarbage : public ::testing::TestWithParam<garbage_case> {};

TEST_P(ChannelGarbage, PrimaryReportsTheWorkerAndKeepsServingTheOthers) {
  become_subreaper();
  const auto& c = GetParam();
  child p({bin("tests/e2e/helpers/channel_garbage"), c.mode});
  ASSERT_TRUE(p.wait_out("primary: worker 1 is pid", 10s)) << p.out() << p.err();
  std::smatch m;
  std::string out = p.out();
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(worker 1 is pid (\d+))"))) << out;
  std::string w1_pid = m[1];

  auto st = p.wait_exit(60s);
  ASSERT_TRUE(st) << p.out() << p.err();
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << *st << "\n" << p.out() << p.err();

  // The report names the worker (id and pid) and says what was wrong.
  std::string err = p.err();
  EXPECT_EQ(count(err, "channel to worker 1 (pid " + w1_pid + ")" + c.error), 1) << err;
  EXPECT_EQ(count(err, "closing the channel to worker 1"), 1) << err;
  EXPECT_EQ(count(err, "worker 2"), 0) << err;

  // After worker 1's channel closed, worker 2 still answers every ping.
  out = p.out();
  auto closed = out.find("channel to worker 1 closed");
  ASSERT_NE(closed, std::string::npos) << out;
  for (int i = 1; i <= 3; ++i) {
    auto pong = out.find("primary: pong " + std::to_string(i) + " from worker 2");
    ASSERT_NE(pong, std::string::npos) << out;
    EXPECT_GT(pong, closed) << out;
  }
  EXPECT_NE(out.find("primary: worker 2 exited (code 0, signal 0)"), std::string::npos) << out;
  EXPECT_NE(out.find("primary: all workers gone"), std::string::npos) << out;
  EXPECT_TRUE(wait_until([&] { reap_orphans(); return live_in_group(p.pid()).empty(); }, 10s));
}

INSTANTIATE_TEST_SUITE_P(
    Modes, ChannelGarbage,
    ::testing::Values(garbage_case{"random", ": message is not JSON: \"\\xff"},
                      garbage_case{"long", ": message longer than 16777216 bytes"},
                      garbage_case{"deep", ": message nests deeper than 10000 levels: \"[[[["},
                      garbage_case{"half", " closed in the middle of a message"}),
    [](const auto& info) { return info.param.mode; });

}  // namespace
