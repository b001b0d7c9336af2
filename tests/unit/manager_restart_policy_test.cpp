#include <gtest/gtest.h>

#include "daemon/restart_policy.hpp"

using namespace corral::daemon;
using namespace std::chrono_literals;
using kind = restart_decision::kind;

TEST(RestartPolicy, ExponentialBackoffDoublesAndIsCapped) {
  restart_policy p;
  p.exp_backoff_restart_delay = 100ms;
  p.max_backoff = 500ms;
  p.max_restarts = 100;
  restart_history h;
  std::vector<long> delays;
  for (int k = 0; k < 5; ++k) delays.push_back(decide_restart(p, {1, 0, 10ms}, h).delay.count());
  EXPECT_EQ(delays, (std::vector<long>{100, 200, 400, 500, 500}));
}

TEST(RestartPolicy, StableRunResetsBackoffAndCount) {
  restart_policy p;
  p.exp_backoff_restart_delay = 100ms;
  restart_history h;
  decide_restart(p, {1, 0, 10ms}, h);
  decide_restart(p, {1, 0, 10ms}, h);
  EXPECT_EQ(h.unstable_restarts, 2);
  auto d = decide_restart(p, {1, 0, 5s}, h);
  EXPECT_EQ(h.unstable_restarts, 0);
  EXPECT_EQ(d.delay, 100ms);
}

TEST(RestartPolicy, MaxRestartsThenErrored) {
  restart_policy p;
  p.max_restarts = 2;
  restart_history h;
  EXPECT_EQ(decide_restart(p, {1, 0, 1ms}, h).what, kind::restart);
  EXPECT_EQ(decide_restart(p, {1, 0, 1ms}, h).what, kind::restart);
  EXPECT_EQ(decide_restart(p, {1, 0, 1ms}, h).what, kind::errored);
}

TEST(RestartPolicy, StopExitCodesMeanDone) {
  restart_policy p;
  p.stop_exit_codes = {0, 3};
  restart_history h;
  EXPECT_EQ(decide_restart(p, {3, 0, 5s}, h).what, kind::stop);
  EXPECT_EQ(decide_restart(p, {1, 0, 5s}, h).what, kind::restart);
  // A signal is not an exit code, even if its number matches.
  EXPECT_EQ(decide_restart(p, {0, 3, 5s}, h).what, kind::restart);
}

TEST(RestartPolicy, FixedRestartDelayApplies) {
  restart_policy p;
  p.restart_delay = 250ms;
  restart_history h;
  EXPECT_EQ(decide_restart(p, {1, 0, 5s}, h).delay, 250ms);
}

TEST(RestartPolicy, UnstableLoopWithoutDelayStillGetsAFloor) {
  restart_policy p;
  restart_history h;
  auto a = decide_restart(p, {1, 0, 1ms}, h);
  auto b = decide_restart(p, {1, 0, 1ms}, h);
  EXPECT_GT(a.delay.count(), 0);
  EXPECT_GT(b.delay, a.delay);
}
