// watch (PM2's restart on file change), the supervisor's side: the app's
// files are watched (daemon/watcher.hpp) while it is meant to run; their
// changes, batched over watch_delay (daemon/watch_rules.hpp), restart it the
// way cron_restart does: reload_app, a restart of every instance in fork
// mode, a rolling reload in cluster mode (docs/manager-protocol.md, watch).
#include <algorithm>
#include <cstdio>

#include "daemon/paths.hpp"
#include "daemon/supervisor.hpp"

namespace corral::daemon {

void supervisor::note_app(app& a, const std::string& line) {
  if (a.spec.merge_logs || a.instances.empty()) {
    a.logs->note(0, line);
  } else {
    for (auto& i : a.instances) a.logs->note(i->index(), line);
  }
  std::fprintf(stderr, "corral daemon: %s: %s\n", a.spec.name.c_str(), line.c_str());
}

void supervisor::arm_watch(app& a) {
  if (a.spec.watch.empty() || a.deleting || !a.spec.running) return disarm_watch(a);
  // Watched already (the watcher lives as long as the app runs, across its
  // restarts; a path deleted or missing is awaited by it): a path that
  // could not be watched (permission, a limit) is tried again.
  if (a.files) return a.files->rewatch_missing_roots();
  if (!a.watch_timer) {
    a.watch_timer = detail::uv_handle_ptr<uv_timer_t>::make();
    uv_timer_init(loop_, a.watch_timer.get());
    uv_unref(a.watch_timer.handle());
    a.watch_timer->data = this;
  }
  // The app owns its watcher, and a watcher calls nothing once destroyed.
  app* self = &a;
  watcher::hooks h;
  h.changed = [this, self](const std::string& path) { on_watch_change(*self, path); };
  h.trouble = [this, self](const std::string& line) { note_app(*self, line); };
  ignore_rules rules(a.spec.ignore_watch, a.spec.cwd);
  // Its own logs (out_file may be in the watched tree): a rotation is no
  // change; nor its pid files, which each start writes (and their temporary).
  rules.also_ignore([self](std::string_view path) {
    return (self->logs && self->logs->writes_to(path)) || is_pid_file(self->spec.pid_file, path);
  });
  auto w = watcher::start(loop_, a.spec.watch, std::move(rules), std::move(h), watch_max_dirs_);
  if (!w) return note_app(a, "[corral] watch: " + w.err().message() + "; the app runs unwatched");
  a.files = std::move(w.value());
}

void supervisor::disarm_watch(app& a) {
  a.files.reset();
  a.changes.clear();  // (a restart in progress is forgotten too: it adds no batch)
  if (a.watch_timer) uv_timer_stop(a.watch_timer.get());
}

void supervisor::on_watch_change(app& a, const std::string& path) {
  if (!a.spec.running || a.deleting) return;
  if (a.changes.add(path)) start_watch_timer(a, a.spec.watch_delay);
}

void supervisor::start_watch_timer(app& a, std::chrono::milliseconds after) {
  if (!a.watch_timer) return;
  uv_timer_start(a.watch_timer.get(), [](uv_timer_t* t) {
    auto* self = static_cast<supervisor*>(t->data);
    if (!self) return;  // (its app is gone)
    for (auto& x : self->apps_)
      if (x->watch_timer.get() == t) return self->on_watch_due(*x);
  }, static_cast<uint64_t>(after.count()), 0);
}

void supervisor::on_watch_due(app& a) {
  if (!a.spec.running || a.deleting) return a.changes.clear();
  if (!a.changes.collecting()) return;
  // A rolling reload already replaces the instances (`corral reload`, a
  // cron_restart, a memory restart), maybe some before the change: the
  // batch waits for it to end, and collects meanwhile.
  if (a.reloading > 0)
    return start_watch_timer(a, std::max<std::chrono::milliseconds>(a.spec.watch_delay, std::chrono::milliseconds(100)));
  auto batch = a.changes.take();
  if (a.files) a.files->rewatch_missing_roots();  // (one that could not be watched: a permission changed since?)
  const bool cluster = !a.sockets.empty();
  note_app(a, std::string("[corral] ") + (cluster ? "reloading" : "restarting") + ": " + batch.first + " changed (watch" +
                  (batch.more > 0 ? ", and " + std::to_string(batch.more) + " more change(s)" : std::string()) + ")");
  reload_app(a, 1, [this, name = a.spec.name, round = batch.round](std::string e) {
    if (!e.empty()) std::fprintf(stderr, "corral daemon: %s: watch: %s\n", name.c_str(), e.c_str());
    // Changes during the restart make one more.
    if (app* x = app_named(name); x && x->changes.finish(round)) start_watch_timer(*x, x->spec.watch_delay);
  });
}

}  // namespace corral::daemon
