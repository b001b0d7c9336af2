// Cluster mode's commands: the rolling `reload`, `scale`, and readiness by
// sd_notify (DESIGN.md "Readiness", "Reload, restart, stop").
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <deque>

#include "daemon/paths.hpp"
#include "daemon/sd_notify.hpp"
#include "daemon/supervisor.hpp"
#include "daemon/supervisor_util.hpp"

namespace corral::daemon {

using namespace util;

// One app's rolling reload. Shared by the waiters of its slots: each holds it
// until its step is done.
struct supervisor::reload_job {
  std::string app_name;
  int parallel = 1;
  std::deque<int> pending;  // instance indices not yet replaced
  int in_flight = 0;
  std::string error;        // the first failure: no new slot starts after it
  std::vector<int> retiring;  // ids of replaced instances, until they stop
  bool finished = false;
  std::function<void(std::string)> done;
};

namespace {

bool is_running(state s) { return s == state::online || s == state::launching; }

std::string exit_text(const lifecycle& f) {
  if (f.last_exit().signal) return "was killed by signal " + std::to_string(f.last_exit().signal);
  return "exited with code " + std::to_string(f.last_exit().code);
}

}  // namespace

void supervisor::cmd_reload(const request& req, reply_fn reply) {
  std::string err;
  auto insts = select(req.args.value("target", std::string()), err);
  if (!err.empty()) return reply(fail(req.id, err));
  int parallel = std::clamp(req.args.value("parallel", 1), 1, 1024);
  std::vector<app*> targets;
  for (auto* i : insts)
    if (app* a = app_of(i->id()); a && std::find(targets.begin(), targets.end(), a) == targets.end())
      targets.push_back(a);
  struct pending_reply {
    int left;
    std::string errors;
  };
  // Shared by every app's completion: the reply goes out after the last.
  auto st = std::make_shared<pending_reply>(pending_reply{static_cast<int>(targets.size()), {}});
  if (targets.empty()) return reply(ok(req.id, {{"reloaded", 0}}));
  for (app* a : targets) {
    a->spec.running = true;
    arm_watch(*a);
    reload_app(*a, parallel, [st, reply, id = req.id, n = targets.size()](std::string e) {
      if (!e.empty()) st->errors += (st->errors.empty() ? "" : "; ") + e;
      if (--st->left > 0) return;
      if (!st->errors.empty()) return reply(fail(id, st->errors));
      reply(ok(id, {{"reloaded", n}}));
    });
  }
  persist_soon();
}

void supervisor::reload_all_from_signal() {
  handle(request{0, "reload", {{"target", "all"}}}, [](response&& r) {
    if (!r.ok) std::fprintf(stderr, "corral daemon: SIGHUP reload: %s\n", r.error.c_str());
  });
}

void supervisor::reload_app(app& a, int parallel, std::function<void(std::string)> done, std::vector<int> only) {
  auto chosen = [&only](int index) { return only.empty() || std::find(only.begin(), only.end(), index) != only.end(); };
  if (a.sockets.empty()) {
    // Fork mode: the app binds its own ports, so a replacement beside the old
    // instance would find them taken. A reload is a restart, as in PM2.
    std::vector<int> ids;
    for (auto& i : a.instances) {
      if (!chosen(i->index())) continue;
      i->fsm().handle(event::restart);
      ids.push_back(i->id());
    }
    wait_then(
        [this, ids] {
          return std::all_of(ids.begin(), ids.end(), [this](int id) {
            instance* i = find_instance(id);
            return !i || (i->fsm().current() != state::stopping && settled_running(i->fsm().current()));
          });
        },
        [done] { done({}); });
    return;
  }
  auto job = std::make_shared<reload_job>();
  job->app_name = a.spec.name;
  job->parallel = parallel;
  for (int k = 0; k < static_cast<int>(a.instances.size()); ++k)
    if (chosen(k)) job->pending.push_back(k);
  ++a.reloading;
  job->done = [this, name = a.spec.name, done = std::move(done)](std::string e) {
    if (app* x = app_named(name)) --x->reloading;
    done(std::move(e));
  };
  reload_next(job);
}

void supervisor::reload_next(const std::shared_ptr<reload_job>& job) {
  if (job->finished) return;
  app* a = app_named(job->app_name);
  if (!a && job->error.empty()) job->error = "app '" + job->app_name + "' was deleted during its reload";
  while (a && job->error.empty() && job->in_flight < job->parallel && !job->pending.empty()) {
    int index = job->pending.front();
    job->pending.pop_front();
    ++job->in_flight;
    reload_slot(job, index);
  }
  if (job->in_flight > 0 || (job->error.empty() && !job->pending.empty())) return;
  job->finished = true;
  // The reply waits for the old instances to be gone: "reloaded" means only
  // new code runs.
  wait_then(
      [this, job] {
        return std::all_of(job->retiring.begin(), job->retiring.end(), [this](int id) {
          instance* i = find_instance(id);
          return !i || settled_stopped(i->fsm().current());
        });
      },
      [job] { job->done(job->error); });
}

void supervisor::reload_slot(const std::shared_ptr<reload_job>& job, int index) {
  app* a = app_named(job->app_name);
  if (!a || index >= static_cast<int>(a->instances.size())) {  // scaled down meanwhile
    --job->in_flight;
    return reload_next(job);
  }
  instance& old = *a->instances[static_cast<size_t>(index)];
  int old_id = old.id();
  if (!is_running(old.fsm().current())) {
    // Nothing serves from this slot: start it; there is nothing to keep.
    old.fsm().handle(event::restart);
    wait_then(
        [this, old_id] {
          instance* i = find_instance(old_id);
          return !i || (i->fsm().current() != state::stopping && settled_running(i->fsm().current()));
        },
        [this, job] {
          --job->in_flight;
          reload_next(job);
        });
    return;
  }
  a->others.push_back(make_instance(*a, next_id_++, index));
  instance& fresh = *a->others.back();
  int fresh_id = fresh.id();
  fresh.fsm().handle(event::start);
  persist_soon();
  auto failed = [](const instance& r) {
    const auto& f = r.fsm();
    return f.restarts() > 0 || !is_running(f.current());
  };
  wait_then(
      [this, fresh_id, failed] {
        instance* r = find_instance(fresh_id);
        return !r || r->fsm().current() == state::online || failed(*r);
      },
      [this, job, index, old_id, fresh_id, failed] {
        --job->in_flight;
        app* a = app_named(job->app_name);
        instance* r = find_instance(fresh_id);
        std::string who = "instance " + std::to_string(index) + " of " + job->app_name;
        std::string why;
        // Why the app went first: a stop or delete also ends the replacement.
        if (!a || a->deleting) {
          why = "app '" + job->app_name + "' was deleted during its reload";
        } else if (!a->spec.running) {
          why = "the app was stopped during its reload";
        } else if (!r) {
          why = "its replacement went away during the reload";
        } else if (failed(*r)) {
          why = !r->spawn_error_text().empty() ? r->spawn_error_text()
                                               : "its replacement " + exit_text(r->fsm()) + " before it was online";
        } else if (r->fsm().online_by_timeout() && a->spec.lifecycle.wait_ready) {
          why = "its replacement did not say it was ready within listen_timeout (" +
                std::to_string(r->fsm().options().listen_timeout.count()) + " ms)";
        }
        auto slot = a ? std::find_if(a->instances.begin(), a->instances.end(),
                                     [&](auto& i) { return i->id() == old_id; })
                      : decltype(a->instances.begin()){};
        if (why.empty() && a && slot == a->instances.end()) why = "the instance went away during its reload";
        auto other = a ? std::find_if(a->others.begin(), a->others.end(), [&](auto& i) { return i.get() == r; })
                       : decltype(a->others.begin()){};
        if (why.empty() && a && other == a->others.end()) why = "its replacement went away during the reload";
        if (!why.empty()) {
          // Abort: the old instance keeps serving; the replacement goes.
          if (r) r->fsm().handle(event::stop);
          // (Unless the app was stopped or deleted: then nothing runs, as asked.)
          bool still_runs = a && !a->deleting && a->spec.running && slot != a->instances.end();
          if (job->error.empty())
            job->error = "reload of " + who + " aborted" + (still_runs ? ", the old instance still runs: " : ": ") + why;
          if (a) a->logs->note(index, "[corral] " + job->error);
          return reload_next(job);
        }
        // The replacement takes the old id and slot; the old one retires with
        // a fresh id, stopped gracefully (kill_signal or 'shutdown', then
        // SIGKILL after kill_timeout) while the replacement already serves.
        instance* retiring = slot->get();
        retiring->set_id(fresh_id);
        r->set_id(old_id);
        std::swap(*slot, *other);
        job->retiring.push_back(fresh_id);
        retiring->fsm().handle(event::stop);
        persist_soon();
        reload_next(job);
      });
}

void supervisor::cmd_scale(const request& req, reply_fn reply) {
  std::string target = req.args.value("target", std::string());
  app* a = app_named(target);
  if (!a) {
    std::string err;
    auto insts = select(target, err);
    if (!err.empty()) return reply(fail(req.id, err));
    if (!insts.empty()) a = app_of(insts[0]->id());
    for (auto* i : insts)
      if (app_of(i->id()) != a)
        return reply(fail(req.id, "scale: '" + target + "' is a namespace of several apps: scale one app at a time"));
  }
  if (!a) return reply(fail(req.id, "no app named '" + target + "'"));
  int n = req.args.value("instances", 0);
  if (n < 1 || n > limits::max_instances)
    return reply(fail(req.id, "scale: instances must be 1.." + std::to_string(limits::max_instances)));
  // More instances, more names (a pid file each, per-instance logs): none
  // may be another app's.
  app_spec scaled = a->spec;
  scaled.instances = n;
  if (auto taken = path_taken(scaled, a); !taken.empty()) return reply(fail(req.id, "scale: " + taken));
  for (int i = 0; !scaled.pid_file.empty() && i < n; ++i)
    if (auto why = pid_file_problem(pid_file_path(scaled, i)); !why.empty())
      return reply(fail(req.id, "scale: " + why));
  std::vector<int> ids;
  bool down = n < static_cast<int>(a->instances.size());
  a->spec.instances = n;  // first: a new instance's pid file takes its name from it
  while (static_cast<int>(a->instances.size()) > n) {
    // The highest indices go, gracefully, as a reload's old instances.
    auto& last = a->instances.back();
    last->fsm().handle(event::stop);
    ids.push_back(last->id());
    a->others.push_back(std::move(last));
    a->instances.pop_back();
  }
  while (static_cast<int>(a->instances.size()) < n) {
    int index = static_cast<int>(a->instances.size());
    a->instances.push_back(make_instance(*a, next_id_++, index));
    if (a->spec.running) a->instances.back()->fsm().handle(event::start);
    ids.push_back(a->instances.back()->id());
  }
  for (auto& i : a->instances) i->update_pid_file();  // one instance: the path as given; more: one each
  persist_soon();
  wait_then(
      [this, ids, down] {
        return std::all_of(ids.begin(), ids.end(), [&](int id) {
          instance* i = find_instance(id);
          return !i || (down ? settled_stopped(i->fsm().current()) : settled_running(i->fsm().current()));
        });
      },
      [reply, id = req.id, n] { reply(ok(id, {{"instances", n}})); });
}

// ---- sd_notify ----------------------------------------------------------------

bool supervisor::open_notify_socket(notify_socket& s, std::string name) {
  // systemd's notify protocol: datagrams of "KEY=VALUE\n" lines. The kernel
  // attaches the sender's credentials (SO_PASSCRED), so a message counts only
  // for the instance whose process group sent it.
  sockaddr_un sa;
  socklen_t len = 0;
  if (!notify_address(name, sa, len)) {
    std::fprintf(stderr, "corral daemon: no sd_notify socket: %s is too long for a socket's name\n", name.c_str());
    return false;  // the channel and listen_timeout remain
  }
  unique_fd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return false;
  const bool abstract = name[0] == '@';
  if (!abstract) ::unlink(name.c_str());
  int one = 1;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), len) != 0 ||
      ::setsockopt(fd.get(), SOL_SOCKET, SO_PASSCRED, &one, sizeof one) != 0) {
    std::fprintf(stderr, "corral daemon: no sd_notify socket at %s: %s\n", name.c_str(), std::strerror(errno));
    return false;
  }
  s.poll = detail::uv_handle_ptr<uv_poll_t>::make();
  if (uv_poll_init(loop_, s.poll.get(), fd.get()) != 0) {
    s.poll.reset();
    return false;
  }
  s.poll->data = this;
  s.abstract = abstract;
  uv_poll_start(s.poll.get(), UV_READABLE, [](uv_poll_t* p, int, int) {
    auto* self = static_cast<supervisor*>(p->data);
    if (!self) return;
    self->on_notify_readable(p == self->notify_own_.poll.get() ? self->notify_own_ : self->notify_others_);
  });
  uv_unref(reinterpret_cast<uv_handle_t*>(s.poll.get()));
  s.fd = std::move(fd);
  s.name = std::move(name);
  return true;
}

std::string supervisor::notify_socket_path(bool other_user) {
  if (!other_user) return notify_own_.name;
  if (!notify_others_.fd) {
    // Random: a name another local user could guess, they could bind first.
    unsigned char bytes[12];
    if (::getrandom(bytes, sizeof bytes, 0) != static_cast<ssize_t>(sizeof bytes)) return {};
    std::string name = "@corral-notify-";
    for (unsigned char b : bytes) {
      char hex[3];
      std::snprintf(hex, sizeof hex, "%02x", b);
      name += hex;
    }
    open_notify_socket(notify_others_, std::move(name));
  }
  return notify_others_.name;
}

void supervisor::on_notify_readable(const notify_socket& s) {
  for (int budget = 64; budget > 0; --budget) {
    char buf[4096];
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
    iovec iov{buf, sizeof buf - 1};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(s.fd.get(), &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0) return;
    pid_t sender = 0;
    uid_t sender_uid = 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
        ucred cred;
        std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
        sender = cred.pid;
        sender_uid = cred.uid;
      }
    if (sender <= 0) continue;
    std::string_view text(buf, static_cast<size_t>(n));
    bool ready = text == "READY=1" || text.starts_with("READY=1\n") || text.find("\nREADY=1") != std::string_view::npos;
    if (!ready) continue;
    // The instance's own process, or one in its process group (a shell
    // wrapper's child): never another instance's.
    pid_t group = ::getpgid(sender);
    int who = -1;
    for (auto& a : apps_)
      for (auto* v : {&a->instances, &a->others})
        for (auto& i : *v)
          if (i->pid() > 0 && (i->pid() == sender || i->pid() == group) &&
              (!s.abstract || sender_uid == static_cast<uid_t>(a->spec.uid)))
            who = i->id();
    // By id, after the walk: the transition may add instances (a reload's next slot).
    if (instance* i = find_instance(who)) i->fsm().handle(event::ready);
  }
}

}  // namespace corral::daemon
