// corral run's orphan reaper inside a forked copy of this test (it makes its
// process a child subreaper, which must not outlive the test): it reaps a
// child that is not libuv's and leaves libuv's own to libuv, even when both
// are zombies at the moment it looks.
#include "cli/orphan_reaper.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstdio>
#include <string>

#include "support/process.hpp"

namespace {

using namespace support;

bool zombie(pid_t pid) {
  auto f = stat_fields(pid);
  return !f.empty() && f[0] == "Z";
}

struct spawned {
  uv_process_t process{};
  bool exited = false;
  int64_t status = -1;
};

// The scenario, in the forked child; returns its exit code (0: as expected).
int scenario() {
  uv_loop_t loop;
  if (uv_loop_init(&loop) != 0) return 20;
  int code = 0;
  {
    corral::cli::orphan_reaper reaper(&loop);
    // Not libuv's: as an orphan an app left would be.
    pid_t plain = ::fork();
    if (plain == 0) ::_exit(0);
    // libuv's, as an instance is.
    spawned child;
    child.process.data = &child;
    char sh[] = "/bin/sh", dash_c[] = "-c", exit7[] = "exit 7";
    char* args[] = {sh, dash_c, exit7, nullptr};
    uv_process_options_t opts{};
    opts.file = sh;
    opts.args = args;
    opts.exit_cb = [](uv_process_t* p, int64_t status, int) {
      auto* c = static_cast<spawned*>(p->data);
      c->exited = true;
      c->status = status;
      uv_close(reinterpret_cast<uv_handle_t*>(p), nullptr);
    };
    if (uv_spawn(&loop, &child.process, &opts) != 0) return 21;
    pid_t libuvs = child.process.pid;
    if (!wait_until([&] { return zombie(plain) && zombie(libuvs); }, 10s)) return 22;

    reaper.reap_for_test();
    if (!zombie(libuvs)) {
      std::fprintf(stderr, "the reaper took libuv's child %d\n", libuvs);
      code = 10;
    }
    // libuv reaps its child on SIGCHLD and reports its status; the reaper,
    // woken by SIGCHLD too, takes the other one. Bounded by a timer.
    uv_timer_t bound;
    uv_timer_init(&loop, &bound);
    uv_timer_start(&bound, [](uv_timer_t* t) { uv_stop(t->loop); }, 10000, 0);
    uv_unref(reinterpret_cast<uv_handle_t*>(&bound));
    while (!child.exited && uv_is_active(reinterpret_cast<uv_handle_t*>(&bound)))
      if (uv_run(&loop, UV_RUN_ONCE) == 0 && !child.exited) break;
    if (!child.exited) {
      std::fprintf(stderr, "libuv never saw its child %d exit\n", libuvs);
      return 11;
    }
    if (child.status != 7) {
      std::fprintf(stderr, "libuv's child: exit status %lld, not 7\n", static_cast<long long>(child.status));
      code = 12;
    }
    if (!wait_until([&] {
          uv_run(&loop, UV_RUN_NOWAIT);
          siginfo_t info{};  // WNOWAIT: only look, the reaper must have taken it
          return ::waitid(P_PID, static_cast<id_t>(plain), &info, WEXITED | WNOHANG | WNOWAIT) == -1 && errno == ECHILD;
        }, 10s)) {
      std::fprintf(stderr, "the other child %d was not reaped\n", plain);
      code = code ? code : 13;
    }
    uv_close(reinterpret_cast<uv_handle_t*>(&bound), nullptr);
  }
  uv_run(&loop, UV_RUN_DEFAULT);  // the reaper's handles close
  if (uv_loop_close(&loop) != 0) return 14;
  return code;
}

TEST(OrphanReaper, ReapsOtherChildrenAndLeavesLibuvsToLibuv) {
  std::fflush(nullptr);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) ::_exit(scenario());
  int st = 0;
  ASSERT_EQ(::waitpid(pid, &st, 0), pid);
  ASSERT_TRUE(WIFEXITED(st)) << "signal " << (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  EXPECT_EQ(WEXITSTATUS(st), 0) << "see the reason above";
}

}  // namespace
