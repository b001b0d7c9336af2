// The seed's cluster examples, run for real: output as the seed prints it,
// and no process left behind.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <regex>
#include <set>

#include "support/process.hpp"

using namespace support;

namespace {

std::set<std::string> captures(const std::string& text, const std::string& pattern) {
  std::set<std::string> out;
  std::regex re(pattern);
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator(); ++it)
    out.insert((*it)[1]);
  return out;
}

}  // namespace

TEST(ClusterBasic, EveryWorkerStartsAndFinishesThenPrimaryExits) {
  become_subreaper();
  child p({bin("examples/cluster_basic"), "3"});
  auto st = p.wait_exit(20s);
  ASSERT_TRUE(st) << p.out() << p.err();
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << *st;
  std::string out = p.out();
  EXPECT_NE(out.find("Master " + std::to_string(p.pid()) + " is running"), std::string::npos) << out;
  for (int i = 0; i < 3; ++i) EXPECT_EQ(count(out, "Forking process number " + std::to_string(i) + "..."), 1) << out;
  auto workers = captures(out, R"(Worker (\d+) started and finished)");
  EXPECT_EQ(workers.size(), 3u) << out;
  EXPECT_FALSE(workers.count(std::to_string(p.pid())));
  EXPECT_TRUE(wait_until([&] { reap_orphans(); return live_in_group(p.pid()).empty(); }, 5s));
}

TEST(ClusterMessages, PrimaryAndWorkersExchangeMessagesBothWays) {
  become_subreaper();
  child p({bin("examples/cluster_messages"), "2"});
  std::string master = std::to_string(p.pid());
  ASSERT_TRUE(p.wait_out(" finished", 20s, 2)) << p.out() << p.err();
  ASSERT_TRUE(p.wait_out("' from worker ", 10s, 2)) << p.out();
  ASSERT_TRUE(p.wait_out("Message from master " + master, 10s, 2)) << p.out();
  std::string out = p.out();
  auto started = captures(out, R"(Worker (\d+) started)");
  ASSERT_EQ(started.size(), 2u) << out;
  for (const auto& w : started) {
    EXPECT_EQ(count(out, "Master " + master + " sends message to worker " + w + "..."), 1) << out;
    EXPECT_EQ(count(out, "Worker " + w + " sends message to master..."), 1) << out;
    EXPECT_EQ(count(out, "Worker " + w + " finished"), 1) << out;
    EXPECT_EQ(count(out, "Master " + master + " receives message '{\"msg\":\"Message from worker " + w +
                             "\"}' from worker " + w),
              1)
        << out;
    EXPECT_EQ(count(out, "Worker " + w + " receives message '{\"msg\":\"Message from master " + master + "\"}'"), 1)
        << out;
  }
}

TEST(ClusterMessages, SigintToThePrimaryLeavesNoWorkerBehind) {
  become_subreaper();
  child p({bin("examples/cluster_messages"), "2"});
  ASSERT_TRUE(p.wait_out(" finished", 20s, 2)) << p.out() << p.err();
  ASSERT_EQ(live_in_group(p.pid()).size(), 3u);
  p.signal(SIGINT);  // the primary only, as `kill -INT <pid>` would
  auto st = p.wait_exit(10s);
  ASSERT_TRUE(st) << p.out() << p.err();
  EXPECT_TRUE(WIFSIGNALED(*st) && WTERMSIG(*st) == SIGINT) << *st;
  EXPECT_TRUE(wait_until([&] { reap_orphans(); return live_in_group(p.pid()).empty(); }, 5s));
}

TEST(ClusterMessages, CtrlCToTheWholeGroupLeavesNoWorkerBehind) {
  become_subreaper();
  child p({bin("examples/cluster_messages"), "2"});
  ASSERT_TRUE(p.wait_out(" finished", 20s, 2)) << p.out() << p.err();
  p.signal_group(SIGINT);  // what a terminal's Ctrl+C does
  auto st = p.wait_exit(10s);
  ASSERT_TRUE(st) << p.out() << p.err();
  EXPECT_TRUE(wait_until([&] { reap_orphans(); return live_in_group(p.pid()).empty(); }, 5s));
}

TEST(ClusterMessages, WorkersExitWhenThePrimaryIsKilled) {
  become_subreaper();
  child p({bin("examples/cluster_messages"), "2"});
  ASSERT_TRUE(p.wait_out(" finished", 20s, 2)) << p.out() << p.err();
  p.signal(SIGKILL);
  ASSERT_TRUE(p.wait_exit(10s));
  EXPECT_TRUE(wait_until([&] { reap_orphans(); return live_in_group(p.pid()).empty(); }, 10s));
}
