// The control protocol's commands, applied to the supervisor's model
// (docs/manager-protocol.md). Each replies exactly once, when its effect is
// visible.
#include <signal.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "daemon/launch.hpp"
#include "daemon/paths.hpp"
#include "daemon/proc_stats.hpp"
#include "daemon/supervisor.hpp"
#include "daemon/supervisor_util.hpp"

namespace corral::daemon {

using namespace util;

// ---- commands ---------------------------------------------------------------

void supervisor::handle(const request& req, reply_fn reply) {
  const std::string& c = req.cmd;
  if (c == "ping") {
    reply(ok(req.id, {{"pid", ::getpid()},
                      {"version", protocol_version},
                      {"restored", restored_apps_},
                      {"killed_orphans", killed_orphans_},
                      {"handed_over", handed_over()},
                      {"takeover_error", takeover_error_},
                      {"state_error", state_error_},
                      {"state_moved_to", state_moved_to_},
                      // Whether state.json holds the daemon's current state,
                      // and if a write failed, why (retried until it works).
                      {"state_saved", persist_idle() && persist_error_.empty()},
                      {"state_save_error", persist_error_},
                      {"home", home_.dir},
                      {"started", started_unix_ms_}}));
    return;
  }
  if (!update_exe_.empty() && c != "list" && c != "describe" && c != "logs_info" && c != "env" && c != "reload_logs")
    return reply(fail(req.id, "the daemon is being replaced (corral update): '" + c + "' waits for the new one; " +
                                  "try again in a moment"));
  if (c == "update") return cmd_update(req, std::move(reply));
  if (c == "start") return cmd_start(req, std::move(reply));
  if (c == "stop") return cmd_stop(req, std::move(reply));
  if (c == "restart" || c == "reload")
    if (auto why = update_env(req); !why.empty()) return reply(fail(req.id, why));
  if (c == "restart") return cmd_restart(req, std::move(reply));
  if (c == "delete") return cmd_delete(req, std::move(reply));
  if (c == "list") return cmd_list(req, std::move(reply));
  if (c == "describe") return cmd_describe(req, std::move(reply));
  if (c == "flush") return cmd_flush(req, std::move(reply));
  if (c == "reload_logs") return cmd_reload_logs(req, std::move(reply));
  if (c == "save" || c == "clear_dump") return cmd_save(req, std::move(reply));
  if (c == "resurrect") return cmd_resurrect(req, std::move(reply));
  if (c == "kill") return cmd_kill(req, std::move(reply));
  if (c == "logs_info") return cmd_logs_info(req, std::move(reply));
  if (c == "reload") return cmd_reload(req, std::move(reply));
  if (c == "scale") return cmd_scale(req, std::move(reply));
  if (c == "reset") return cmd_reset(req, std::move(reply));
  if (c == "signal") return cmd_signal(req, std::move(reply));
  if (c == "env") return cmd_env(req, std::move(reply));
  reply(fail(req.id, "unknown command '" + c + "'"));
}

void supervisor::cmd_start(const request& req, reply_fn reply) {
  std::string target = req.args.value("target", std::string());
  std::vector<instance*> insts;
  if (!req.args.contains("app")) {
    std::string err;
    insts = select(target, err);
    if (!err.empty()) {
      std::string why = req.args.value("resolve_error", std::string());
      return reply(fail(req.id, why.empty() ? err : why));
    }
  } else {
    auto spec = app_spec_from_json(req.args["app"]);
    if (!spec) return reply(fail(req.id, spec.err().message()));
    if (app* known = app_named(spec->name)) {
      for (auto& i : known->instances) insts.push_back(i.get());  // PM2: starting a known name starts it again
    } else {
      const bool autostart = spec->running;  // PM2's autostart: false adds it stopped
      auto a = add_app(std::move(spec.value()));
      if (!a) return reply(fail(req.id, a.err().message()));
      if (!autostart) {
        persist_soon();
        json rows = json::array();
        for (auto& i : (*a)->instances) rows.push_back(describe_instance(**a, *i, false));
        return reply(ok(req.id, rows));
      }
      for (auto& i : (*a)->instances) insts.push_back(i.get());
    }
  }
  for (auto* i : insts) {
    if (app* a = app_of(i->id())) {
      a->spec.running = true;
      arm_watch(*a);
    }
    if (i->fsm().current() == state::stopping) i->fsm().handle(event::start);
    else if (i->fsm().current() != state::online && i->fsm().current() != state::launching) i->fsm().handle(event::start);
  }
  persist_soon();
  std::vector<int> ids;
  for (auto* i : insts) ids.push_back(i->id());
  wait_then(
      [this, ids] {
        return std::all_of(ids.begin(), ids.end(), [this](int id) {
          instance* i = find_instance(id);
          return !i || settled_running(i->fsm().current());
        });
      },
      [this, ids, id = req.id, reply] {
        json rows = json::array();
        std::string first_error;
        for (int k : ids)
          if (instance* i = find_instance(k)) {
            rows.push_back(describe_instance(*app_of(k), *i, false));
            if (i->fsm().current() == state::errored && first_error.empty() && !i->spawn_error_text().empty())
              first_error = i->spawn_error_text();
          }
        if (!first_error.empty()) return reply(fail(id, first_error));
        reply(ok(id, rows));
      });
}

// restart and reload with `env` (PM2's --update-env): the app's environment
// becomes `env` before its new processes start. One app, by name; the spec
// it makes is checked as a start's (increment_var must still be a number).
std::string supervisor::update_env(const request& req) {
  auto it = req.args.find("env");
  if (it == req.args.end()) return {};
  std::string target = req.args.value("target", std::string());
  app* a = app_named(target);
  if (!a) {
    std::string unknown;  // (as any command's: no such app at all)
    select(target, unknown);
    return unknown.empty() ? "env: name one app ('" + target + "' is not an app's name)" : unknown;
  }
  json j = to_json(a->spec);
  j["env"] = *it;
  auto updated = app_spec_from_json(j);
  if (!updated) return updated.err().message();
  a->spec.env = std::move(updated->env);
  persist_soon();
  return {};
}

// stop and restart: mark the apps' desired state, send every selected
// instance the event, persist, and answer once each has settled.
void supervisor::drive_targets(const request& req, reply_fn reply, bool running, event e, const char* verb,
                               std::function<bool(state)> settled) {
  std::string err;
  auto insts = select(req.args.value("target", std::string()), err);
  if (!err.empty()) return reply(fail(req.id, err));
  std::vector<int> ids;
  std::vector<app*> apps;
  for (auto* i : insts) {
    if (app* a = app_of(i->id())) {
      a->spec.running = running;
      if (std::find(apps.begin(), apps.end(), a) == apps.end()) {
        apps.push_back(a);
        running ? arm_watch(*a) : disarm_watch(*a);
      }
    }
    i->fsm().handle(e);
    ids.push_back(i->id());
  }
  // A stop reaches the app's other instances too: a reload's replacement
  // still launching would otherwise serve on until the reload noticed (up
  // to its listen_timeout), after `stop` had said the app was stopped.
  if (!running)
    for (auto* a : apps)
      for (auto& o : a->others) {
        o->fsm().handle(e);
        ids.push_back(o->id());
      }
  persist_soon();
  wait_then(
      [this, ids, settled] {
        return std::all_of(ids.begin(), ids.end(), [this, &settled](int id) {
          instance* i = find_instance(id);
          return !i || settled(i->fsm().current());
        });
      },
      [reply, id = req.id, n = ids.size(), verb] { reply(ok(id, {{verb, n}})); });
}

void supervisor::cmd_stop(const request& req, reply_fn reply) {
  drive_targets(req, std::move(reply), false, event::stop, "stopped", [](state s) { return settled_stopped(s); });
}

void supervisor::cmd_restart(const request& req, reply_fn reply) {
  drive_targets(req, std::move(reply), true, event::restart, "restarted",
                [](state s) { return s != state::stopping && settled_running(s); });
}

void supervisor::cmd_delete(const request& req, reply_fn reply) {
  std::string err;
  auto insts = select(req.args.value("target", std::string()), err);
  if (!err.empty()) return reply(fail(req.id, err));
  // Deleting an id deletes its whole app: an app's instances share one spec.
  std::vector<app*> doomed;
  for (auto* i : insts)
    if (app* a = app_of(i->id()); a && std::find(doomed.begin(), doomed.end(), a) == doomed.end()) doomed.push_back(a);
  std::vector<std::string> names;
  for (auto* a : doomed) {
    a->deleting = true;
    disarm_watch(*a);
    names.push_back(a->spec.name);
    for (auto* v : {&a->instances, &a->others})
      for (auto& i : *v) i->fsm().handle(event::stop);
  }
  persist_soon();
  wait_then(
      [this, names] {
        return std::none_of(apps_.begin(), apps_.end(), [&](auto& a) {
          return a->deleting && std::find(names.begin(), names.end(), a->spec.name) != names.end() &&
                 !(std::all_of(a->instances.begin(), a->instances.end(),
                               [](auto& i) { return settled_stopped(i->fsm().current()); }) &&
                   std::all_of(a->others.begin(), a->others.end(),
                               [](auto& i) { return settled_stopped(i->fsm().current()); }));
        });
      },
      [this, reply, id = req.id, names] {
        persist_soon();
        reply(ok(id, {{"deleted", names}}));
      });
}

json supervisor::describe_instance(const app& a, const instance& i, bool full) const {
  const auto& f = i.fsm();
  json row{{"id", i.id()},
           {"name", a.spec.name},
           {"instance", i.index()},
           {"mode", a.sockets.empty() ? "fork" : "cluster"},
           {"lb", a.spec.lb},
           {"listen", a.spec.listen},
           {"pid", i.pid()},
           {"status", std::string(to_string(f.current()))},
           {"restarts", f.restarts()},
           {"uptime_ms", i.pid() > 0 ? unix_ms_now() - i.started_unix_ms() : 0},
           {"cpu", 0.0},
           {"memory", 0}};
  if (i.pid() > 0) {
    // The instance's whole process group (a shell wrapper's children too);
    // before any window was measured (a start's reply), the leader's memory.
    group_usage u = usage_.of(i.pid());
    if (u.processes > 0) {
      row["cpu"] = u.cpu;
      row["memory"] = u.rss;
    } else if (auto s = sample_process(i.pid())) {
      row["memory"] = s->rss_bytes;
    }
  }
  if (f.current() == state::errored || f.last_exit().code != 0 || f.last_exit().signal != 0) {
    row["exit_code"] = f.last_exit().code;
    row["exit_signal"] = f.last_exit().signal;
  }
  if (!i.spawn_error_text().empty()) row["error"] = i.spawn_error_text();
  row["namespace"] = a.spec.namespace_name;
  if (full) {
    row["app"] = to_json(a.spec);
    if (!a.spec.watch.empty()) row["watched_dirs"] = a.files ? a.files->watched_dirs() : 0;
    row["out_log"] = a.logs->path(i.index(), app_logs::out);
    row["err_log"] = a.logs->path(i.index(), app_logs::err);
    if (!a.spec.pid_file.empty()) row["pid_file"] = pid_file_path(a.spec, i.index());
    row["dropped_lines"] = a.logs->dropped(i.index());
    if (auto failing = a.logs->failing(i.index()); !failing.empty()) row["log_errors"] = failing;
  }
  return row;
}

// list and describe answer once the CPU figures cover a recent window (at
// most usage_sampler::baseline_window later).
void supervisor::cmd_list(const request& req, reply_fn reply) {
  std::string target = req.args.value("target", std::string("all"));
  std::string err;
  (void)select(target, err);
  if (!err.empty()) return reply(fail(req.id, err));
  usage_.with_fresh([this, target, full = req.args.value("full", false), id = req.id, reply] {
    std::string err;
    auto insts = select(target, err);
    json rows = json::array();
    for (auto* i : insts) rows.push_back(describe_instance(*app_of(i->id()), *i, full));
    reply(ok(id, rows));
  });
}

void supervisor::cmd_describe(const request& req, reply_fn reply) {
  std::string err;
  (void)select(req.args.value("target", std::string()), err);
  if (!err.empty()) return reply(fail(req.id, err));
  usage_.with_fresh([this, target = req.args.value("target", std::string()), id = req.id, reply] {
    std::string err;
    json rows = json::array();
    for (auto* i : select(target, err)) rows.push_back(describe_instance(*app_of(i->id()), *i, true));
    if (!err.empty()) return reply(fail(id, err));  // deleted during the window
    reply(ok(id, rows));
  });
}

// reset: PM2's `reset`: the selected instances' restart counts (and crash
// histories) back to 0. Nothing else changes: an errored app stays errored
// until it is started or restarted.
void supervisor::cmd_reset(const request& req, reply_fn reply) {
  std::string err;
  auto insts = select(req.args.value("target", std::string()), err);
  if (!err.empty()) return reply(fail(req.id, err));
  for (auto* i : insts) i->fsm().reset_counters();
  reply(ok(req.id, {{"reset", insts.size()}}));
}

// signal: PM2's `sendSignal`: the signal to each selected instance's own
// process (not its group: a libcorral primary or a shell decides what its
// children get). Fails when no selected instance is running.
void supervisor::cmd_signal(const request& req, reply_fn reply) {
  int sig = req.args.value("signal", 0);  // (an integer: check_args)
  if (sig < 1 || sig > limits::max_signal)
    return reply(fail(req.id, "args.signal must be a signal number 1.." + std::to_string(limits::max_signal)));
  std::string target = req.args.value("target", std::string());
  std::string err;
  auto insts = select(target, err);
  if (!err.empty()) return reply(fail(req.id, err));
  json sent = json::array();
  for (auto* i : insts)
    if (i->pid() > 0 && ::kill(i->pid(), sig) == 0) sent.push_back(i->pid());
  if (sent.empty()) return reply(fail(req.id, "signal: no instance of '" + target + "' is running"));
  reply(ok(req.id, {{"signalled", sent}}));
}

// env: PM2's `env <id>`: the environment each selected instance was last
// started with (its spec's env over the daemon's, and what the daemon adds).
void supervisor::cmd_env(const request& req, reply_fn reply) {
  std::string err;
  auto insts = select(req.args.value("target", std::string()), err);
  if (!err.empty()) return reply(fail(req.id, err));
  json rows = json::array();
  for (auto* i : insts) {
    app* a = app_of(i->id());
    rows.push_back({{"id", i->id()}, {"name", a ? a->spec.name : std::string()}, {"env", i->spawn_env()}});
  }
  reply(ok(req.id, rows));
}

void supervisor::cmd_flush(const request& req, reply_fn reply) { on_logs(req, std::move(reply), &app_logs::flush); }

void supervisor::cmd_reload_logs(const request& req, reply_fn reply) {
  reopen_daemon_log();  // (first: the reply may go at once)
  on_logs(req, [this, reply, id = req.id](response&& r) {
    std::string failed;  // (a path that cannot be opened: its directory removed, say)
    for (auto& a : apps_)
      for (auto& e : a->logs->reopen_errors()) failed += (failed.empty() ? "" : "; ") + e;
    if (r.ok && !failed.empty()) return reply(fail(id, "cannot reopen " + failed));
    reply(std::move(r));
  }, &app_logs::reopen);
}

void supervisor::reopen_daemon_log() {
  struct stat err {}, log {};
  if (!stderr_is_daemon_log_ || ::fstat(2, &err) != 0) return;
  if (::stat(home_.daemon_log.c_str(), &log) == 0 && same_file(err, log)) return;
  unique_fd fd(::open(home_.daemon_log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!fd) return (void)std::fprintf(stderr, "corral daemon: cannot reopen %s: %s\n", home_.daemon_log.c_str(), std::strerror(errno));
  std::fflush(stdout);
  if (::fstat(1, &log) == 0 && same_file(log, err)) ::dup2(fd.get(), 1);  // (stdout too, as launched)
  ::dup2(fd.get(), 2);
  std::fprintf(stderr, "corral daemon: reloadLogs: %s had been moved or removed; it is written afresh\n",
               home_.daemon_log.c_str());
}

void supervisor::on_logs(const request& req, reply_fn reply, void (app_logs::*op)(std::function<void()>)) {
  std::string target = req.args.value("target", std::string("all"));
  std::string err;
  auto insts = select(target, err);
  if (!err.empty()) return reply(fail(req.id, err));
  std::vector<app*> targets;
  for (auto& a : apps_)
    if (target == "all" || std::any_of(insts.begin(), insts.end(), [&](instance* i) { return app_of(i->id()) == a.get(); }))
      targets.push_back(a.get());
  // The reply waits for the files to be done with (flush: empty, so the
  // next `logs` shows none of what was flushed; reopen: logrotate's
  // postrotate may compress the moved file once we answer).
  auto left = std::make_shared<size_t>(targets.size() + 1);
  auto one_done = [left, reply, id = req.id] {
    if (--*left == 0) reply(ok(id));
  };
  for (app* a : targets) ((*a->logs).*op)(one_done);
  one_done();
}

void supervisor::cmd_logs_info(const request& req, reply_fn reply) {
  std::string target = req.args.value("target", std::string("all"));
  std::string err;
  auto insts = select(target, err);
  if (!err.empty()) return reply(fail(req.id, err));
  json out = json::array();
  for (auto& a : apps_)
    if (target == "all" || std::any_of(insts.begin(), insts.end(), [&](instance* i) { return app_of(i->id()) == a.get(); }))
      for (auto& s : a->logs->sources(a->spec.name, a->spec.instances)) out.push_back(s);
  reply(ok(req.id, out));
}

void supervisor::cmd_save(const request& req, reply_fn reply) {
  persisted_state st;
  st.daemon_pid = ::getpid();
  if (req.cmd == "save")  // (clear_dump: `corral cleardump`, none)
    for (auto& a : apps_)
      if (!a->deleting) st.apps.push_back({a->spec, {}});
  if (auto s = write_file_atomic(home_.dump, to_json(st).dump(2) + "\n"); !s) return reply(fail(req.id, s.err().message()));
  reply(ok(req.id, {{"path", home_.dump}, {"apps", st.apps.size()}}));
}

void supervisor::cmd_resurrect(const request& req, reply_fn reply) {
  auto st = load_state_file(home_.dump);
  if (!st && st.err().code() == std::errc::no_such_file_or_directory)
    return reply(fail(req.id, "nothing saved: " + st.err().message() + " (run corral save first)"));
  if (!st) return reply(fail(req.id, st.err().message()));
  json started = json::array();
  std::string skipped;  // apps of the file that cannot be read: the others start
  for (auto& u : st->unreadable) skipped += (skipped.empty() ? "" : "; ") + home_.dump + ": " + u.error;
  for (auto& pa : st->apps) {
    if (app_named(pa.spec.name)) continue;  // already here: no duplicate
    auto a = add_app(std::move(pa.spec), {}, {}, /*restoring=*/true);
    if (!a) return reply(fail(req.id, a.err().message()));
    started.push_back((*a)->spec.name);
    if ((*a)->spec.running)
      for (auto& i : (*a)->instances) i->fsm().handle(event::start);
  }
  persist_soon();
  if (!skipped.empty())
    return reply(fail(req.id, skipped + " (" + std::to_string(started.size()) + " other app(s) started)"));
  reply(ok(req.id, {{"started", started}}));
}

void supervisor::stop_everything(std::function<void()> done, std::vector<int> keep) {
  // No change may restart what is being stopped; a restore watches again.
  for (auto& a : apps_) disarm_watch(*a);
  auto kept = [keep](const instance& i) { return std::find(keep.begin(), keep.end(), i.id()) != keep.end(); };
  for (auto& a : apps_)
    for (auto* v : {&a->instances, &a->others})
      for (auto& i : *v)
        if (!kept(*i)) i->fsm().handle(event::stop);
  wait_then(
      [this, kept] {
        auto stopped = [&](auto& i) { return kept(*i) || settled_stopped(i->fsm().current()); };
        return std::all_of(apps_.begin(), apps_.end(), [&](auto& a) {
          return std::all_of(a->instances.begin(), a->instances.end(), stopped) &&
                 std::all_of(a->others.begin(), a->others.end(), stopped);
        });
      },
      std::move(done));
}

bool supervisor::survives_update(const app& a, const instance& i) {
  return !a.spec.listen.empty() && a.spec.lb != "round_robin" && i.pid() > 0;
}

void supervisor::cmd_update(const request& req, reply_fn reply) {
  std::string exe = req.args.value("exe", std::string());
  if (exe.empty() || exe[0] != '/') return reply(fail(req.id, "update: the new binary must be an absolute path, not '" + exe + "'"));
  struct stat st {};
  if (::stat(exe.c_str(), &st) != 0)
    return reply(fail(req.id, "update: " + exe + ": " + std::strerror(errno)));
  if (!S_ISREG(st.st_mode) || ::access(exe.c_str(), X_OK) != 0)
    return reply(fail(req.id, "update: " + exe + " is not an executable file"));
  if (exit_requested_) return reply(fail(req.id, "update: the daemon is exiting (corral kill)"));
  if (!persist_error_.empty())
    return reply(fail(req.id, "update: the daemon cannot save its state (" + persist_error_ +
                                  "), which the next daemon starts from; free the space (or descriptors) and try again"));
  for (auto& a : apps_)
    if (a->reloading > 0)
      return reply(fail(req.id, "update: app '" + a->spec.name + "' is being reloaded; update once the reload is done"));
  update_exe_ = exe;
  update_takes_lock_ = req.args.value("take_lock", false);
  // What the next daemon cannot take over is stopped gracefully now (kill_
  // signal, kill_timeout), as `pm2 update` stops everything: the next daemon
  // starts it again. The desired state stays "running".
  std::vector<int> kept;  // (by id: one that crashes meanwhile is restarted, and kept)
  int stopped = 0;
  for (auto& a : apps_)
    for (auto* v : {&a->instances, &a->others})
      for (auto& i : *v)
        if (v == &a->instances && survives_update(*a, *i)) kept.push_back(i->id());
        else if (i->pid() > 0) ++stopped;
  const int n_kept = static_cast<int>(kept.size());
  stop_everything(
      [this, reply, id = req.id, kept = n_kept, stopped] {
        exit_requested_ = true;
        reply(ok(id, {{"kept", kept}, {"stopped", stopped}, {"exe", update_exe_}}));
        persist_soon();  // persist_now() then tells the daemon to exit
      },
      std::move(kept));
}

std::vector<unique_fd> supervisor::leave_running_for_update() {
  leaving_running_ = true;
  // What the kept instances need first (their outputs, their apps'
  // sockets), then every other app's sockets, also of one whose instances
  // were stopped (round-robin: the daemon is their primary): the port never
  // closes, and what connects meanwhile waits in the backlog for the new
  // daemon's instances. Past max_passed_fds (one is the lock's), the new
  // daemon binds the rest anew.
  std::vector<unique_fd> pass, others;
  auto dup_sockets = [](const app& a, std::vector<unique_fd>& into) {
    for (auto& s : a.sockets)
      if (unique_fd d(::fcntl(s.get(), F_DUPFD_CLOEXEC, 3)); d) into.push_back(std::move(d));
  };
  for (auto& a : apps_) {
    bool kept = false;
    for (auto& i : a->instances)
      if (survives_update(*a, *i)) {
        kept = true;
        for (auto& fd : i->leave_running()) pass.push_back(std::move(fd));
      }
    dup_sockets(*a, kept ? pass : others);
  }
  for (auto& fd : others) pass.push_back(std::move(fd));
  if (pass.size() > max_passed_fds - 1) {
    std::fprintf(stderr, "corral daemon: %zu descriptors for the next daemon, over %zu: it binds the last %zu "
                         "sockets anew\n", pass.size(), max_passed_fds - 1, pass.size() - (max_passed_fds - 1));
    pass.resize(max_passed_fds - 1);
  }
  return pass;
}

void supervisor::cmd_kill(const request& req, reply_fn reply) {
  // `kill` forgets the apps (as PM2's): the next daemon starts empty.
  for (auto& a : apps_) a->deleting = true;
  stop_everything([this, reply, id = req.id] {
    exit_requested_ = true;
    reply(ok(id));
    persist_soon();  // persist_now() then tells the daemon to exit
  });
}

}  // namespace corral::daemon
