#include "corral/shutdown.hpp"

#include <uv.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "core/closers.hpp"
#include "core/handle.hpp"
#include "corral/cluster.hpp"

namespace corral::shutdown {
namespace {

struct state {
  options opts;
  bool enabled = false;
  bool started = false;
  bool signalled = false;  // a signal came: the next one forces
  std::vector<std::function<void()>> hooks;
  std::vector<detail::uv_handle_ptr<uv_signal_t>> signals;
  detail::uv_handle_ptr<uv_timer_t> deadline;
};

state& st() {
  static auto* s = new state;  // lives for the whole process
  return *s;
}

void say(const char* text) {
  if (text && *text) std::printf("%s\n", text);
}

void run_hooks() {
  auto hooks = std::move(st().hooks);
  st().hooks.clear();
  for (auto it = hooks.rbegin(); it != hooks.rend(); ++it) (*it)();
}

[[noreturn]] void finish(int code) {
  run_hooks();
  std::fflush(nullptr);
  std::exit(code);
}

void force() {
  say(st().opts.forced_message);
  finish(1);
}

void start() {
  auto& s = st();
  s.started = true;
  if (cluster::is_worker() && cluster::worker().is_connected())
    cluster::worker().send({{"corral", "disconnect"}});  // we leave on purpose
  s.deadline = detail::uv_handle_ptr<uv_timer_t>::make();
  uv_timer_init(uv_default_loop(), s.deadline.get());
  uv_timer_start(s.deadline.get(), [](uv_timer_t*) { force(); },
                 static_cast<uint64_t>(s.opts.timeout.count()), 0);
  // The listeners close synchronously inside close_all, so the closing
  // message is printed only once nothing accepts any more: whoever reads it
  // can rely on it. If nothing was in flight, close_all is done at once, and
  // the closed message must still come second.
  static bool closing_said = false, closed_early = false;
  detail::close_all([] {
    if (!closing_said) {
      closed_early = true;
      return;
    }
    say(st().opts.closed_message);
    finish(0);
  });
  say(s.opts.closing_message);
  closing_said = true;
  if (closed_early) {
    say(s.opts.closed_message);
    finish(0);
  }
}

// Only a second signal forces. A Ctrl-C or a group-wide SIGTERM reaches a
// worker twice, by its own signal and by its primary's disconnect, in either
// order: neither message nor begin() counts as a signal, so that is one
// graceful shutdown.
void on_signal() {
  auto& s = st();
  if (s.signalled) force();
  s.signalled = true;
  if (!s.started) start();
}

void on_message() {
  if (!st().started) start();
}

}  // namespace

void on_cleanup(std::function<void()> fn) { st().hooks.push_back(std::move(fn)); }
bool in_progress() noexcept { return st().started; }

void begin() {
  if (!st().started) start();
}

void enable(options opts) {
  auto& s = st();
  if (s.enabled) return;
  s.enabled = true;
  s.opts = std::move(opts);
  for (int sig : s.opts.signals) {
    auto h = detail::uv_handle_ptr<uv_signal_t>::make();
    uv_signal_init(uv_default_loop(), h.get());
    uv_signal_start(h.get(), [](uv_signal_t*, int) { on_signal(); }, sig);
    uv_unref(h.handle());  // watching for a signal must not keep the process alive
    s.signals.push_back(std::move(h));
  }
  if (s.opts.on_shutdown_message && cluster::is_worker()) {
    // The primary's disconnect and a 'shutdown' message both end here, so
    // cleanup hooks run however the worker is asked to leave.
    cluster::worker().on_shutdown_for_internal([] { on_message(); });
  }
}

}  // namespace corral::shutdown
