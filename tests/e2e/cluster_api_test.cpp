// The primary's API in-process: `silent` output, spawn failures, and how a
// worker left (crash vs disconnect). The test process is the primary.
#include <gtest/gtest.h>

#include "corral/cluster.hpp"
#include "support/process.hpp"

namespace cluster = corral::cluster;
using namespace support;

namespace {

// Runs the loop until `done` or 10 s; false on timeout.
bool run_until(const bool& done) {
  uv_timer_t guard;
  uv_timer_init(uv_default_loop(), &guard);
  uv_timer_start(&guard, [](uv_timer_t*) { uv_stop(uv_default_loop()); }, 10000, 0);
  while (!done && uv_run(uv_default_loop(), UV_RUN_ONCE) != 0) {
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&guard), nullptr);
  uv_run(uv_default_loop(), UV_RUN_NOWAIT);
  return done;
}

}  // namespace

TEST(ClusterApi, SilentWorkersOutputComesToThePrimaryPerStream) {
  cluster::setup_primary({.exec = "/bin/sh", .args = std::vector<std::string>{"-c", "echo out-line; echo err-line >&2"},
                          .silent = true, .handle_signals = false});
  std::string out, err;
  bool exited = false;
  corral::worker& w = cluster::fork();
  w.on_output([&](int stream, std::string_view data) { (stream == 1 ? out : err) += data; });
  w.on_exit([&](int code, int sig) {
    EXPECT_EQ(code, 0);
    EXPECT_EQ(sig, 0);
    exited = true;
  });
  ASSERT_TRUE(run_until(exited));
  EXPECT_EQ(out, "out-line\n");
  EXPECT_EQ(err, "err-line\n");
}

TEST(ClusterApi, ProgramThatCannotStartIsReportedAsADeadWorker) {
  cluster::setup_primary({.exec = "/nonexistent/program", .handle_signals = false});
  bool exited = false;
  corral::worker& w = cluster::fork();
  EXPECT_TRUE(w.is_dead());
  w.on_exit([&](int code, int) {
    EXPECT_EQ(code, -1);
    exited = true;
  });
  ASSERT_TRUE(run_until(exited));
  EXPECT_TRUE(cluster::workers().empty());
}

TEST(ClusterApi, ExitedAfterDisconnectTellsADeliberateLeaveFromACrash) {
  // Only the workers' own listeners: cluster-wide ones would outlive this
  // test's locals if the tests repeat in one process.
  cluster::setup_primary({.exec = bin("examples/cluster_messages"), .args = std::vector<std::string>{"1"},
                          .handle_signals = false});
  corral::worker& a = cluster::fork();
  corral::worker& b = cluster::fork();
  int online = 0, exits = 0;
  bool crashed_flag = true, left_flag = false, both = false;
  auto go = [&] {
    if (++online < 2) return;
    a.kill(SIGKILL);  // a crash
    b.disconnect();   // a deliberate leave
  };
  a.on_online(go);
  b.on_online(go);
  a.on_exit([&](int, int) {
    crashed_flag = a.exited_after_disconnect();
    both = ++exits == 2;
  });
  b.on_exit([&](int, int) {
    left_flag = b.exited_after_disconnect();
    both = ++exits == 2;
  });
  ASSERT_TRUE(run_until(both));
  EXPECT_FALSE(crashed_flag);
  EXPECT_TRUE(left_flag);
}
