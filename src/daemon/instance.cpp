#include "daemon/instance.hpp"

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <chrono>
#include <map>

#include "daemon/launch.hpp"
#include "daemon/paths.hpp"
#include "daemon/users.hpp"
#include "net/router.hpp"

extern char** environ;

namespace corral::daemon {

// One process and the readers of its output. It stays alive after the
// process exits until both streams reach EOF, so the last lines (and a
// partial last line) reach the log.
struct instance::run {
  instance* owner;
  pid_t pid = 0;
  bool exited = false;
  int open_pipes = 0;
  detail::uv_handle_ptr<uv_process_t> process;
  std::unique_ptr<output_reader> out[2];  // stdout, stderr
  std::unique_ptr<channel> ch;

  bool drained() const { return exited && open_pipes == 0; }
};

namespace {

constexpr int first_listen_fd = 3;  // systemd's SD_LISTEN_FDS_START

// The corral binary itself: in cluster mode an instance runs through its
// hidden `__exec` subcommand, which sets LISTEN_PID to its own pid and execs
// the app (same pid); so does an app a root daemon runs as another user,
// whose identity __exec takes first (--uid, --gid). uv_spawn runs no code of
// ours between fork and exec.
std::string exec_wrapper() {
  // Replaced on disk since the daemon started (an upgrade): the new binary's
  // __exec does the same.
  return self_exe_path();
}

std::string errno_name(int uv_status) { return uv_err_name(uv_status); }

}  // namespace

instance::instance(uv_loop_t* loop, instance_host& host, const app_spec& spec, const std::vector<unique_fd>& sockets,
                   int id, int index)
    : loop_(loop), host_(host), spec_(spec), sockets_(sockets), id_(id), index_(index), fsm_(*this, spec.lifecycle) {
  timer_ = detail::uv_handle_ptr<uv_timer_t>::make();
  uv_timer_init(loop_, timer_.get());
  timer_->data = this;
}

instance::~instance() {
  // The daemon only destroys an instance that is stopped; a process still
  // running here is a bug elsewhere, and must not outlive its supervision.
  if (pid_ > 0) ::kill(-pid_, SIGKILL);
  remove_pid_file(pid_file_, pid_file_pid_);
  if (current_) leave_router(*current_);
  for (auto& r : draining_) leave_router(*r);
}

void instance::update_pid_file() {
  std::string want = pid_ > 0 ? pid_file_path(spec_, index_) : std::string();
  // (Written already, and still ours: a reload's replacement that exits
  // removes the file it wrote, and the instance it failed to replace writes
  // its own again.)
  if (pid_file_ == want && pid_file_pid_ == pid_ && (want.empty() || pid_file_holds(want, pid_))) return;
  remove_pid_file(pid_file_, pid_file_pid_);
  pid_file_.clear();
  pid_file_pid_ = 0;
  if (want.empty()) return;
  // Its directory too, as a log's: /run/<app>/ is gone after a reboot.
  auto s = make_parents(want, "pid_file");
  if (s) s = write_pid_file(want, pid_);
  if (!s) {
    // The app runs on: a pid file is for others to find it, not its health.
    // Said once per process, not at every transition of every instance.
    if (pid_file_failed_ == pid_) return;
    pid_file_failed_ = pid_;
    std::string line = "[corral] " + s.err().message() + "; instance " + std::to_string(index_) + " runs without it";
    std::fprintf(stderr, "corral daemon: %s: %s\n", spec_.name.c_str(), line.c_str());
    host_.note(id_, line);
    return;
  }
  pid_file_ = std::move(want);
  pid_file_pid_ = pid_;
}

void instance::leave_router(run& r) {
  if (router_) router_->leave_all(&r);
}

void instance::on_router_listening(const void* peer) {
  auto* r = static_cast<run*>(const_cast<void*>(peer));
  instance* self = r->owner;
  if (self->current_.get() != r || !self->router_) return;
  if (self->router_->keys_of(r).size() >= self->spec_.listen.size()) self->fsm_.handle(event::ready);
}

void instance::sigkill_now() {
  if (pid_ > 0) ::kill(-pid_, SIGKILL);
}

void instance::take_remaining_output() {
  auto take = [](run& r) {
    for (auto& o : r.out)
      if (o) o->drain();
  };
  if (current_) take(*current_);
  for (auto& r : draining_) take(*r);
}

std::vector<unique_fd> instance::leave_running() {
  std::vector<unique_fd> out;
  if (current_)
    for (auto& o : current_->out) {
      if (!o) continue;
      if (auto fd = o->duplicate_fd()) out.push_back(std::move(fd));
      o.reset();
    }
  pid_ = 0;
  pid_file_.clear();
  pid_file_pid_ = 0;
  return out;
}

ms instance::now() { return ms(uv_now(loop_)); }

void instance::arm_timer(ms after) {
  uv_timer_start(timer_.get(), [](uv_timer_t* t) {
    if (auto* self = static_cast<instance*>(t->data)) self->fsm_.handle(event::timer);
  }, static_cast<uint64_t>(after.count()), 0);
}

void instance::cancel_timer() { uv_timer_stop(timer_.get()); }

void instance::on_transition(state from, state to) {
  if (router_ && to == state::online && current_ && router_->keys_of(current_.get()).size() < spec_.listen.size())
    host_.note(id_, "[corral] instance " + std::to_string(index_) + " (pid " + std::to_string(pid_) +
                        ") is online but does not listen through corral: --lb round_robin passes "
                        "connections only to libcorral apps, whose listen() asks the daemon; it gets none");
  host_.on_instance_transition(id_, from, to);
}

void instance::signal_stop() {
  if (pid_ <= 0) return;
  // A worker of ours: disconnect it, as Node's worker.disconnect(): it
  // stops listening, serves what it was passed, and exits.
  // Only one that listens through us: any other app gets its kill_signal.
  if (router_ && current_ && current_->ch && current_->ch->is_open() && !router_->keys_of(current_.get()).empty()) {
    current_->ch->send({{"corral", "disconnect"}});
    return;
  }
  if (spec_.shutdown_with_message && current_ && current_->ch && current_->ch->is_open()) {
    current_->ch->send(json("shutdown"));
    return;
  }
  // The whole group: a shell wrapper's children stop with it.
  ::kill(-pid_, spec_.kill_signal);
}

void instance::kill_group() {
  if (pid_ <= 0) return;
  // Only the lifecycle's stop timeout gets here: say so, or a user sees
  // requests cut short with no trace of why.
  host_.note(id_, "[corral] instance " + std::to_string(index_) + " (pid " + std::to_string(pid_) +
                      ") did not stop within kill_timeout (" + std::to_string(spec_.lifecycle.kill_timeout.count()) +
                      " ms): killed with SIGKILL");
  ::kill(-pid_, SIGKILL);
}

int instance::spawn() {
  if (auto s = host_.before_spawn(id_); !s) {
    spawn_error_text_ = s.err().message();
    int code = s.err().code().value();
    return code > 0 && s.err().code().category() == std::generic_category() ? -code : -EAGAIN;
  }
  // Cluster mode: an instance is online when it says so (channel, sd_notify)
  // or after listen_timeout alive, never at once: a reload must not retire
  // the old instance for a replacement that dies while it starts.
  auto options = spec_.lifecycle;
  if (!sockets_.empty()) options.wait_ready = true;
  // Round-robin: the sockets stay here; the instance asks for them.
  const bool balanced = router_ != nullptr;
  const std::vector<unique_fd> none;
  const std::vector<unique_fd>& inherit = balanced ? none : sockets_;
  fsm_.set_options(options);
  spawn_error_text_.clear();

  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    auto eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view name = kv.substr(0, eq);
    bool filtered = std::any_of(spec_.filter_env.begin(), spec_.filter_env.end(), [&](const std::string& prefix) {
      return name.substr(0, prefix.size()) == prefix && !(prefix.empty() && name == "PATH");
    });
    if (!filtered) env.emplace(std::string(name), std::string(kv.substr(eq + 1)));
  }
  // What belongs to the daemon's own parent must not leak into apps.
  for (const char* k : {"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET", "NODE_CHANNEL_FD",
                        "CORRAL_CHANNEL_FD", "CORRAL_WORKER_ID", "NODE_UNIQUE_ID"})
    env.erase(k);
  for (const auto& [k, v] : spec_.env) env[k] = v;
  env["CORRAL_APP_NAME"] = spec_.name;
  if (auto home = host_.home_dir(); !home.empty()) env["CORRAL_HOME"] = home;  // (`corral` in the app reaches us)
  env["CORRAL_INSTANCE"] = std::to_string(index_);
  env[spec_.instance_var] = std::to_string(index_);  // NODE_APP_INSTANCE unless renamed
  if (auto it = env.find(spec_.increment_var); !spec_.increment_var.empty() && it != env.end())
    it->second = std::to_string(std::stoll(it->second) + index_);  // (a whole number: app_spec_from_json)
  // The channel comes after the listening sockets, which must start at 3.
  const int n_sockets = static_cast<int>(inherit.size());
  const int channel_fd = first_listen_fd + n_sockets;
  env["CORRAL_CHANNEL_FD"] = std::to_string(channel_fd);
  env["NODE_CHANNEL_FD"] = std::to_string(channel_fd);
  const bool other_user = spec_.uid >= 0 && spec_.uid != ::geteuid();
  if (auto notify = host_.notify_socket_path(other_user); !notify.empty()) env["NOTIFY_SOCKET"] = notify;
  if (balanced) {
    // libcorral's cluster worker: listen() goes through its primary, us.
    env["CORRAL_WORKER_ID"] = std::to_string(id_);
    if (!spec_.env.count("CORRAL_SCHED_POLICY")) env["CORRAL_SCHED_POLICY"] = "round_robin";
  }
  if (n_sockets > 0) {
    env["LISTEN_FDS"] = std::to_string(n_sockets);
    // One name per fd (systemd's FileDescriptorName); ':' separates them.
    std::string names;
    for (int k = 0; k < n_sockets; ++k) names += (k ? ":" : "") + spec_.name;
    env["LISTEN_FDNAMES"] = names;
  }
  env["NODE_CHANNEL_SERIALIZATION_MODE"] = "json";
  if (spec_.uid >= 0 && spec_.uid != ::geteuid()) {
    // As systemd's User=: the app's own home, not the daemon's. A uid with
    // no /etc/passwd entry (LDAP, a container's arbitrary uid) gets "/" and
    // no name rather than root's.
    auto user = find_user(static_cast<uid_t>(spec_.uid));
    std::string home = user ? user->home : "/", name = user ? user->name : "";
    for (auto [k, v] : {std::pair{"HOME", home}, {"USER", name}, {"LOGNAME", name}})
      if (!spec_.env.count(k)) {
        if (v.empty()) env.erase(k);
        else env[k] = v;
      }
  }
  spawn_env_ = std::move(env);  // (kept for `corral env`)
  std::vector<std::string> env_strings;
  env_strings.reserve(spawn_env_.size());
  for (auto& [k, v] : spawn_env_) env_strings.push_back(k + "=" + v);
  std::vector<char*> c_env;
  for (auto& s : env_strings) c_env.push_back(s.data());
  c_env.push_back(nullptr);
  std::vector<std::string> argv = spec_.argv;
  // A root daemon has the wrapper take the app's identity, as systemd's
  // User= does: the user's supplementary groups too (libuv's setuid drops
  // them all), and the wrapper still runs as root, so the user need not be
  // able to run the corral binary.
  const bool as_other = ::geteuid() == 0 && (spec_.uid >= 0 || spec_.gid >= 0);
  if (n_sockets > 0 || as_other) {
    // The wrapper would report a missing program only as exit 127: say it now.
    if (argv[0].find('/') != std::string::npos && ::access(argv[0].c_str(), X_OK) != 0) {
      int e = errno;
      spawn_error_text_ = "spawn " + argv[0] + ": " + std::strerror(e) + " (" + errno_name(-e) + ")";
      return -e;
    }
    std::string wrapper = exec_wrapper();
    if (wrapper.empty()) {
      spawn_error_text_ = "cannot find the corral binary to exec the app through";
      return -ENOENT;
    }
    std::vector<std::string> head{wrapper, "__exec"};
    if (n_sockets == 0) head.push_back("--no-listen-pid");
    if (as_other && spec_.uid >= 0) head.insert(head.end(), {"--uid", std::to_string(spec_.uid)});
    if (as_other && spec_.gid >= 0) head.insert(head.end(), {"--gid", std::to_string(spec_.gid)});
    head.push_back("--");
    argv.insert(argv.begin(), head.begin(), head.end());
  }
  std::vector<char*> c_argv;
  for (auto& a : argv) c_argv.push_back(a.data());
  c_argv.push_back(nullptr);

  auto pair = channel::socketpair();
  if (!pair) {
    spawn_error_text_ = pair.err().message();
    return -EMFILE;
  }
  auto [ours, theirs] = std::move(pair.value());

  // stdout and stderr are socketpairs made here rather than by libuv, so
  // that the instance holds its own read ends too (at the two fds after the
  // channel, never read): a daemon killed by SIGKILL or the OOM killer
  // leaves each with a reader, and the app's next log line does not kill it
  // with SIGPIPE. It writes on until the buffer fills, then waits.
  unique_fd out_read[2], out_write[2];
  std::array<uint64_t, 2> inodes{};  // (for a later daemon to find the copies by)
  for (int s = 0; s < 2; ++s) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
      int e = errno;
      spawn_error_text_ = std::string("socketpair for the app's output: ") + std::strerror(e) + " (" + errno_name(-e) + ")";
      return -e;
    }
    out_read[s].reset(sv[0]);
    out_write[s].reset(sv[1]);
    struct stat st {};
    if (::fstat(sv[0], &st) == 0) inodes[static_cast<size_t>(s)] = st.st_ino;
  }
  const int held_out_fd = channel_fd + 1;
  auto r = std::make_unique<run>();
  r->owner = this;
  std::vector<uv_stdio_container_t> stdio(static_cast<size_t>(held_out_fd + 2));
  stdio[0].flags = UV_IGNORE;  // libuv opens /dev/null for an ignored 0..2
  for (int s = 1; s <= 2; ++s) {
    stdio[static_cast<size_t>(s)].flags = UV_INHERIT_FD;
    stdio[static_cast<size_t>(s)].data.fd = out_write[s - 1].get();
    stdio[static_cast<size_t>(held_out_fd + s - 1)].flags = UV_INHERIT_FD;
    stdio[static_cast<size_t>(held_out_fd + s - 1)].data.fd = out_read[s - 1].get();
  }
  for (int k = 0; k < n_sockets; ++k) {
    stdio[static_cast<size_t>(first_listen_fd + k)].flags = UV_INHERIT_FD;
    stdio[static_cast<size_t>(first_listen_fd + k)].data.fd = inherit[static_cast<size_t>(k)].get();
  }
  stdio[static_cast<size_t>(channel_fd)].flags = UV_INHERIT_FD;
  stdio[static_cast<size_t>(channel_fd)].data.fd = theirs.get();

  uv_process_options_t opts{};
  opts.file = c_argv[0];
  opts.args = c_argv.data();
  opts.env = c_env.data();
  opts.cwd = spec_.cwd.empty() ? nullptr : spec_.cwd.c_str();
  opts.stdio = stdio.data();
  opts.stdio_count = static_cast<int>(stdio.size());
  // A new session, hence its own process group (pgid == pid): stop and kill
  // reach everything the app forks.
  opts.flags = UV_PROCESS_DETACHED;
  if (spec_.uid >= 0 && !as_other) {
    opts.flags |= UV_PROCESS_SETUID;
    opts.uid = static_cast<uv_uid_t>(spec_.uid);
  }
  if (spec_.gid >= 0 && !as_other) {
    opts.flags |= UV_PROCESS_SETGID;
    opts.gid = static_cast<uv_gid_t>(spec_.gid);
  }
  opts.exit_cb = [](uv_process_t* p, int64_t status, int sig) {
    if (auto* rr = static_cast<run*>(p->data)) rr->owner->on_exit(*rr, status, sig);
  };
  // The readers first: a daemon out of file descriptors says so and the
  // spawn fails (retried as any), rather than an app whose output nobody reads.
  for (int s = 1; s <= 2; ++s) {
    run* rr = r.get();
    output_reader::sink sink;
    sink.line = [this, s](std::string_view line) { host_.on_output(id_, s, line); };
    sink.written = [this, s](std::function<void()> done) { host_.when_output_written(id_, s, std::move(done)); };
    // Back-pressure: while the log is behind, the socket is not read, so the
    // app blocks in write() rather than its lines being dropped.
    sink.hold = [this, s](std::function<void()> resume) { return host_.hold_output(id_, s, std::move(resume)); };
    sink.ended = [rr, s] {
      rr->out[s - 1].reset();
      --rr->open_pipes;
      if (rr->drained()) rr->owner->on_run_drained(*rr);
    };
    auto reader = output_reader::start(loop_, std::move(out_read[s - 1]), std::move(sink));
    if (!reader) {
      spawn_error_text_ = std::string("cannot read the app's ") + (s == 1 ? "stdout" : "stderr") + ": " +
                          reader.err().message();
      return -reader.err().code().value();
    }
    r->out[s - 1] = std::move(reader.value());  // (its fd stays open: stdio above names it)
    ++r->open_pipes;
  }
  r->process = detail::uv_handle_ptr<uv_process_t>::make();
  int st = uv_spawn(loop_, r->process.get(), &opts);
  if (st < 0) {
    spawn_error_text_ = "spawn " + argv[0] + ": " + uv_strerror(st) + " (" + errno_name(st) + ")";
    return st;
  }
  r->process->data = r.get();
  r->pid = r->process->pid;
  pid_ = r->pid;
  output_inodes_ = inodes;
  started_unix_ms_ = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  theirs.reset();
  update_pid_file();

  channel_options co;
  co.peer = spec_.name + " instance " + std::to_string(index_) + " (pid " + std::to_string(pid_) + ")";
  co.max_line = 1u << 20;
  if (auto ch = channel::open(ours.release(), co, loop_)) {
    r->ch = std::move(ch.value());
    r->ch->set_ref(false);  // an app's channel alone must not keep the loop alive
    run* rr = r.get();
    r->ch->on_message([rr](json&& msg, std::vector<unique_fd>&&) { rr->owner->on_message(*rr, msg); });
    r->ch->on_error([](const error&) {});
    r->ch->on_close([rr] { rr->owner->leave_router(*rr); });
  }
  current_ = std::move(r);
  return 0;
}

void instance::on_message(run& r, const json& msg) {
  if (router_) {
    // Only the current run may become ready (a run stops being current
    // when it exits, which also leaves the router).
    net::detail::peer_ref peer{&r,
                               [&r](const json& m, std::vector<unique_fd> fds) { return r.ch && r.ch->send(m, std::move(fds)); },
                               [&r] { return r.ch && r.ch->is_open(); }};
    if (router_->on_message(peer, msg)) return;
  }
  if (current_.get() != &r) return;
  // PM2's convention: process.send('ready'), or {type: 'ready'}. Anything
  // else is the app's own business. The app is untrusted: a field of another
  // type than ours is ignored (nlohmann's value() would throw on the loop).
  bool ready = msg == "ready";
  if (auto type = msg.is_object() ? msg.find("type") : msg.end(); msg.is_object() && type != msg.end()) {
    if (type->is_string()) {
      ready = *type == "ready";
    } else if (!said_odd_message_) {
      said_odd_message_ = true;
      std::string text = msg.dump(-1, ' ', false, json::error_handler_t::replace);
      if (text.size() > 200) text = text.substr(0, 200) + "...";
      std::fprintf(stderr,
                   "corral daemon: %s: instance %d sent a message whose \"type\" is not a string (%s); ignored, "
                   "as are any more of its kind\n",
                   spec_.name.c_str(), index_, text.c_str());
    }
  }
  if (ready) fsm_.handle(event::ready);
}

void instance::on_exit(run& r, int64_t code, int signal) {
  // What the app left in its process group (a shell's background job) dies
  // with it: nothing runs unsupervised, and a restart never duplicates it.
  // The group id cannot name anyone else while members remain.
  ::kill(-r.pid, SIGKILL);
  r.exited = true;
  r.process.reset();
  leave_router(r);
  r.ch.reset();
  bool is_current = current_.get() == &r;
  std::unique_ptr<run> owned;
  if (is_current) {
    owned = std::move(current_);
    pid_ = 0;
    update_pid_file();
  }
  if (owned && !owned->drained()) draining_.push_back(std::move(owned));
  owned.reset();  // a drained run is freed here: its handles are closed
  if (is_current) fsm_.handle_exit(code, signal);
}

void instance::on_run_drained(run& r) {
  auto it = std::find_if(draining_.begin(), draining_.end(), [&](auto& p) { return p.get() == &r; });
  if (it != draining_.end()) draining_.erase(it);
}

}  // namespace corral::daemon
