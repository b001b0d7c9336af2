#include "daemon/daemon.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/handle.hpp"
#include "corral/fd.hpp"
#include "corral/loop.hpp"
#include "daemon/control_server.hpp"
#include "daemon/launch.hpp"
#include "daemon/monit_stream.hpp"
#include "daemon/paths.hpp"
#include "daemon/protocol.hpp"
#include "daemon/sd_notify.hpp"
#include "daemon/state_file.hpp"
#include "daemon/supervisor.hpp"

namespace corral::daemon {

namespace {

struct daemon_state {
  uv_loop_t* loop;
  home_paths home;
  std::unique_ptr<supervisor> sup;
  std::unique_ptr<control_server> server;
  std::unique_ptr<monit_streams> monit;
  detail::uv_handle_ptr<uv_signal_t> sigterm, sigint, sighup;
  bool exiting = false;
  int exit_code = 0;
  bool embedded = false;  // `corral run`: the apps do not outlive this run
  bool stopping = false;  // a stop signal came: a second one changes nothing

  void exit_now() {
    if (exiting) return;
    exiting = true;
    // We may be deep inside an instance's transition: only stop the loop
    // here; run_daemon() destroys everything once uv_run has returned.
    server->shutdown([this] { uv_stop(loop); });
  }

  void on_signal(int sig) {
    if (exiting) return;
    if (sig == SIGHUP) {
      // As `corral reload all`; closing a terminal must not kill a foreground daemon.
      sup->reload_all_from_signal();
      return;
    }
    if (stopping) return;  // already stopping them gracefully (kill_timeout bounds it)
    stopping = true;
    std::fprintf(stderr, "corral daemon: %s: stopping the apps%s\n", strsignal(sig),
                 embedded ? "" : " (they come back with the next daemon)");
    notify_service_manager("STOPPING=1");
    // The desired state stays "running": a daemon stopped by the system
    // brings the same apps back when it is next started.
    sup->stop_everything([this] { exit_now(); });
  }

  void on_request(uint64_t conn, json&& msg) {
    auto req = decode_request(msg);
    if (!req) {
      uint64_t id = msg.is_object() && msg.contains("id") && msg["id"].is_number_unsigned() ? msg["id"].get<uint64_t>() : 0;
      server->send(conn, encode(response{id, false, json(), req.err().message()}));
      return;
    }
    if (req->cmd == "monit") return monit->subscribe(conn, *req);
    if (req->cmd == "update" && embedded)
      return (void)server->send(conn, encode(response{req->id, false, json(),
                                                      "update: corral run's daemon is not replaced; restart the container "
                                                      "with the new binary"}));
    sup->handle(*req, [this, conn](response&& r) {
      if (server) server->send(conn, encode(r));
    });
  }
};

detail::uv_handle_ptr<uv_signal_t> watch(uv_loop_t* loop, int sig, daemon_state* d) {
  auto h = detail::uv_handle_ptr<uv_signal_t>::make();
  uv_signal_init(loop, h.get());
  h->data = d;
  uv_signal_start(h.get(), [](uv_signal_t* s, int signum) {
    if (auto* self = static_cast<daemon_state*>(s->data)) self->on_signal(signum);
  }, sig);
  return h;
}

// `corral update`: the state is on disk, the apps the new daemon cannot take
// over are stopped, our socket and pid file are gone. The new daemon holds
// our lock through the descriptor we pass (or waits for our exit to
// release it). Under systemd it becomes the
// service's main process before we exit, so that the service, and the
// apps in its cgroup, live on.
void start_replacement(const home_paths& home, const std::string& exe, int lock, const std::vector<unique_fd>& pass) {
  // Our lock's open file description too (`lock` >= 0: the new binary takes
  // it): the new daemon holds the lock from its start, and a daemon a CLI
  // starts meanwhile (our socket is gone) cannot take it in the gap between
  // our exit and its restore. A binary older than that would keep it open
  // and wait for the lock it holds: it gets none, and waits for our exit.
  std::vector<int> fds;
  if (lock >= 0) fds.push_back(lock);
  for (auto& fd : pass) fds.push_back(fd.get());
  auto pid = launch_daemon(home, exe,
                           {std::string(replaces_env) + "=" + std::to_string(::getpid()),
                            std::string(passed_fds_env) + "=" + std::to_string(fds.size())},
                           fds);
  if (!pid) {
    std::fprintf(stderr, "corral daemon: cannot start the new daemon %s: %s; the next corral command starts one, "
                         "which restores the apps\n", exe.c_str(), pid.err().message().c_str());
    return;
  }
  std::fprintf(stderr, "corral daemon: replaced by %s (pid %d)\n", exe.c_str(), static_cast<int>(*pid));
  if (notify_service_manager("MAINPID=" + std::to_string(*pid)) && !notify_barrier())
    std::fprintf(stderr, "corral daemon: the service manager did not confirm the new main pid within 5 s\n");
}

}  // namespace

int run_daemon(const home_paths& home, const daemon_hooks& hooks) {
  if (auto s = ensure_home(home); !s) {
    std::fprintf(stderr, "corral daemon: %s\n", s.err().message().c_str());
    return 1;
  }
  // The lock decides who is the daemon: it dies with the process (even on
  // SIGKILL), so a new daemon never waits for a stale pid file.
  unique_fd lock(::open(home.lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  // Started by the daemon it replaces (`corral update`), which exits once
  // it has started us: its lock is ours when it is gone.
  int wait_ms = 0;
  std::vector<unique_fd> inherited;  // (at 3.. since exec: nothing of ours is open yet)
  if (std::getenv(replaces_env)) {
    wait_ms = 30'000;
    int n = std::atoi(std::getenv(passed_fds_env) ? std::getenv(passed_fds_env) : "0");
    for (int fd = 3; fd < 3 + n && fd < 3 + static_cast<int>(max_passed_fds); ++fd)
      if (::fcntl(fd, F_SETFD, FD_CLOEXEC) == 0) inherited.emplace_back(fd);
    // The old daemon's lock (the same open file description, so the lock is
    // ours already): taken out of what restore() looks at.
    struct stat want {};
    if (lock && ::fstat(lock.get(), &want) == 0)
      for (auto& fd : inherited)
        if (struct stat st {}; fd && ::fstat(fd.get(), &st) == 0 && same_file(st, want)) {
          lock = std::move(fd);
          break;
        }
    std::erase_if(inherited, [](const unique_fd& fd) { return !fd; });
  }
  ::unsetenv(replaces_env);  // (not the apps')
  ::unsetenv(passed_fds_env);
  auto locked = [&] { return lock && ::flock(lock.get(), LOCK_EX | LOCK_NB) == 0; };
  for (int waited = 0; !locked() && lock && waited < wait_ms; waited += 5) ::usleep(5000);
  if (!locked()) {
    std::fprintf(stderr, "corral daemon: another daemon owns %s\n", home.dir.c_str());
    return exit_already_running;
  }
  ::signal(SIGPIPE, SIG_IGN);
  (void)write_file_atomic(home.pid, std::to_string(::getpid()) + "\n");

  daemon_state d;
  d.loop = default_loop();
  d.home = home;
  d.embedded = static_cast<bool>(hooks.on_started);
  d.sup = std::make_unique<supervisor>(d.loop, home);
  const size_t passed = inherited.size();
  int restored = d.sup->restore(std::move(inherited));
  if (passed > 0)
    std::fprintf(stderr, "corral daemon: took over %d of the %zu socket(s) passed by the daemon it replaces\n",
                 d.sup->inherited_used(), passed);
  if (restored > 0)
    std::fprintf(stderr,
                 "corral daemon: restored %d app(s) from %s (killed %d leftover process group(s); took over the "
                 "sockets of %d and stopped them gracefully)\n",
                 restored, home.state.c_str(), d.sup->killed_orphans(), d.sup->handed_over());
  if (!d.sup->takeover_error().empty())
    std::fprintf(stderr, "corral daemon: could not take over the listening sockets of the old instances (%s); "
                         "they were killed and the sockets bound anew\n", d.sup->takeover_error().c_str());
  auto srv = control_server::listen(d.loop, home.socket, [&d](uint64_t conn, json&& msg) {
    d.on_request(conn, std::move(msg));
  });
  if (!srv) {
    std::fprintf(stderr, "corral daemon: %s\n", srv.err().message().c_str());
    return 1;
  }
  d.server = std::move(srv.value());
  d.monit = std::make_unique<monit_streams>(
      d.loop, [&d](uint64_t conn, const json& doc) { return d.server && d.server->send(conn, doc); },
      [&d](uint64_t conn) { if (d.server) d.server->drop(conn); },
      [&d](const std::string& target, std::function<void(response&&)> reply) {
        d.sup->handle(request{0, "list", {{"target", target}}}, [reply = std::move(reply)](response&& r) { reply(std::move(r)); });
      });
  d.server->on_disconnect([&d](uint64_t conn) { if (d.monit) d.monit->on_disconnect(conn); });
  d.sup->on_exit_requested([&d] { d.exit_now(); });
  d.sigterm = watch(d.loop, SIGTERM, &d);
  d.sigint = watch(d.loop, SIGINT, &d);
  d.sighup = watch(d.loop, SIGHUP, &d);
  if (hooks.on_started)
    hooks.on_started(d.loop, *d.sup, [&d](int code) {
      if (d.exiting) return;
      d.exit_code = code;
      d.sup->stop_everything([&d] { d.exit_now(); });
    });

  // The socket answers: a Type=notify unit (corral startup) is started.
  notify_service_manager("READY=1");
  uv_run(d.loop, UV_RUN_DEFAULT);
  // (A stop signal during the update wins: the system is stopping us.)
  const std::string replacement = d.stopping ? std::string() : d.sup->replacement_exe();
  const bool takes_lock = d.sup->replacement_takes_lock();
  std::vector<unique_fd> pass;  // (what the next daemon takes over)
  if (!replacement.empty()) pass = d.sup->leave_running_for_update();
  if (hooks.on_stopped) hooks.on_stopped();
  d.monit.reset();  // its timers call into the supervisor and the server
  d.sigterm.reset();
  d.sigint.reset();
  d.sighup.reset();
  d.server.reset();
  d.sup.reset();  // closes every instance's handles and log files
  uv_run(d.loop, UV_RUN_DEFAULT);  // let the closes (and last log writes) finish
  ::unlink(home.pid.c_str());
  if (!replacement.empty())
    start_replacement(home, replacement, takes_lock ? lock.get() : -1, pass);
  return d.exit_code;
}

}  // namespace corral::daemon
