#include "daemon/supervisor.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "daemon/adopt.hpp"
#include "daemon/paths.hpp"
#include "daemon/proc_stats.hpp"
#include "net/socket.hpp"
#include "daemon/supervisor_util.hpp"

namespace corral::daemon {

using namespace util;


supervisor::supervisor(uv_loop_t* loop, home_paths home)
    : loop_(loop), home_(std::move(home)), usage_([this] {
        // Each instance leads its own process group: its pid is the group's id.
        std::vector<pid_t> groups;
        for (auto& a : apps_)
          for (auto* v : {&a->instances, &a->others})
            for (auto& i : *v)
              if (i->pid() > 0) groups.push_back(i->pid());
        return groups;
      }) {
  struct stat err {}, log {};
  stderr_is_daemon_log_ = ::fstat(2, &err) == 0 && ::stat(home_.daemon_log.c_str(), &log) == 0 && same_file(err, log);
  persist_timer_ = detail::uv_handle_ptr<uv_timer_t>::make();
  uv_timer_init(loop_, persist_timer_.get());
  persist_timer_->data = this;
  memory_timer_ = detail::uv_handle_ptr<uv_timer_t>::make();
  uv_timer_init(loop_, memory_timer_.get());
  memory_timer_->data = this;
  if (const char* v = std::getenv("CORRAL_MEMORY_CHECK_MS")) {
    char* end = nullptr;
    long long n = std::strtoll(v, &end, 10);
    if (end != v && *end == 0 && n >= 50 && n <= 3'600'000) memory_check_interval_ = std::chrono::milliseconds(n);
    else std::fprintf(stderr, "corral daemon: CORRAL_MEMORY_CHECK_MS='%s' is not 50..3600000 ms; checking every %lld ms\n",
                      v, static_cast<long long>(memory_check_interval_.count()));
  }
  if (const char* v = std::getenv("CORRAL_WATCH_MAX_DIRS")) {
    char* end = nullptr;
    long long n = std::strtoll(v, &end, 10);
    if (end != v && *end == 0 && n >= 1 && n <= 1'000'000) watch_max_dirs_ = static_cast<size_t>(n);
    else std::fprintf(stderr, "corral daemon: CORRAL_WATCH_MAX_DIRS='%s' is not 1..1000000; %zu directories per app\n",
                      v, watch_max_dirs_);
  }
  started_unix_ms_ = unix_ms_now();
  open_notify_socket(notify_own_, home_.dir + "/notify.sock");
}

supervisor::~supervisor() {
  // (Replaced by `corral update`: the state file names them, and the next
  // daemon stops them as this one would have.)
  if (!leaving_running_) kill_leftovers();
  // The apps' last lines, as `kill` and `delete` write them: what is still
  // in the pipes and a partial last line (a pipe another process holds open
  // never reaches EOF). However the daemon stops (SIGTERM, SIGINT, `corral
  // run` ending), the log files get them before they close.
  for (auto& a : apps_)
    for (auto* v : {&a->instances, &a->others})
      for (auto& i : *v) i->take_remaining_output();
  for (auto& a : apps_)
    for (auto* v : {&a->instances, &a->others})
      for (auto& i : *v) i->sigkill_now();
}

// ---- persistence ----------------------------------------------------------

void supervisor::persist_soon() { persist_after(std::chrono::milliseconds(0)); }

void supervisor::persist_after(std::chrono::milliseconds delay) {
  // Several transitions in one loop iteration (start -i 8) make one write;
  // a change while a failed write waits to be retried tries at once.
  if (persist_pending_ && (delay.count() > 0 || uv_timer_get_due_in(persist_timer_.get()) == 0)) return;
  persist_pending_ = true;
  uv_timer_start(persist_timer_.get(), [](uv_timer_t* t) {
    if (auto* self = static_cast<supervisor*>(t->data)) self->persist_now();
  }, static_cast<uint64_t>(delay.count()), 0);
}

bool supervisor::persist_idle() const { return !persist_pending_ && !persist_writing_; }

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
    // Replacements and retiring instances come last: a new daemon only
    // kills them (restore() gives ids to the first spec.instances).
    for (auto* v : {&a->instances, &a->others})
      for (auto& i : *v) {
        persisted_instance pi{i->id(), i->index(), i->pid(), 0, {}};
        if (pi.pid > 0) {
          pi.output_inodes = i->output_inodes();
          if (auto s = sample_process(pi.pid)) pi.start_ticks = s->start_ticks;
        }
        pa.instances.push_back(pi);
      }
    // A dead daemon's instances still stopping: a daemon killed again now
    // leaves them to the next one, as its own.
    for (auto& l : leftovers_)
      if (l.app == a->spec.name) pa.instances.push_back(persisted_instance{-1, -1, l.pgid, l.start_ticks, l.output_inodes});
    st.apps.push_back(std::move(pa));
  }
  write_state(to_json(st).dump(2) + "\n");
}

void supervisor::write_state(std::string text) {
  if (persist_writing_) {
    persist_next_ = std::move(text);
    return;
  }
  // Off the loop: two fsyncs take milliseconds on a real disk, and the loop
  // meanwhile respawns what died and answers the control socket.
  struct job {
    uv_work_t req;
    supervisor* self;
    std::weak_ptr<char> alive;
    std::string path;
    std::string text;
    status result;
  };
  persist_writing_ = true;
  auto* j = new job{{}, this, alive_, home_.state, std::move(text), {}};
  j->req.data = j;
  uv_queue_work(
      loop_, &j->req,
      [](uv_work_t* r) {
        auto* jb = static_cast<job*>(r->data);
        jb->result = write_file_atomic(jb->path, jb->text);
      },
      [](uv_work_t* r, int) {
        std::unique_ptr<job> jb(static_cast<job*>(r->data));
        if (jb->alive.expired()) return;
        supervisor& self = *jb->self;
        self.persist_writing_ = false;
        if (jb->result) {
          if (!self.persist_error_.empty())
            std::fprintf(stderr, "corral daemon: state saved again (after: %s)\n", self.persist_error_.c_str());
          self.persist_error_.clear();
          self.persist_backoff_ = std::chrono::milliseconds(0);
        } else {
          // Said once per reason, not at every retry.
          if (jb->result.err().message() != self.persist_error_)
            std::fprintf(stderr, "corral daemon: cannot persist state: %s (trying again until it works)\n",
                         jb->result.err().message().c_str());
          self.persist_error_ = jb->result.err().message();
        }
        if (self.persist_next_) {
          std::string next = std::move(*self.persist_next_);
          self.persist_next_.reset();
          return self.write_state(std::move(next));
        }
        if (!jb->result && self.exit_requested_ && self.update_exe_.empty() && !self.persist_pending_) {
          // `kill`'s last state (no apps) could not be written: the older
          // file would bring back what was just killed. Without it the
          // next daemon starts empty, which is that state. (unlink needs
          // no free space.)
          if (::unlink(jb->path.c_str()) == 0 || errno == ENOENT)
            std::fprintf(stderr, "corral daemon: removed %s instead: the next daemon starts with no apps\n",
                         jb->path.c_str());
        }
        if (!jb->result && !self.exit_requested_) {
          using namespace std::chrono_literals;
          self.persist_backoff_ = std::min<std::chrono::milliseconds>(
              self.persist_backoff_.count() == 0 ? 1000ms : self.persist_backoff_ * 2, 30s);
          self.persist_after(self.persist_backoff_);
        }
        // Exiting waits for the last state to be on disk.
        // (Not while the state that asked to exit waits to be written: an
        // older write may end between the request and that write.)
        if (self.exit_requested_ && !self.persist_pending_ && self.on_exit_requested_) self.on_exit_requested_();
      });
}

int supervisor::restore(std::vector<unique_fd> inherited) {
  auto st = load_state_file(home_.state);
  // A file the daemon cannot wholly use, ignored, would be overwritten by the
  // first save and what it could not read lost for good: it is kept under
  // another name for the user to fix. If it cannot be moved, it is not
  // overwritten at once either. Returns what was done, for the log.
  bool keep_file = false;
  auto set_file_aside = [&]() -> std::string {
    auto moved = set_aside(home_.state);
    if (!moved) {
      keep_file = true;
      return "cannot move it aside: " + moved.err().message();
    }
    state_moved_to_ = *moved;
    return "moved it to " + *moved;
  };
  if (!st) {
    if (st.err().code() != std::errc::no_such_file_or_directory) {
      state_error_ = st.err().message();
      std::string where = set_file_aside();
      std::fprintf(stderr, "corral daemon: cannot use the state file: %s; %s; its apps are not restored\n",
                   state_error_.c_str(), where.c_str());
    }
    st = persisted_state{};  // nothing to restore; what runs unsupervised is still found below
  }
  if (!st->unreadable.empty()) {
    // The other apps are restored; the file, which the next save replaces
    // with them alone, is kept whole for the user to fix the rest.
    for (auto& u : st->unreadable)
      state_error_ += (state_error_.empty() ? "" : "; ") + home_.state + ": " + u.error;
    std::string where = set_file_aside();
    std::fprintf(stderr, "corral daemon: cannot restore %zu app(s) of the state file: %s; %s; the other %zu are restored\n",
                 st->unreadable.size(), state_error_.c_str(), where.c_str(), st->apps.size());
  }
  // No duplicate: what the dead daemon started is killed before we respawn.
  // A recorded pid now owned by another process (start time differs) was
  // reused and is left alone; a group whose leader is gone is still ours,
  // since Linux never reuses a pid while it names a live process group.
  //
  // Except a cluster app's instances whose sockets we can take over
  // (daemon/adopt.hpp): they serve on while the new instances start on the
  // same sockets, and are stopped gracefully, as in a reload.
  std::vector<pid_t> killed;
  std::vector<std::vector<unique_fd>> adopted(st->apps.size());
  std::vector<std::vector<leftover>> handed(st->apps.size());
  // What they wrote while no daemon ran, and write until they stop: the
  // read ends of their output, which they hold copies of.
  struct taken_output {
    int index, stream;
    unique_fd fd;
  };
  std::vector<std::vector<taken_output>> outputs(st->apps.size());
  std::string output_denied;
  // The dead daemon's instances still alive (start_ticks: as sampled now).
  auto still_running = [](const std::vector<persisted_instance>& instances) {
    std::vector<persisted_instance> left;
    for (auto i : instances) {
      if (i.pid <= 0) continue;
      auto s = sample_process(i.pid);
      if (s && i.start_ticks != 0 && s->start_ticks != i.start_ticks) continue;
      i.start_ticks = s ? s->start_ticks : 0;
      if (::kill(-i.pid, 0) == 0) left.push_back(i);
    }
    return left;
  };
  // An app that cannot be restored leaves nothing running unsupervised.
  for (auto& u : st->unreadable)
    for (auto& i : still_running(u.instances))
      if (::kill(-i.pid, SIGKILL) == 0) killed.push_back(i.pid);
  for (size_t k = 0; k < st->apps.size(); ++k) {
    auto& a = st->apps[k];
    auto left = still_running(a.instances);
    // Taken before any is killed: a dead process's fds cannot be.
    for (auto& i : left)
      for (int s = 0; s < 2; ++s) {
        if (i.output_inodes[static_cast<size_t>(s)] == 0) continue;
        auto fd = take_socket_by_inode(i.pid, i.output_inodes[static_cast<size_t>(s)], &inherited);
        if (fd && *fd) outputs[k].push_back({std::max(i.index, 0), s + 1, std::move(fd.value())});
        else if (!fd && output_denied.empty()) output_denied = fd.err().message();
      }
    // Round-robin instances hold no socket (the dead daemon's went with it).
    const bool may_hand_over = !a.spec.listen.empty() && !left.empty() && a.spec.lb != "round_robin";
    bool handover = may_hand_over;
    std::string denied;
    std::vector<bool> passed;  // (by the daemon this one replaces: kept whatever the handover)
    for (auto& text : a.spec.listen) {
      unique_fd fd;
      if (auto want = parse_listen(text)) {
        // `corral update` passes every app's sockets, the round-robin and
        // stopped apps' too: their port stays open, connections queue.
        if (auto got = take_listening_socket(0, *want, &inherited); got) fd = std::move(got.value());
        passed.push_back(static_cast<bool>(fd));
        for (auto& i : left) {
          if (fd || !may_hand_over) break;
          auto got = take_listening_socket(i.pid, *want, &inherited);
          if (got) fd = std::move(got.value());
          else if (denied.empty()) denied = got.err().message();
        }
      } else {
        passed.push_back(false);
      }
      handover = handover && fd;
      adopted[k].push_back(std::move(fd));
    }
    if (!handover)
      for (size_t s = 0; s < adopted[k].size(); ++s)
        if (!passed[s]) adopted[k][s].reset();
    // Said only when it cost the takeover.
    if (!handover && !denied.empty() && takeover_error_.empty()) takeover_error_ = denied;
    for (auto& i : left) {
      if (handover) handed[k].push_back({i.pid, i.start_ticks, a.spec.name, -1, i.output_inodes});
      else if (::kill(-i.pid, SIGKILL) == 0) killed.push_back(i.pid);
    }
  }
  // Instances of this home that no record names (a state file unusable or
  // gone, a spawn the dead daemon had not saved yet): nobody else supervises
  // them, and they may hold the ports the apps will want.
  std::vector<pid_t> serving;
  for (auto& h : handed)
    for (auto& l : h) serving.push_back(l.pgid);
  for (pid_t g : instance_groups_of_home(home_.dir)) {
    if (std::find(serving.begin(), serving.end(), g) != serving.end()) continue;
    if (std::find(killed.begin(), killed.end(), g) != killed.end()) continue;
    if (::kill(-g, SIGKILL) == 0) {
      killed.push_back(g);
      std::fprintf(stderr, "corral daemon: killed process group %d, an instance of this home that no record names\n", g);
    }
  }
  killed_orphans_ = static_cast<int>(killed.size());
  if (!output_denied.empty())
    std::fprintf(stderr, "corral daemon: cannot take over the output of the dead daemon's instances (%s): what they "
                 "wrote while no daemon ran is lost\n", output_denied.c_str());
  // Wait (briefly, bounded) for them to be gone so the process table never
  // shows old and new together.
  for (int tries = 0; tries < 200 && !killed.empty(); ++tries) {
    std::erase_if(killed, [](pid_t g) { return ::kill(-g, 0) != 0; });
    if (!killed.empty()) ::usleep(5000);
  }
  next_id_ = st->next_id;
  int restored = 0;
  for (size_t k = 0; k < st->apps.size(); ++k) {
    auto& pa = st->apps[k];
    std::vector<int> ids;
    for (auto& i : pa.instances) ids.push_back(i.id);
    auto a = add_app(std::move(pa.spec), ids, std::move(adopted[k]), /*restoring=*/true);
    if (!a) {
      std::fprintf(stderr, "corral daemon: cannot restore: %s\n", a.err().message().c_str());
      for (auto& l : handed[k]) ::kill(-l.pgid, SIGKILL);  // nothing takes their place
      continue;
    }
    ++restored;
    for (auto& o : outputs[k]) tap_output((*a)->spec.name, o.index, o.stream, std::move(o.fd));
    if ((*a)->spec.running)
      for (auto& i : (*a)->instances) i->fsm().handle(event::start);
    // After the start: they stop once the new instances have started.
    handed_over_ += static_cast<int>(handed[k].size());
    if (!handed[k].empty()) stop_leftovers_when_started(**a, std::move(handed[k]));
  }
  restored_apps_ = restored;
  inherited_used_ = static_cast<int>(std::count_if(inherited.begin(), inherited.end(), [](auto& fd) { return !fd; }));
  if (!keep_file) persist_soon();
  return restored;
}

void supervisor::tap_output(const std::string& app_name, int index, int stream, unique_fd fd) {
  // By the app's name: the app may go (`corral delete`) before its stream ends.
  output_reader::sink sink;
  sink.line = [this, app_name, index, stream](std::string_view line) {
    app* a = app_named(app_name);
    if (!a) return;
    if (echo_) echo_(a->spec, index, stream, line);
    a->logs->write(a->spec, index, stream, line);
  };
  sink.written = [this, app_name, index, stream](std::function<void()> done) {
    if (app* a = app_named(app_name)) return a->logs->when_written(index, stream, std::move(done));
    done();
  };
  sink.hold = [this, app_name, index, stream](std::function<void()> resume) {
    app* a = app_named(app_name);
    return a && a->logs->hold(index, stream, std::move(resume));
  };
  auto self = std::make_shared<const output_reader*>(nullptr);
  sink.ended = [this, self] {  // its end: every writer is gone
    std::erase_if(taps_, [&](const auto& t) { return t.get() == *self; });
  };
  auto reader = output_reader::start(loop_, std::move(fd), std::move(sink));
  if (!reader) {
    std::fprintf(stderr, "corral daemon: %s: cannot read instance %d's %s taken over from the old daemon: %s\n",
                 app_name.c_str(), index, stream == app_logs::err ? "stderr" : "stdout",
                 reader.err().message().c_str());
    return;
  }
  *self = reader->get();
  taps_.push_back(std::move(reader.value()));
}

// ---- model ------------------------------------------------------------------

// A dead daemon's instances whose sockets an app took over (restore()): they
// serve until the app's new instances have started (online, or failed), then
// are asked to stop as `stop` would ask them, and killed with their process
// groups after kill_timeout, as in a reload.
void supervisor::stop_leftovers_when_started(app& a, std::vector<leftover> left) {
  std::string name = a.spec.name;
  for (auto& l : left) leftovers_.push_back(l);
  persist_soon();
  wait_then(
      [this, name] {
        app* a = app_named(name);
        return !a || std::all_of(a->instances.begin(), a->instances.end(),
                                 [](auto& i) { return settled_running(i->fsm().current()); });
      },
      [this, name] {
        app* a = app_named(name);
        int sig = a ? a->spec.kill_signal : SIGTERM;
        bool term = a && a->spec.shutdown_with_message;
        int64_t at = static_cast<int64_t>(uv_now(loop_)) + (a ? a->spec.lifecycle.kill_timeout.count() : 0);
        for (auto& l : leftovers_) {
          if (l.app != name || l.kill_at_ms >= 0) continue;
          // As instance::signal_stop(); 'shutdown' on the channel (dead with
          // the old daemon) is a SIGTERM to the instance's own pid.
          if (term) ::kill(l.pgid, SIGTERM);
          else ::kill(-l.pgid, sig);
          l.kill_at_ms = at;
        }
        watch_leftovers();
      });
}

// Every 100 ms while leftovers remain: forget the groups that are gone, kill
// those past their deadline.
void supervisor::watch_leftovers() {
  if (!leftover_timer_) {
    leftover_timer_ = detail::uv_handle_ptr<uv_timer_t>::make();
    uv_timer_init(loop_, leftover_timer_.get());
    leftover_timer_->data = this;
  }
  uv_timer_start(leftover_timer_.get(), [](uv_timer_t* t) {
    auto* self = static_cast<supervisor*>(t->data);
    auto now = static_cast<int64_t>(uv_now(self->loop_));
    size_t before = self->leftovers_.size();
    std::erase_if(self->leftovers_, [now](const leftover& l) {
      if (::kill(-l.pgid, 0) != 0) return true;
      if (l.kill_at_ms < 0 || now < l.kill_at_ms) return false;
      // Another process has the pid now (0: the leader was gone already, and
      // no pid is reused while its group lives): the group is gone.
      auto s = sample_process(l.pgid);
      if (s && s->start_ticks != l.start_ticks) return true;
      ::kill(-l.pgid, SIGKILL);
      std::fprintf(stderr, "corral daemon: leftover instance (pid %d) of %s did not stop within kill_timeout: killed\n",
                   l.pgid, l.app.c_str());
      return true;
    });
    if (self->leftovers_.size() != before) self->persist_soon();
    if (self->leftovers_.empty()) uv_timer_stop(t);
  }, 100, 100);
}

// The daemon exits: no leftover may outlive it unsupervised.
void supervisor::kill_leftovers() {
  for (auto& l : leftovers_) {
    auto s = sample_process(l.pgid);
    if (s && s->start_ticks != l.start_ticks) continue;
    ::kill(-l.pgid, SIGKILL);
  }
  leftovers_.clear();
}

status supervisor::bind_sockets(app& a, std::vector<unique_fd> adopted) {
  std::vector<unique_fd> got;
  for (size_t k = 0; k < a.spec.listen.size(); ++k) {
    auto& text = a.spec.listen[k];
    auto addr = parse_listen(text);
    if (!addr) return addr.err();
    if (k < adopted.size() && adopted[k]) {
      got.push_back(std::move(adopted[k]));
      continue;
    }
    auto fd = net::detail::bind_socket(*addr, 511, false, true);
    if (!fd) return fd.err();
    if (a.spec.defer_accept) net::detail::set_defer_accept(fd->get(), true);
    // Port 0: the port the kernel chose is the app's from now on.
    if (auto bound = net::detail::local_address_of(fd->get()); bound && !addr->is_unix() && addr->port == 0)
      text = bound->to_string();
    got.push_back(std::move(fd.value()));
  }
  // The same vector object: the instances and the router borrow it.
  a.sockets = std::move(got);
  return {};
}

status supervisor::open_logs(app& a) {
  if (!a.logs_unopened) return {};
  auto logs = app_logs::open(loop_, home_.logs, a.spec);
  if (!logs) return logs.err();
  a.logs = std::make_unique<app_logs>(std::move(logs.value()));
  a.logs_unopened = false;
  std::fprintf(stderr, "corral daemon: %s: its log files are open now\n", a.spec.name.c_str());
  return {};
}

status supervisor::before_spawn(int id) {
  app* a = app_of(id);
  if (!a) return {};
  if (auto s = open_logs(*a); !s) return s;
  if (a->sockets.size() == a->spec.listen.size()) return {};
  auto s = bind_sockets(*a, {});
  if (s) {
    std::fprintf(stderr, "corral daemon: %s: its addresses are bound now\n", a->spec.name.c_str());
    persist_soon();  // a port 0 has its number now
  }
  return s;
}

result<supervisor::app*> supervisor::add_app(app_spec spec, const std::vector<int>& ids,
                                             std::vector<unique_fd> adopted, bool restoring) {
  if (!restoring)
    if (auto taken = path_taken(spec); !taken.empty())
      return error(std::make_error_code(std::errc::file_exists), "app '" + spec.name + "': " + taken);
  if (auto why = identity_problem(spec); !why.empty() && !restoring)
    return error(std::make_error_code(std::errc::operation_not_permitted), "app '" + spec.name + "': " + why);
  // Files the daemon writes for an app run as another user: in directories
  // that user cannot change, and named without links from now on.
  if (!restoring && spec.uid >= 0 && static_cast<uid_t>(spec.uid) != ::geteuid())
    for (auto [field, key] : {std::pair{&spec.out_file, "out_file"}, {&spec.error_file, "error_file"},
                              {&spec.log_file, "log_file"}, {&spec.pid_file, "pid_file"}}) {
      if (field->empty()) continue;
      auto safe = path_safe_from_app_user(*field, key);
      if (!safe) return error(safe.err().code(), "app '" + spec.name + "': " + safe.err().message());
      *field = *safe;
    }
  if (!spec.pid_file.empty() && !restoring) {
    if (auto made = make_parents(spec.pid_file, "pid_file"); !made)
      return error(made.err().code(), "app '" + spec.name + "': " + made.err().message());
    for (int i = 0; i < spec.instances; ++i)
      if (auto why = pid_file_problem(pid_file_path(spec, i)); !why.empty())
        return error(std::make_error_code(std::errc::file_exists), "app '" + spec.name + "': pid_file: " + why);
  }
  // A watched path that does not exist (yet) is awaited; one that cannot be
  // looked at is refused (the CLI refuses it first). A restored app's is
  // said in its error log, and it runs on.
  if (!restoring)
    for (const auto& p : spec.watch)
      if (struct stat st; ::stat(p.c_str(), &st) != 0 && errno != ENOENT && errno != ENOTDIR)
        return error(std::error_code(errno, std::generic_category()),
                     "app '" + spec.name + "': watch: " + std::strerror(errno) + ": " + p);
  auto a = std::make_unique<app>();
  a->spec = std::move(spec);
  auto logs = app_logs::open(loop_, home_.logs, a->spec);
  if (logs) {
    a->logs = std::make_unique<app_logs>(std::move(logs.value()));
  } else {
    if (!restoring) return logs.err();
    a->logs = std::make_unique<app_logs>(app_logs::unopened(loop_, home_.logs, a->spec));
    a->logs_unopened = true;
    std::fprintf(stderr, "corral daemon: %s: %s; the app stays (errored when started) until `corral restart %s`\n",
                 a->spec.name.c_str(), logs.err().message().c_str(), a->spec.name.c_str());
  }
  if (auto s = bind_sockets(*a, std::move(adopted)); !s) {
    if (!restoring) return s.err();
    std::fprintf(stderr, "corral daemon: %s: %s; the app stays (errored when started) until `corral restart %s`\n",
                 a->spec.name.c_str(), s.err().message().c_str(), a->spec.name.c_str());
  }
  if (a->spec.lb == "round_robin") {
    // The daemon is the instances' cluster primary: a worker's listen() gets
    // the app's socket that serves the address it asked for (or the only
    // one), which stays the app's (the kernel queues while none listens).
    app* self = a.get();
    net::detail::router::hooks h;
    h.provide = [self](const net::address& want) -> result<int> {
      std::vector<net::address> have;
      for (auto& s : self->sockets) {
        auto bound = net::detail::local_address_of(s.get());
        have.push_back(bound ? *bound : net::address{});
      }
      int at = net::detail::pick_socket(have, want);
      if (at < 0) {
        std::string mine;
        for (auto& l : self->spec.listen) mine += (mine.empty() ? "" : ", ") + l;
        return error(std::make_error_code(std::errc::address_not_available),
                     "listen " + want.to_string() + ": app '" + self->spec.name + "' listens on " + mine + " only");
      }
      return self->sockets[static_cast<size_t>(at)].get();
    };
    h.on_listening = [](const void* peer, const net::address&) { instance::on_router_listening(peer); };
    h.batch_sched = false;  // the daemon's loop serves everything else too
    // A worker's second server on another port gets a socket bound here, as
    // Node's primary binds it; not for an app run as another user, which
    // could have a root daemon bind what it may not (port 25, a socket path).
    h.open_others = self->spec.uid < 0 || self->spec.uid == static_cast<int64_t>(::geteuid());
    a->balancer = std::make_unique<net::detail::router>(std::move(h));
  }
  for (int k = 0; k < a->spec.instances; ++k) {
    int id = k < static_cast<int>(ids.size()) && ids[k] >= 0 ? ids[k] : next_id_++;
    next_id_ = std::max(next_id_, id + 1);
    a->instances.push_back(make_instance(*a, id, k));
  }
  apps_.push_back(std::move(a));
  watch_memory();
  arm_cron(*apps_.back());
  arm_watch(*apps_.back());
  return apps_.back().get();
}

// uid and gid: only root may start a process as someone else (setuid
// would fail in the child, as EPERM, at every restart).
std::string supervisor::identity_problem(const app_spec& spec) {
  if (::geteuid() == 0) return {};
  if (spec.uid >= 0 && spec.uid != ::geteuid())
    return "uid " + std::to_string(spec.uid) + ": the daemon runs as uid " + std::to_string(::geteuid()) +
           "; only a daemon running as root starts apps as another user";
  if (spec.gid >= 0 && spec.gid != ::getegid())
    return "gid " + std::to_string(spec.gid) + ": the daemon runs as gid " + std::to_string(::getegid()) +
           "; only a daemon running as root starts apps in another group";
  return {};
}

std::string supervisor::path_taken(const app_spec& spec, const app* except) const {
  // The files an app writes at paths of its own choosing: its logs, each
  // rotated by it alone, and its pid files.
  auto own = [this](const app_spec& s) {
    std::vector<std::pair<std::string, bool>> paths;  // (path, is a log)
    auto logs = app_logs::unopened(loop_, home_.logs, s);
    for (int i = 0; i < (s.merge_logs ? 1 : s.instances); ++i)
      for (auto& p : logs.own_paths(i)) paths.emplace_back(std::move(p), true);
    for (int i = 0; !s.pid_file.empty() && i < s.instances; ++i) paths.emplace_back(pid_file_path(s, i), false);
    return paths;
  };
  auto mine = own(spec);
  if (mine.empty()) return {};
  for (const auto& a : apps_) {
    if (a->deleting || a.get() == except) continue;
    for (const auto& theirs : own(a->spec))  // (no structured binding: clang 14 cannot capture one)
      if (std::any_of(mine.begin(), mine.end(), [&](const auto& m) { return m.first == theirs.first; }))
        return theirs.second ? "log file " + theirs.first + " is already written by app '" + a->spec.name +
                                   "' (each would rotate it under the other): give each app its own"
                             : "pid file " + theirs.first + " is already app '" + a->spec.name +
                                   "''s: give each app its own";
  }
  return {};
}

std::unique_ptr<instance> supervisor::make_instance(app& a, int id, int index) {
  auto i = std::make_unique<instance>(loop_, *this, a.spec, a.sockets, id, index);
  i->balance_with(a.balancer.get());
  return i;
}

supervisor::app* supervisor::app_of(int id) {
  for (auto& a : apps_)
    for (auto* v : {&a->instances, &a->others})
      for (auto& i : *v)
        if (i->id() == id) return a.get();
  return nullptr;
}

supervisor::app* supervisor::app_named(const std::string& name) {
  for (auto& a : apps_)
    if (!a->deleting && a->spec.name == name) return a.get();
  return nullptr;
}

instance* supervisor::find_instance(int id) {
  for (auto& a : apps_)
    for (auto* v : {&a->instances, &a->others})
      for (auto& i : *v)
        if (i->id() == id) return i.get();
  return nullptr;
}

std::vector<instance*> supervisor::select(const std::string& target, std::string& err) {
  std::vector<instance*> out;
  bool numeric = !target.empty() &&
                 std::all_of(target.begin(), target.end(), [](unsigned char c) { return std::isdigit(c); });
  // An app's name wins over a namespace of the same name (as in PM2).
  bool named = std::any_of(apps_.begin(), apps_.end(), [&](auto& a) { return !a->deleting && a->spec.name == target; });
  for (auto& a : apps_) {
    if (a->deleting) continue;
    bool in_namespace = !named && !numeric && a->spec.namespace_name == target;
    for (auto& i : a->instances)
      if (target == "all" || a->spec.name == target || in_namespace || (numeric && std::to_string(i->id()) == target))
        out.push_back(i.get());
  }
  if (out.empty() && target != "all") err = "no app, namespace or id '" + target + "' (see corral list)";
  return out;
}

void supervisor::on_output(int id, int stream, std::string_view line) {
  app* a = app_of(id);
  if (!a) return;
  instance* inst = find_instance(id);
  if (echo_) echo_(a->spec, inst ? inst->index() : 0, stream, line);
  if (inst) a->logs->write(a->spec, inst->index(), stream, line);
}

bool supervisor::hold_output(int id, int stream, std::function<void()> resume) {
  app* a = app_of(id);
  instance* inst = find_instance(id);
  return a && inst && a->logs->hold(inst->index(), stream, std::move(resume));
}

void supervisor::when_output_written(int id, int stream, std::function<void()> done) {
  app* a = app_of(id);
  instance* inst = find_instance(id);
  if (a && inst) return a->logs->when_written(inst->index(), stream, std::move(done));
  done();
}

void supervisor::note(int id, std::string_view line) {
  app* a = app_of(id);
  instance* inst = find_instance(id);
  if (a && inst) a->logs->note(inst->index(), line);
  std::fprintf(stderr, "corral daemon: %s: %.*s\n", a ? a->spec.name.c_str() : "?", static_cast<int>(line.size()),
               line.data());
}

void supervisor::on_instance_transition(int id, state from, state to) {
  if (to == state::errored)
    if (instance* i = find_instance(id); i && app_of(id)) {
      app* a = app_of(id);
      std::string why = !i->spawn_error_text().empty() ? i->spawn_error_text()
                        : i->fsm().last_exit().signal ? "killed by signal " + std::to_string(i->fsm().last_exit().signal)
                                                      : "exit code " + std::to_string(i->fsm().last_exit().code);
      a->logs->note(i->index(), "[corral] instance " + std::to_string(i->index()) + " errored: " + why);
    }
  // A process gone (or its replacement's, a reload aborted) may have taken
  // the pid file its successor or predecessor names: the running one of
  // that index (whose path it shares: no other) says its own again.
  if (app* a = app_of(id); a && !a->spec.pid_file.empty() && from != to)
    if (instance* changed = find_instance(id))
      for (auto& i : a->instances)
        if (i->index() == changed->index()) i->update_pid_file();
  if (from != to || to == state::online) persist_soon();
  check_waiters();
  if (on_transition_) on_transition_();
}

bool supervisor::nothing_runs() const {
  for (auto& a : apps_)
    for (auto* v : {&a->instances, &a->others})
      for (auto& i : *v)
        if (!settled_stopped(i->fsm().current())) return false;
  return true;
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
  auto stopped = [](const std::unique_ptr<instance>& i) { return settled_stopped(i->fsm().current()); };
  // Their last lines first, while the instance is still found by its id.
  for (auto& a : apps_)
    for (auto& i : a->others)
      if (stopped(i)) i->take_remaining_output();
  for (auto& a : apps_) std::erase_if(a->others, stopped);
  // Which apps go is decided first and their last lines written while
  // apps_ is whole; the erase comes last, with a predicate that calls
  // nothing: writing a line looks its app up in apps_, which an erase in
  // progress leaves holding moved-from (null) pointers.
  std::vector<const app*> gone;
  for (auto& a : apps_)
    if (a->deleting && std::all_of(a->instances.begin(), a->instances.end(), stopped) && a->others.empty())
      gone.push_back(a.get());
  if (gone.empty()) return;
  for (const app* a : gone) {
    for (auto& i : a->instances) i->take_remaining_output();
    // The app's sockets close with it; a Unix socket's file goes too.
    for (auto& text : a->spec.listen)
      if (auto addr = parse_listen(text); addr && addr->is_unix()) ::unlink(addr->path.c_str());
  }
  std::erase_if(apps_, [&](const std::unique_ptr<app>& a) {
    return std::find(gone.begin(), gone.end(), a.get()) != gone.end();
  });
}

// ---- max_memory_restart ---------------------------------------------------

void supervisor::watch_memory() {
  bool wanted = std::any_of(apps_.begin(), apps_.end(), [](auto& a) { return a->spec.max_memory_restart > 0; });
  if (!wanted) {
    uv_timer_stop(memory_timer_.get());
    return;
  }
  if (uv_is_active(memory_timer_.handle())) return;
  auto every = static_cast<uint64_t>(memory_check_interval_.count());
  uv_timer_start(memory_timer_.get(), [](uv_timer_t* t) {
    if (auto* self = static_cast<supervisor*>(t->data)) self->check_memory();
  }, every, every);
  uv_unref(memory_timer_.handle());  // (never what keeps the daemon up)
}

void supervisor::check_memory() {
  watch_memory();  // (stops once no app has a limit)
  usage_.with_fresh([this] {
    for (auto& a : apps_) {
      uint64_t limit = a->spec.max_memory_restart;
      // A reload replaces instances already; a stopped or deleted app has none to spare.
      if (limit == 0 || a->deleting || !a->spec.running || a->reloading > 0) continue;
      for (auto& i : a->instances) {
        if (i->fsm().current() != state::online || i->pid() <= 0) continue;
        if (std::find(memory_restarting_.begin(), memory_restarting_.end(), i->id()) != memory_restarting_.end())
          continue;
        uint64_t rss = usage_.of(i->pid()).rss;
        if (rss <= limit) continue;
        auto mb = [](uint64_t b) {
          char text[32];
          std::snprintf(text, sizeof text, "%.1f MB", static_cast<double>(b) / (1u << 20));
          return std::string(text);
        };
        const bool cluster = !a->sockets.empty();
        note(i->id(), "[corral] instance " + std::to_string(i->index()) + " (pid " + std::to_string(i->pid()) +
                          ") uses " + mb(rss) + ", over max_memory_restart (" + mb(limit) + "): " +
                          (cluster ? "reloading it" : "restarting it"));
        const int id = i->id();
        memory_restarting_.push_back(id);
        // (A reload of one index: in fork mode, its restart.)
        reload_app(*a, 1, [this, id](std::string) { std::erase(memory_restarting_, id); }, {i->index()});
        if (cluster) break;  // (a->instances changes as the replacement goes in)
      }
    }
  });
}

// ---- cron_restart -----------------------------------------------------------

void supervisor::arm_cron(app& a) {
  if (a.spec.cron_restart.empty()) return;
  if (!a.cron) {
    auto c = cron_schedule::parse(a.spec.cron_restart);
    if (!c) {  // (checked when the spec was read: not expected)
      std::fprintf(stderr, "corral daemon: %s: %s\n", a.spec.name.c_str(), c.err().message().c_str());
      return;
    }
    a.cron = std::move(*c);
    a.cron_timer = detail::uv_handle_ptr<uv_timer_t>::make();
    uv_timer_init(loop_, a.cron_timer.get());
    uv_unref(a.cron_timer.handle());
    a.cron_timer->data = this;
  }
  const int64_t now = unix_ms_now();
  if (a.cron_next_ms == 0 || a.cron_next_ms <= now - 1000) {
    // The first match after now (after a wall clock that jumped ahead, too:
    // the missed match is not run late).
    auto next = a.cron->next(static_cast<std::time_t>(now / 1000));
    if (!next) return;
    a.cron_next_ms = static_cast<int64_t>(*next) * 1000;
  }
  // At most an hour at a time: the timer counts monotonic time, the pattern
  // wall-clock time, which NTP or a user may move.
  const int64_t wait = std::clamp<int64_t>(a.cron_next_ms - now, 0, 3'600'000);
  uv_timer_start(a.cron_timer.get(), [](uv_timer_t* t) {
    auto* self = static_cast<supervisor*>(t->data);
    if (!self) return;  // (its app is gone)
    for (auto& x : self->apps_)
      if (x->cron_timer.get() == t) return self->on_cron(*x);
  }, static_cast<uint64_t>(wait), 0);
}

void supervisor::on_cron(app& a) {
  if (unix_ms_now() < a.cron_next_ms) return arm_cron(a);  // not yet: the hour's step, or a clock set back
  const std::string pattern = a.spec.cron_restart;
  a.cron_next_ms = 0;  // the next match is after this one
  if (a.spec.running && !a.deleting && a.reloading == 0) {
    for (auto& i : a.instances)
      note(i->id(), "[corral] cron_restart '" + pattern + "': " + (a.sockets.empty() ? "restarting" : "reloading") +
                        " instance " + std::to_string(i->index()));
    reload_app(a, 1, [name = a.spec.name](std::string e) {
      if (!e.empty()) std::fprintf(stderr, "corral daemon: %s: cron_restart: %s\n", name.c_str(), e.c_str());
    });
  }
  arm_cron(a);
}

}  // namespace corral::daemon
