#include "run.hpp"

#include <stdlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "core/handle.hpp"
#include "daemon/daemon.hpp"
#include "daemon/supervisor.hpp"

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

bool running_or_will_run(const std::string& status) { return status != "stopped" && status != "errored"; }

struct foreground {
  std::vector<daemon::app_spec> apps;
  daemon::supervisor* sup = nullptr;
  std::function<void(int)> stop_and_exit;
  detail::uv_handle_ptr<uv_timer_t> check;
  size_t answered = 0;
  bool leaving = false;

  void started(uv_loop_t* loop, daemon::supervisor& s, std::function<void(int)> exit_fn) {
    sup = &s;
    stop_and_exit = std::move(exit_fn);
    sup->echo_output_to(print_line);
    uint64_t id = 1;
    for (const auto& spec : apps)
      sup->handle(daemon::request{id++, "start", {{"app", daemon::to_json(spec)}}},
                  [this, name = spec.name](daemon::response&& r) {
                    ++answered;
                    if (!r.ok) std::fprintf(stderr, "corral run: %s: %s\n", name.c_str(), r.error.c_str());
                  });
    // Whether anything still runs is polled, not pushed: the supervisor's
    // list is the one place that knows every instance's state.
    check = detail::uv_handle_ptr<uv_timer_t>::make();
    uv_timer_init(loop, check.get());
    check->data = this;
    uv_timer_start(check.get(), [](uv_timer_t* t) { static_cast<foreground*>(t->data)->poll(); }, 200, 200);
  }

  void poll() {
    if (leaving || answered < apps.size()) return;
    sup->handle(daemon::request{0, "list", json::object()}, [this](daemon::response&& r) {
      if (!r.ok || leaving) return;
      for (const auto& row : r.result)
        if (running_or_will_run(row.value("status", ""))) return;
      leaving = true;
      std::fprintf(stderr, "corral run: no app is running any more; exiting 1\n");
      stop_and_exit(1);
    });
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
  hooks.on_stopped = [&fg] { fg.check.reset(); };
  int code = daemon::run_daemon(daemon::home_at(*dir), hooks);
  if (temporary) {
    std::error_code ec;
    std::filesystem::remove_all(*dir, ec);
  }
  return code;
}

}  // namespace corral::cli
