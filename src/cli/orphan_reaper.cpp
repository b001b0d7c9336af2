#include "orphan_reaper.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace corral::cli {

orphan_reaper::orphan_reaper(uv_loop_t* loop) : loop_(loop) {
  // PID 1 adopts orphans anyway; anywhere else this makes us their parent.
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
    std::fprintf(stderr, "corral run: cannot become a child subreaper: %s\n", std::strerror(errno));
  after_signals_ = detail::uv_handle_ptr<uv_check_t>::make();
  uv_check_init(loop_, after_signals_.get());
  after_signals_->data = this;
  uv_unref(after_signals_.handle());
  sigchld_ = detail::uv_handle_ptr<uv_signal_t>::make();
  uv_signal_init(loop_, sigchld_.get());
  sigchld_->data = this;
  uv_unref(sigchld_.handle());
  uv_signal_start(sigchld_.get(), [](uv_signal_t* s, int) {
    auto* self = static_cast<orphan_reaper*>(s->data);
    if (!self) return;
    uv_check_start(self->after_signals_.get(), [](uv_check_t* c) {
      if (auto* me = static_cast<orphan_reaper*>(c->data)) me->reap();
    });
  }, SIGCHLD);
}

void orphan_reaper::reap() {
  for (;;) {
    siginfo_t info;
    std::memset(&info, 0, sizeof info);  // WNOHANG with nothing exited leaves si_pid as it was
    if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0) break;
    // An instance that exited after libuv reaped in this turn of the loop:
    // its SIGCHLD is on the way. waitid shows one child at a time, so look
    // again after each turn until libuv has taken it.
    if (spawned_by_libuv(info.si_pid)) return;
    int status = 0;
    ::waitpid(info.si_pid, &status, WNOHANG);
  }
  uv_check_stop(after_signals_.get());
}

bool orphan_reaper::spawned_by_libuv(pid_t pid) const {
  struct query {
    pid_t pid;
    bool found;
  } q{pid, false};
  uv_walk(loop_, [](uv_handle_t* h, void* arg) {
    auto* q = static_cast<query*>(arg);
    if (h->type == UV_PROCESS && uv_process_get_pid(reinterpret_cast<uv_process_t*>(h)) == q->pid) q->found = true;
  }, &q);
  return q.found;
}

}  // namespace corral::cli
