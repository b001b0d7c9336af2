// `corral run` reaps the orphans of its apps, as tini (`docker run --init`)
// does for a container's PID 1: a process whose parent exits is adopted by
// the nearest child subreaper, or by PID 1, and stays a zombie until that one
// waits for it. corral run makes itself a subreaper, so it adopts them
// whether or not it is PID 1.
//
// The instances are libuv's children: libuv reaps each with waitpid(pid) when
// SIGCHLD comes, and a blanket waitpid(-1) here would take their statuses
// (libuv would then never report their exit). So exited children are peeked
// at (waitid with WNOWAIT) and only those without a uv_process_t are reaped.
#pragma once

#include <uv.h>

#include "core/handle.hpp"

namespace corral::cli {

class orphan_reaper {
 public:
  /// Makes this process a child subreaper and reaps, on `loop`, every exited
  /// child that no uv_process_t of `loop` owns. The handles never keep the
  /// loop alive; destroying the reaper closes them.
  explicit orphan_reaper(uv_loop_t* loop);
  orphan_reaper(const orphan_reaper&) = delete;
  orphan_reaper& operator=(const orphan_reaper&) = delete;

  /// What SIGCHLD triggers, at once: a test makes libuv's child a zombie
  /// that libuv has not reaped yet, the case the loop's order makes rare.
  void reap_for_test() { reap(); }

 private:
  void reap();
  bool spawned_by_libuv(pid_t pid) const;

  uv_loop_t* loop_;
  detail::uv_handle_ptr<uv_signal_t> sigchld_;
  /// Armed by SIGCHLD: reaping waits until the loop has dispatched every
  /// signal it read, libuv's own SIGCHLD included.
  detail::uv_handle_ptr<uv_check_t> after_signals_;
};

}  // namespace corral::cli
