#include "run.hpp"

#include <signal.h>
#include <stdlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "core/handle.hpp"
#include "daemon/daemon.hpp"
#include "daemon/supervisor.hpp"
#include "orphan_reaper.hpp"

namespace corral::cli {

namespace {

// The apps' lines, as pm2-runtime prints them: "<name> | line", or
// "<name>:<index> | line" for an app with several instances. One write per
// line, so that lines from several apps never interleave within a line.
void print_line(const daemon::app_spec& spec, int index, int stream, std::string_view line) {
  std::string out = spec.name;
  if (spec.instances > 1) out += ":" + std::to_string(index);
  out += " | ";
  out.append(line);
  out += '\n';
  std::FILE* f = stream == 2 ? stderr : stdout;
  std::fwrite(out.data(), 1, out.size(), f);
  std::fflush(f);
}

struct foreground {
  std::vector<daemon::app_spec> apps;
  daemon::supervisor* sup = nullptr;
  std::function<void(int)> stop_and_exit;
  // Whether anything still runs is checked after each transition (only a
  // transition can end the last run), on a zero-delay timer: stopping the
  // daemon must not begin inside the transition that wakes us.
  detail::uv_handle_ptr<uv_timer_t> check;
  // The daemon stops every app on SIGTERM/SIGINT and exits 0: the stopped
  // instances that follow are not "no app is running any more".
  detail::uv_handle_ptr<uv_signal_t> sigterm, sigint;
  std::unique_ptr<orphan_reaper> reaper;
  size_t answered = 0;
  bool leaving = false;

  void started(uv_loop_t* loop, daemon::supervisor& s, std::function<void(int)> exit_fn) {
    sup = &s;
    stop_and_exit = std::move(exit_fn);
    reaper = std::make_unique<orphan_reaper>(loop);  // before any app can leave an orphan
    check = detail::uv_handle_ptr<uv_timer_t>::make();
    uv_timer_init(loop, check.get());
    check->data = this;
    sigterm = watch_stop_signal(loop, SIGTERM);
    sigint = watch_stop_signal(loop, SIGINT);
    sup->echo_output_to(print_line);
    sup->on_transition([this] { check_soon(); });
    uint64_t id = 1;
    for (const auto& spec : apps)
      sup->handle(daemon::request{id++, "start", {{"app", daemon::to_json(spec)}}},
                  [this, name = spec.name](daemon::response&& r) {
                    ++answered;
                    if (!r.ok) std::fprintf(stderr, "corral run: %s: %s\n", name.c_str(), r.error.c_str());
                    check_soon();  // a start that failed before any instance existed makes no transition
                  });
    check_soon();  // no app at all
  }

  detail::uv_handle_ptr<uv_signal_t> watch_stop_signal(uv_loop_t* loop, int sig) {
    auto h = detail::uv_handle_ptr<uv_signal_t>::make();
    uv_signal_init(loop, h.get());
    h->data = this;
    uv_signal_start(h.get(), [](uv_signal_t* w, int) {
      if (auto* self = static_cast<foreground*>(w->data)) self->leaving = true;
    }, sig);
    return h;
  }

  void check_soon() {
    if (check && !leaving) uv_timer_start(check.get(), [](uv_timer_t* t) {
      if (auto* self = static_cast<foreground*>(t->data)) self->check_now();
    }, 0, 0);
  }

  void check_now() {
    // `corral kill` stops every app too, then exits 0.
    if (leaving || answered < apps.size() || sup->exit_requested() || !sup->nothing_runs()) return;
    leaving = true;
    std::fprintf(stderr, "corral run: no app is running any more; exiting 1\n");
    stop_and_exit(1);
  }

  void close() {
    check.reset();
    sigterm.reset();
    sigint.reset();
    reaper.reset();
  }
};

result<std::string> private_home(bool& temporary) {
  temporary = false;
  if (const char* h = std::getenv("CORRAL_HOME"); h && *h) return std::string(h);
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/corral-run-XXXXXX";
  if (!::mkdtemp(templ.data()))
    return error(std::error_code(errno, std::generic_category()), "cannot create " + templ + ": " + std::strerror(errno));
  temporary = true;
  return templ;
}

}  // namespace

int run_foreground(const std::vector<daemon::app_spec>& apps) {
  bool temporary = false;
  auto dir = private_home(temporary);
  if (!dir) {
    std::fprintf(stderr, "corral run: %s\n", dir.err().message().c_str());
    return 1;
  }
  // Other shells reach this daemon with CORRAL_HOME=<dir> corral list.
  std::fprintf(stderr, "corral run: home %s\n", dir->c_str());
  ::setenv("CORRAL_HOME", dir->c_str(), 1);
  foreground fg;
  fg.apps = apps;
  daemon::daemon_hooks hooks;
  hooks.on_started = [&fg](uv_loop_t* loop, daemon::supervisor& s, std::function<void(int)> exit_fn) {
    fg.started(loop, s, std::move(exit_fn));
  };
  // The echo stays: the last lines of the stopping apps still come in
  // while the supervisor closes their pipes.
  hooks.on_stopped = [&fg] { fg.close(); };
  int code = daemon::run_daemon(daemon::home_at(*dir), hooks);
  if (temporary) {
    std::error_code ec;
    std::filesystem::remove_all(*dir, ec);
  }
  return code;
}

}  // namespace corral::cli
