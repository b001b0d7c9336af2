#include "daemon/supervisor.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>

#include "daemon/proc_stats.hpp"

namespace corral::daemon {

namespace {

int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool settled_stopped(state s) { return s == state::stopped || s == state::errored; }
bool settled_running(state s) {
  return s == state::online || s == state::errored || s == state::stopped || s == state::waiting_restart;
}

response fail(uint64_t id, std::string msg) { return response{id, false, json(), std::move(msg)}; }
response ok(uint64_t id, json result = json::object()) { return response{id, true, std::move(result), {}}; }

}  // namespace

supervisor::supervisor(uv_loop_t* loop, home_paths home) : loop_(loop), home_(std::move(home)) {
  persist_timer_ = detail::uv_handle_ptr<uv_timer_t>::make();
  uv_timer_init(loop_, persist_timer_.get());
  persist_timer_->data = this;
  started_unix_ms_ = unix_ms_now();
}

supervisor::~supervisor() {
  for (auto& a : apps_)
    for (auto& i : a->instances) i->sigkill_now();
}

// ---- persistence ----------------------------------------------------------

void supervisor::persist_soon() {
  // Several transitions in one loop iteration (start -i 8) make one write.
  if (persist_pending_) return;
  persist_pending_ = true;
  uv_timer_start(persist_timer_.get(), [](uv_timer_t* t) {
    if (auto* self = static_cast<supervisor*>(t->data)) self->persist_now();
  }, 0, 0);
}

void supervisor::persist_now() {
  persist_pending_ = false;
  // Runs from the timer, never inside an instance's transition: only here may
  // an instance be destroyed.
  remove_deleted_apps();
  persisted_state st;
  st.daemon_pid = ::getpid();
  st.next_id = next_id_;
  for (auto& a : apps_) {
    if (a->deleting) continue;
    persisted_app pa{a->spec, {}};
    for (auto& i : a->instances) {
      persisted_instance pi{i->id(), i->index(), i->pid(), 0};
      if (pi.pid > 0)
        if (auto s = sample_process(pi.pid)) pi.start_ticks = s->start_ticks;
      pa.instances.push_back(pi);
    }
    st.apps.push_back(std::move(pa));
  }
  if (auto s = write_file_atomic(home_.state, to_json(st).dump(2) + "\n"); !s)
    std::fprintf(stderr, "corral daemon: cannot persist state: %s\n", s.err().message().c_str());
  if (exit_requested_ && on_exit_requested_) on_exit_requested_();
}

int supervisor::restore() {
  auto text = read_file(home_.state);
  if (!text) return 0;
  auto j = parse_line(*text);
  if (!j) {
    std::fprintf(stderr, "corral daemon: ignoring unreadable %s\n", home_.state.c_str());
    return 0;
  }
  auto st = state_from_json(*j);
  if (!st) {
    std::fprintf(stderr, "corral daemon: ignoring %s: %s\n", home_.state.c_str(), st.err().message().c_str());
    return 0;
  }
  // No duplicate: what the dead daemon started is killed before we respawn.
  // A recorded pid now owned by another process (start time differs) was
  // reused and is left alone; a group whose leader is gone is still ours,
  // since Linux never reuses a pid while it names a live process group.
  std::vector<pid_t> killed;
  for (auto& a : st->apps)
    for (auto& i : a.instances) {
      if (i.pid <= 0) continue;
      auto s = sample_process(i.pid);
      if (s && i.start_ticks != 0 && s->start_ticks != i.start_ticks) continue;
      if (::kill(-i.pid, SIGKILL) == 0) killed.push_back(i.pid);
    }
  killed_orphans_ = static_cast<int>(killed.size());
  // Wait (briefly, bounded) for them to be gone so the process table never
  // shows old and new together.
  for (int tries = 0; tries < 200 && !killed.empty(); ++tries) {
    std::erase_if(killed, [](pid_t g) { return ::kill(-g, 0) != 0; });
    if (!killed.empty()) ::usleep(5000);
  }
  next_id_ = st->next_id;
  int restored = 0;
  for (auto& pa : st->apps) {
    std::vector<int> ids;
    for (auto& i : pa.instances) ids.push_back(i.id);
    auto a = add_app(std::move(pa.spec), ids);
    if (!a) {
      std::fprintf(stderr, "corral daemon: cannot restore: %s\n", a.err().message().c_str());
      continue;
    }
    ++restored;
    if ((*a)->spec.running)
      for (auto& i : (*a)->instances) i->fsm().handle(event::start);
  }
  restored_apps_ = restored;
  persist_soon();
  return restored;
}

// ---- model ------------------------------------------------------------------

result<supervisor::app*> supervisor::add_app(app_spec spec, const std::vector<int>& ids) {
  auto a = std::make_unique<app>();
  a->spec = std::move(spec);
  const char* suffix[2] = {"-out.log", "-error.log"};
  for (int s = 0; s < 2; ++s) {
    auto f = log_file::open(loop_, home_.logs + "/" + a->spec.name + suffix[s]);
    if (!f) return error(f.err().code(), f.err().message() + ": " + f.err().code().message());
    a->logs[s] = std::move(f.value());
  }
  for (int k = 0; k < a->spec.instances; ++k) {
    int id = k < static_cast<int>(ids.size()) ? ids[k] : next_id_++;
    next_id_ = std::max(next_id_, id + 1);
    a->instances.push_back(std::make_unique<instance>(loop_, *this, a->spec, id, k));
  }
  apps_.push_back(std::move(a));
  return apps_.back().get();
}

supervisor::app* supervisor::app_of(int id) {
  for (auto& a : apps_)
    for (auto& i : a->instances)
      if (i->id() == id) return a.get();
  return nullptr;
}

instance* supervisor::find_instance(int id) {
  for (auto& a : apps_)
    for (auto& i : a->instances)
      if (i->id() == id) return i.get();
  return nullptr;
}

std::vector<instance*> supervisor::select(const std::string& target, std::string& err) {
  std::vector<instance*> out;
  bool numeric = !target.empty() &&
                 std::all_of(target.begin(), target.end(), [](unsigned char c) { return std::isdigit(c); });
  for (auto& a : apps_) {
    if (a->deleting) continue;
    for (auto& i : a->instances)
      if (target == "all" || a->spec.name == target || (numeric && std::to_string(i->id()) == target))
        out.push_back(i.get());
  }
  if (out.empty() && target != "all") err = "no app named or numbered '" + target + "' (see corral list)";
  return out;
}

void supervisor::on_output(int id, int stream, std::string_view line) {
  app* a = app_of(id);
  if (!a) return;
  instance* inst = find_instance(id);
  std::string prefixed;
  if (a->spec.time) prefixed = iso8601_utc(unix_ms_now()) + ": ";
  // Instances share one file per stream; with several, each line says whose it is.
  if (a->spec.instances > 1 && inst) prefixed += std::to_string(inst->index()) + "|";
  if (prefixed.empty()) {
    a->logs[stream - 1]->write_line(line);
    return;
  }
  prefixed.append(line);
  a->logs[stream - 1]->write_line(prefixed);
}

void supervisor::on_instance_transition(int id, state from, state to) {
  if (to == state::errored)
    if (instance* i = find_instance(id); i && app_of(id)) {
      app* a = app_of(id);
      std::string why = !i->spawn_error_text().empty() ? i->spawn_error_text()
                        : i->fsm().last_exit().signal ? "killed by signal " + std::to_string(i->fsm().last_exit().signal)
                                                      : "exit code " + std::to_string(i->fsm().last_exit().code);
      a->logs[1]->write_line("[corral] instance " + std::to_string(i->index()) + " errored: " + why);
    }
  if (from != to || to == state::online) persist_soon();
  check_waiters();
}

void supervisor::wait_then(std::function<bool()> done, std::function<void()> fire) {
  if (done()) {
    fire();
    return;
  }
  waiters_.push_back({std::move(done), std::move(fire)});
}

void supervisor::check_waiters() {
  if (checking_waiters_) return;  // a waiter's fire() may cause transitions
  checking_waiters_ = true;
  for (bool again = true; again;) {
    again = false;
    for (size_t k = 0; k < waiters_.size(); ++k) {
      if (!waiters_[k].done()) continue;
      auto w = std::move(waiters_[k]);
      waiters_.erase(waiters_.begin() + static_cast<std::ptrdiff_t>(k));
      w.fire();
      again = true;
      break;
    }
  }
  checking_waiters_ = false;
  if (std::any_of(apps_.begin(), apps_.end(), [](auto& a) { return a->deleting; })) persist_soon();
}

void supervisor::remove_deleted_apps() {
  auto gone = [](const std::unique_ptr<app>& a) {
    return a->deleting && std::all_of(a->instances.begin(), a->instances.end(),
                                      [](auto& i) { return settled_stopped(i->fsm().current()); });
  };
  std::erase_if(apps_, gone);
}

// ---- commands ---------------------------------------------------------------

void supervisor::handle(const request& req, reply_fn reply) {
  const std::string& c = req.cmd;
  if (c == "ping") {
    reply(ok(req.id, {{"pid", ::getpid()},
                      {"version", protocol_version},
                      {"restored", restored_apps_},
                      {"killed_orphans", killed_orphans_},
                      {"home", home_.dir},
                      {"started", started_unix_ms_}}));
    return;
  }
  if (c == "start") return cmd_start(req, std::move(reply));
  if (c == "stop") return cmd_stop(req, std::move(reply));
  if (c == "restart") return cmd_restart(req, std::move(reply));
  if (c == "delete") return cmd_delete(req, std::move(reply));
  if (c == "list") return cmd_list(req, std::move(reply));
  if (c == "describe") return cmd_describe(req, std::move(reply));
  if (c == "flush") return cmd_flush(req, std::move(reply));
  if (c == "save") return cmd_save(req, std::move(reply));
  if (c == "resurrect") return cmd_resurrect(req, std::move(reply));
  if (c == "kill") return cmd_kill(req, std::move(reply));
  if (c == "logs_info") return cmd_logs_info(req, std::move(reply));
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
    std::string err;
    auto existing = select(spec->name, err);
    if (!existing.empty()) {
      insts = existing;  // PM2: starting a known name starts it again
    } else {
      auto a = add_app(std::move(spec.value()));
      if (!a) return reply(fail(req.id, a.err().message()));
      for (auto& i : (*a)->instances) insts.push_back(i.get());
    }
  }
  for (auto* i : insts) {
    if (app* a = app_of(i->id())) a->spec.running = true;
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

void supervisor::cmd_stop(const request& req, reply_fn reply) {
  std::string err;
  auto insts = select(req.args.value("target", std::string()), err);
  if (!err.empty()) return reply(fail(req.id, err));
  std::vector<int> ids;
  for (auto* i : insts) {
    if (app* a = app_of(i->id())) a->spec.running = false;
    i->fsm().handle(event::stop);
    ids.push_back(i->id());
  }
  persist_soon();
  wait_then(
      [this, ids] {
        return std::all_of(ids.begin(), ids.end(), [this](int id) {
          instance* i = find_instance(id);
          return !i || settled_stopped(i->fsm().current());
        });
      },
      [reply, id = req.id, n = ids.size()] { reply(ok(id, {{"stopped", n}})); });
}

void supervisor::cmd_restart(const request& req, reply_fn reply) {
  std::string err;
  auto insts = select(req.args.value("target", std::string()), err);
  if (!err.empty()) return reply(fail(req.id, err));
  std::vector<int> ids;
  for (auto* i : insts) {
    if (app* a = app_of(i->id())) a->spec.running = true;
    i->fsm().handle(event::restart);
    ids.push_back(i->id());
  }
  persist_soon();
  wait_then(
      [this, ids] {
        return std::all_of(ids.begin(), ids.end(), [this](int id) {
          instance* i = find_instance(id);
          return !i || (i->fsm().current() != state::stopping && settled_running(i->fsm().current()));
        });
      },
      [reply, id = req.id, n = ids.size()] { reply(ok(id, {{"restarted", n}})); });
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
    names.push_back(a->spec.name);
    for (auto& i : a->instances) i->fsm().handle(event::stop);
  }
  persist_soon();
  wait_then(
      [this, names] {
        return std::none_of(apps_.begin(), apps_.end(), [&](auto& a) {
          return a->deleting && std::find(names.begin(), names.end(), a->spec.name) != names.end() &&
                 !std::all_of(a->instances.begin(), a->instances.end(),
                              [](auto& i) { return settled_stopped(i->fsm().current()); });
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
           {"mode", "fork"},
           {"pid", i.pid()},
           {"status", std::string(to_string(f.current()))},
           {"restarts", f.restarts()},
           {"uptime_ms", i.pid() > 0 ? unix_ms_now() - i.started_unix_ms() : 0},
           {"cpu", 0.0},
           {"memory", 0}};
  if (i.pid() > 0)
    if (auto s = sample_process(i.pid())) {
      row["cpu"] = lifetime_cpu_percent(*s);
      row["memory"] = s->rss_bytes;
    }
  if (f.current() == state::errored || f.last_exit().code != 0 || f.last_exit().signal != 0) {
    row["exit_code"] = f.last_exit().code;
    row["exit_signal"] = f.last_exit().signal;
  }
  if (!i.spawn_error_text().empty()) row["error"] = i.spawn_error_text();
  if (full) {
    row["app"] = to_json(a.spec);
    row["out_log"] = a.logs[0]->path();
    row["err_log"] = a.logs[1]->path();
    row["dropped_lines"] = a.logs[0]->dropped_total() + a.logs[1]->dropped_total();
  }
  return row;
}

void supervisor::cmd_list(const request& req, reply_fn reply) {
  json rows = json::array();
  for (auto& a : apps_)
    if (!a->deleting)
      for (auto& i : a->instances) rows.push_back(describe_instance(*a, *i, req.args.value("full", false)));
  reply(ok(req.id, rows));
}

void supervisor::cmd_describe(const request& req, reply_fn reply) {
  std::string err;
  auto insts = select(req.args.value("target", std::string()), err);
  if (!err.empty()) return reply(fail(req.id, err));
  json rows = json::array();
  for (auto* i : insts) rows.push_back(describe_instance(*app_of(i->id()), *i, true));
  reply(ok(req.id, rows));
}

void supervisor::cmd_flush(const request& req, reply_fn reply) {
  std::string target = req.args.value("target", std::string("all"));
  std::string err;
  auto insts = select(target, err);
  if (!err.empty()) return reply(fail(req.id, err));
  for (auto& a : apps_)
    if (target == "all" || std::any_of(insts.begin(), insts.end(), [&](instance* i) { return app_of(i->id()) == a.get(); }))
      for (auto& l : a->logs) l->truncate();
  reply(ok(req.id));
}

void supervisor::cmd_logs_info(const request& req, reply_fn reply) {
  std::string target = req.args.value("target", std::string("all"));
  std::string err;
  auto insts = select(target, err);
  if (!err.empty()) return reply(fail(req.id, err));
  json out = json::array();
  for (auto& a : apps_)
    if (target == "all" || std::any_of(insts.begin(), insts.end(), [&](instance* i) { return app_of(i->id()) == a.get(); }))
      out.push_back({{"name", a->spec.name}, {"out", a->logs[0]->path()}, {"err", a->logs[1]->path()}});
  reply(ok(req.id, out));
}

void supervisor::cmd_save(const request& req, reply_fn reply) {
  persisted_state st;
  st.daemon_pid = ::getpid();
  for (auto& a : apps_)
    if (!a->deleting) st.apps.push_back({a->spec, {}});
  if (auto s = write_file_atomic(home_.dump, to_json(st).dump(2) + "\n"); !s) return reply(fail(req.id, s.err().message()));
  reply(ok(req.id, {{"path", home_.dump}, {"apps", st.apps.size()}}));
}

void supervisor::cmd_resurrect(const request& req, reply_fn reply) {
  auto text = read_file(home_.dump);
  if (!text) return reply(fail(req.id, "nothing saved: " + text.err().message() + " (run corral save first)"));
  auto j = parse_line(*text);
  if (!j) return reply(fail(req.id, home_.dump + ": " + j.err().message()));
  auto st = state_from_json(*j);
  if (!st) return reply(fail(req.id, home_.dump + ": " + st.err().message()));
  json started = json::array();
  for (auto& pa : st->apps) {
    std::string err;
    if (!select(pa.spec.name, err).empty()) continue;  // already here: no duplicate
    auto a = add_app(std::move(pa.spec));
    if (!a) return reply(fail(req.id, a.err().message()));
    started.push_back((*a)->spec.name);
    if ((*a)->spec.running)
      for (auto& i : (*a)->instances) i->fsm().handle(event::start);
  }
  persist_soon();
  reply(ok(req.id, {{"started", started}}));
}

void supervisor::stop_everything(std::function<void()> done) {
  for (auto& a : apps_)
    for (auto& i : a->instances) i->fsm().handle(event::stop);
  wait_then(
      [this] {
        return std::all_of(apps_.begin(), apps_.end(), [](auto& a) {
          return std::all_of(a->instances.begin(), a->instances.end(),
                             [](auto& i) { return settled_stopped(i->fsm().current()); });
        });
      },
      std::move(done));
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
