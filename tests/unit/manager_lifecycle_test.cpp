// The instance lifecycle table, driven with a fake world: no process, no loop.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "daemon/lifecycle.hpp"

using namespace corral::daemon;
using namespace std::chrono_literals;

namespace {

struct fake_effects final : instance_effects {
  std::vector<std::string> log;
  ms clock{0};
  int spawn_result = 0;
  ms armed{-1};

  int spawn() override {
    log.push_back("spawn");
    return spawn_result;
  }
  void signal_stop() override { log.push_back("signal_stop"); }
  void kill_group() override { log.push_back("kill_group"); }
  void arm_timer(ms after) override {
    armed = after;
    log.push_back("arm " + std::to_string(after.count()));
  }
  void cancel_timer() override { armed = ms{-1}; }
  ms now() override { return clock; }
  void on_transition(state, state) override {}
};

class Lifecycle : public ::testing::Test {
 protected:
  fake_effects fx;
  lifecycle_options opts;
  std::unique_ptr<lifecycle> fsm;

  void make() { fsm = std::make_unique<lifecycle>(fx, opts); }
  void SetUp() override { make(); }
  // Runs for `uptime`, then the process exits with `code`.
  void crash_after(ms uptime, int code = 1) {
    fx.clock += uptime;
    fsm->handle_exit(code, 0);
  }
};

}  // namespace

TEST_F(Lifecycle, StartSpawnsAndIsOnlineWithoutWaitReady) {
  fsm->handle(event::start);
  EXPECT_EQ(fsm->current(), state::online);
  EXPECT_EQ(fx.log, std::vector<std::string>{"spawn"});
}

TEST_F(Lifecycle, WaitReadyStaysLaunchingUntilReadyMessage) {
  opts.wait_ready = true;
  make();
  fsm->handle(event::start);
  EXPECT_EQ(fsm->current(), state::launching);
  EXPECT_EQ(fx.armed, 3000ms);
  fsm->handle(event::ready);
  EXPECT_EQ(fsm->current(), state::online);
  EXPECT_EQ(fx.armed, ms{-1});
}

TEST_F(Lifecycle, WaitReadyGoesOnlineAfterListenTimeout) {
  opts.wait_ready = true;
  make();
  fsm->handle(event::start);
  fsm->handle(event::timer);
  EXPECT_EQ(fsm->current(), state::online);
  EXPECT_TRUE(fsm->online_by_timeout());
}
TEST_F(Lifecycle, OnlineByTimeoutIsForgottenByTheNextRunAndUnsetByReady) {
  opts.wait_ready = true;
  make();
  fsm->handle(event::start);
  fsm->handle(event::timer);
  fsm->handle(event::restart);
  fsm->handle_exit(0, 2);
  EXPECT_EQ(fsm->current(), state::launching);
  EXPECT_FALSE(fsm->online_by_timeout());
  fsm->handle(event::ready);
  EXPECT_FALSE(fsm->online_by_timeout());
}

TEST_F(Lifecycle, StopSignalsThenKillsAfterKillTimeout) {
  fsm->handle(event::start);
  fsm->handle(event::stop);
  EXPECT_EQ(fsm->current(), state::stopping);
  EXPECT_EQ(fx.armed, 1600ms);
  fsm->handle(event::timer);
  EXPECT_EQ(fx.log.back(), "kill_group");
  fsm->handle_exit(0, 9);
  EXPECT_EQ(fsm->current(), state::stopped);
}

// A stop signal sent while the app starts can be lost (Python swallows a
// SIGINT that comes during its imports): an instance still launching gets it
// once it says it is ready, exactly once; kill_timeout counts from then.
TEST_F(Lifecycle, AStopWhileLaunchingIsSentOnceTheAppSaysReady) {
  opts.wait_ready = true;
  make();
  fsm->handle(event::start);
  fx.clock += 500ms;
  fsm->handle(event::stop);
  EXPECT_EQ(fsm->current(), state::stopping);
  EXPECT_EQ(fx.log, (std::vector<std::string>{"spawn", "arm 3000", "arm 1600"}));  // no signal yet
  fsm->handle(event::ready);
  fsm->handle(event::ready);
  EXPECT_EQ(fsm->current(), state::stopping);
  EXPECT_EQ(fx.log, (std::vector<std::string>{"spawn", "arm 3000", "arm 1600", "signal_stop", "arm 1600"}));
  fsm->handle_exit(0, 0);
  EXPECT_EQ(fsm->current(), state::stopped);
}

// One that never says it is ready gets the signal when its listen_timeout
// would have made it online (here 1 s after the stop), then SIGKILL after
// kill_timeout.
TEST_F(Lifecycle, AStopWhileLaunchingIsSentAtListenTimeoutThenKills) {
  opts.wait_ready = true;
  make();
  fsm->handle(event::start);
  fx.clock += 2000ms;
  fsm->handle(event::stop);
  EXPECT_EQ(fx.armed, 1000ms);
  fsm->handle(event::timer);
  fsm->handle(event::timer);
  EXPECT_EQ(fx.log,
            (std::vector<std::string>{"spawn", "arm 3000", "arm 1000", "signal_stop", "arm 1600", "kill_group"}));
}

TEST_F(Lifecycle, AStopOfAnOnlineAppIsSentAtOnceAndOnlyOnce) {
  opts.wait_ready = true;
  make();
  fsm->handle(event::start);
  fsm->handle(event::ready);
  fsm->handle(event::stop);
  fsm->handle(event::ready);
  EXPECT_EQ(fx.log, (std::vector<std::string>{"spawn", "arm 3000", "signal_stop", "arm 1600"}));
}

TEST_F(Lifecycle, ExitDuringStopDoesNotRestart) {
  fsm->handle(event::start);
  fsm->handle(event::stop);
  crash_after(5s, 0);
  EXPECT_EQ(fsm->current(), state::stopped);
  EXPECT_EQ(std::count(fx.log.begin(), fx.log.end(), "spawn"), 1);
}

TEST_F(Lifecycle, RestartStopsThenSpawnsAgain) {
  fsm->handle(event::start);
  fsm->handle(event::restart);
  EXPECT_EQ(fsm->current(), state::stopping);
  crash_after(5s, 0);
  EXPECT_EQ(fsm->current(), state::online);
  EXPECT_EQ(std::count(fx.log.begin(), fx.log.end(), "spawn"), 2);
  EXPECT_EQ(fsm->restarts(), 1);
}

TEST_F(Lifecycle, StopDuringRestartCancelsTheRespawn) {
  fsm->handle(event::start);
  fsm->handle(event::restart);
  fsm->handle(event::stop);
  crash_after(1s, 0);
  EXPECT_EQ(fsm->current(), state::stopped);
}

TEST_F(Lifecycle, StableCrashRestartsAtOnce) {
  fsm->handle(event::start);
  crash_after(5s);
  EXPECT_EQ(fsm->current(), state::online);
  EXPECT_EQ(fsm->restarts(), 1);
}

TEST_F(Lifecycle, CrashLoopBacksOffThenErrors) {
  opts.policy.max_restarts = 3;
  make();
  fsm->handle(event::start);
  std::vector<ms> delays;
  for (int k = 0; k < 3; ++k) {
    crash_after(10ms);
    ASSERT_EQ(fsm->current(), state::waiting_restart);
    delays.push_back(fx.armed);
    fsm->handle(event::timer);
    ASSERT_EQ(fsm->current(), state::online);
  }
  EXPECT_LT(delays[0], delays[1]);
  EXPECT_LT(delays[1], delays[2]);
  crash_after(10ms, 7);
  EXPECT_EQ(fsm->current(), state::errored);
  EXPECT_EQ(fsm->last_exit().code, 7);
}

TEST_F(Lifecycle, ResetForgetsTheRestartsAndTheBackoff) {
  opts.policy.max_restarts = 2;
  make();
  fsm->handle(event::start);
  crash_after(10ms);
  ms first = fx.armed;
  fsm->handle(event::timer);
  crash_after(10ms);
  ASSERT_GT(fx.armed, first);  // backing off
  fsm->handle(event::timer);
  ASSERT_EQ(fsm->restarts(), 2);
  fsm->reset_counters();
  EXPECT_EQ(fsm->restarts(), 0);
  // The next crash waits the first delay again, and max_restarts counts anew:
  // two more unstable crashes restart, where without the reset one would be
  // the third and error.
  crash_after(10ms);
  EXPECT_EQ(fsm->current(), state::waiting_restart);
  EXPECT_EQ(fx.armed, first);
  fsm->handle(event::timer);
  crash_after(10ms);
  EXPECT_EQ(fsm->current(), state::waiting_restart);
  EXPECT_EQ(fsm->restarts(), 1);  // counted when a restart runs: one since the reset
}

TEST_F(Lifecycle, StopWhileWaitingToRestartStopsAtOnce) {
  fsm->handle(event::start);
  crash_after(10ms);
  ASSERT_EQ(fsm->current(), state::waiting_restart);
  fsm->handle(event::stop);
  EXPECT_EQ(fsm->current(), state::stopped);
  EXPECT_EQ(fx.armed, ms{-1});
}

TEST_F(Lifecycle, SpawnFailureIsErroredWithTheError) {
  fx.spawn_result = -2;
  fsm->handle(event::start);
  EXPECT_EQ(fsm->current(), state::errored);
  EXPECT_EQ(fsm->spawn_error(), -2);
  fx.spawn_result = 0;
  fsm->handle(event::start);
  EXPECT_EQ(fsm->current(), state::online);
}

TEST_F(Lifecycle, NoAutorestartStopsOnExit) {
  opts.policy.autorestart = false;
  make();
  fsm->handle(event::start);
  crash_after(5s);
  EXPECT_EQ(fsm->current(), state::stopped);
}

TEST_F(Lifecycle, EventsThatMeanNothingInAStateAreIgnored) {
  fsm->handle(event::ready);
  fsm->handle(event::timer);
  fsm->handle(event::stop);
  EXPECT_EQ(fsm->current(), state::stopped);
  EXPECT_TRUE(fx.log.empty());
}
